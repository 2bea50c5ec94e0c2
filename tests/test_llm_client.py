"""The LLM client against a local server that misbehaves on purpose: every request ends answered
after retries or in a clear LLMError; nothing hangs; the API key leaks nowhere."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from llm_fakes import FakeLLM

from datamill.llm import LLMClient, LLMConfig, LLMError
from datamill.llm.client import _Bucket, _retry_after

FAST = dict(backend="openai", cache=False, timeout=2.0, max_retries=3, backoff_base=0.01, backoff_max=0.05)
TRANSPORT = "fast"


@pytest.fixture(autouse=True, params=["fast", "httpx"])
def transport(request):
    """Every test runs on both transports: the built-in h11 one and httpx (used behind proxies)."""
    global TRANSPORT
    TRANSPORT = request.param
    yield request.param
    TRANSPORT = "fast"


def run(coro):
    return asyncio.run(coro)


def client(fake: FakeLLM, **kw) -> LLMClient:
    c = LLMClient(LLMConfig(**{**FAST, "transport": TRANSPORT, "base_url": fake.base_url, **kw}))
    c.sleeps = []

    async def sleep(d: float) -> None:  # record the backoff, wait only a little
        c.sleeps.append(d)
        await asyncio.sleep(min(d, 0.01))

    c._sleep = sleep
    return c


async def ask(c: LLMClient, prompt: str = "hi"):
    async with c:
        return await c.chat(prompt)


def test_plain_chat_and_usage():
    with FakeLLM() as fake:
        c = client(fake, temperature=0.3, seed=7, extra={"top_k": 5})
        out = run(ask(c, "hello"))
    assert out.text == "echo: hello"
    assert out.prompt_tokens == 7 and out.completion_tokens == 3
    body = fake.requests[0]["body"]
    assert body["messages"] == [{"role": "user", "content": "hello"}]
    assert body["temperature"] == 0.3 and body["seed"] == 7 and body["top_k"] == 5
    u = c.usage.to_dict()
    assert (u["requests"], u["http_requests"], u["retries"], u["total_tokens"]) == (1, 1, 0, 10)


def test_429_with_retry_after_is_honoured_then_succeeds():
    with FakeLLM([("status", 429, {"Retry-After": "3"}, "slow down"), "ok"]) as fake:
        c = client(fake)
        out = run(ask(c))
    assert out.text == "echo: hi"
    assert fake.count == 2
    assert c.sleeps == [3.0]  # the server's Retry-After, not the (tiny) exponential backoff
    assert c.usage.retries == 1


def test_500s_retry_with_growing_backoff_then_succeed():
    script = [("status", 500, {}, "boom"), ("status", 502, {}, "bad gateway"), ("status", 503, {}, "busy"), "ok"]
    with FakeLLM(script) as fake:
        c = client(fake, backoff_base=0.1, backoff_max=10)
        out = run(ask(c))
    assert out.text == "echo: hi" and fake.count == 4
    assert len(c.sleeps) == 3
    # exponential with jitter in [0.5, 1.0] of base * 2^k
    for k, d in enumerate(c.sleeps):
        assert 0.1 * 2**k * 0.5 <= d <= 0.1 * 2**k


def test_500s_forever_end_in_clear_error():
    with FakeLLM(default=("status", 500, {}, "internal error")) as fake:
        c = client(fake, max_retries=2)
        with pytest.raises(LLMError) as info:
            run(ask(c))
    e = info.value
    assert fake.count == 3 and e.attempts == 3
    assert e.reason == "http 500" and e.status == 500
    assert "failed after 3 tries" in str(e) and "HTTP 500" in str(e) and "internal error" in str(e)
    assert c.usage.failures == 1 and c.usage.errors == {"http 500": 1}


def test_hang_past_timeout_is_retried_then_errors():
    with FakeLLM(default="hang") as fake:
        c = client(fake, timeout=0.2, max_retries=1)
        with pytest.raises(LLMError) as info:
            run(ask(c))
    assert info.value.reason == "timeout" and fake.count == 2
    assert "0.2s timeout" in str(info.value)


def test_hang_then_answer():
    with FakeLLM(["hang", "ok"]) as fake:
        c = client(fake, timeout=0.2)
        assert run(ask(c)).text == "echo: hi"
    assert fake.count == 2 and c.usage.errors == {}


def test_dropped_connection_is_retried():
    with FakeLLM(["drop", "drop", "ok"]) as fake:
        c = client(fake)
        assert run(ask(c)).text == "echo: hi"
    assert fake.count == 3 and c.usage.retries == 2


def test_dropped_connection_forever():
    with FakeLLM(default="drop") as fake:
        c = client(fake, max_retries=1)
        with pytest.raises(LLMError) as info:
            run(ask(c))
    assert info.value.reason == "connection" and "connection failed" in str(info.value)


def test_connection_refused():
    with FakeLLM() as fake:
        url = fake.base_url
    c = LLMClient(LLMConfig(**{**FAST, "transport": TRANSPORT, "base_url": url, "max_retries": 1}))
    with pytest.raises(LLMError) as info:
        run(ask(c))
    assert info.value.reason == "connection"


def test_invalid_json_body_is_retried_then_errors():
    with FakeLLM(["badjson", "ok"]) as fake:
        c = client(fake)
        assert run(ask(c)).text == "echo: hi"
    with FakeLLM(default="badjson") as fake:
        c = client(fake, max_retries=1)
        with pytest.raises(LLMError) as info:
            run(ask(c))
    assert info.value.reason == "bad body" and "not JSON" in str(info.value)


def test_json_without_choices_is_retried_then_a_clear_error():
    with FakeLLM(default="nochoices") as fake:
        c = client(fake, max_retries=1)
        with pytest.raises(LLMError) as info:
            run(ask(c))
    assert info.value.reason == "bad body" and "no choices" in str(info.value)
    assert fake.count == 2


def test_4xx_is_not_retried():
    with FakeLLM([("status", 400, {}, "unknown parameter top_k"), "ok"]) as fake:
        c = client(fake)
        with pytest.raises(LLMError) as info:
            run(ask(c))
    assert fake.count == 1 and info.value.status == 400 and "unknown parameter top_k" in str(info.value)


def test_many_requests_mixed_faults_each_end_answered_or_errored():
    """A batch through every fault: every item comes back, in order, as an answer or an error."""
    script = ["ok", ("status", 429, {"Retry-After": "0"}, "x"), "drop", "badjson", ("status", 503, {}, "x")] * 4
    with FakeLLM(script) as fake:
        c = client(fake, concurrency=4, max_retries=4)

        async def go():
            async with c:
                return await c.chat_many([f"q{i}" for i in range(12)])

        results = run(go())
    assert len(results) == 12
    assert all(not isinstance(r, LLMError) for r in results)
    assert sorted(r.text for r in results) == sorted(f"echo: q{i}" for i in range(12))
    u = c.usage
    assert u.requests == 12 and u.http_requests == fake.count and u.retries == fake.count - 12


def test_n_and_completions_and_embeddings():
    with FakeLLM() as fake:
        c = client(fake, n=3)

        async def go():
            async with c:
                chat = await c.chat("x")
                comp = await c.complete("Once upon a time")
                emb = await c.embed(["ab", "abcd"])
                return chat, comp, emb

        chat, comp, emb = run(go())
    assert chat.texts == ["echo: x"] * 3
    assert comp.text == "completion of: Once upon a time"
    assert emb == [[2.0, 1.0, 0.0], [4.0, 1.0, 1.0]]
    assert [r["path"] for r in fake.requests] == ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"]


def test_concurrency_is_bounded():
    with FakeLLM() as fake:
        c = client(fake, concurrency=2)
        in_flight, peak = [0], [0]
        real_send = c._send

        async def send(kind, body):
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
            try:
                await asyncio.sleep(0.01)
                return await real_send(kind, body)
            finally:
                in_flight[0] -= 1

        c._send = send

        async def go():
            async with c:
                return await c.chat_many([str(i) for i in range(10)])

        results = run(go())
    assert fake.count == 10 and all(r.text.startswith("echo: ") for r in results)
    assert peak[0] == 2


def test_rate_limiter_bucket_waits_for_refill():
    now = [0.0]
    bucket = _Bucket(60, clock=lambda: now[0])  # 1 per second
    slept = []

    async def fake_sleep(d):
        slept.append(d)
        now[0] += d

    async def go():
        orig = asyncio.sleep
        asyncio.sleep = fake_sleep
        try:
            for _ in range(62):
                await bucket.acquire(1)
        finally:
            asyncio.sleep = orig

    run(go())
    assert sum(slept) == pytest.approx(2.0)  # 60 at once, then one per second


def test_retry_after_parsing():
    assert _retry_after("2") == 2.0 and _retry_after("0.5") == 0.5
    assert _retry_after(None) is None and _retry_after("soon") is None
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: go now


def test_api_key_never_leaks(caplog, monkeypatch):
    secret = "sk-test-7f3a9c1e5b2d8f4a6c0e"
    monkeypatch.setenv("DATAMILL_TEST_KEY", secret)
    caplog.set_level(logging.DEBUG)
    # the server echoes the key back in its error (hosted APIs do: "Incorrect API key provided: sk-...")
    script = [("status", 500, {}, f"overloaded for key {secret}")] * 2 + [
        ("status", 401, {}, f"Incorrect API key provided: {secret}")
    ]
    with FakeLLM(script) as fake:
        c = client(fake, api_key_env="DATAMILL_TEST_KEY", max_retries=2)
        with pytest.raises(LLMError) as info:
            run(ask(c))
        c2 = client(fake, api_key_env="DATAMILL_TEST_KEY", max_retries=1)
        fake.default = ("status", 503, {}, f"busy {secret}")
        with pytest.raises(LLMError) as info2:
            run(ask(c2))
    assert fake.requests[0]["auth"] == f"Bearer {secret}"  # the key was really sent
    surfaces = [
        str(info.value),
        repr(info.value),
        str(info2.value),
        repr(info.value.__cause__),
        repr(info.value.__context__),
        caplog.text,
        json.dumps(c.usage.to_dict()),
        json.dumps(c2.usage.to_dict()),
        c.config.model_dump_json(),
        repr(c.config),
    ]
    assert "***" in str(info.value) and "Incorrect API key" in str(info.value)
    for s in surfaces:
        assert secret not in s


def test_api_key_env_must_be_a_name():
    with pytest.raises(ValueError) as info:
        LLMConfig(api_key_env="sk-live abc/123")
    assert "sk-live abc/123" not in str(info.value)
