"""The LLM disk cache: a re-run makes zero requests; concurrent writers and kill -9 corrupt nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

from llm_fakes import FakeLLM

from datamill.llm import Cache, LLMClient, LLMConfig, make_key

PROMPTS = [f"question {i}" for i in range(8)] + ["中文问题：天空为什么是蓝色的？"]


def run_batch(base_url: str, cache_dir, prompts=PROMPTS, **kw):
    async def go():
        cfg = LLMConfig(backend="openai", base_url=base_url, cache_dir=str(cache_dir), max_retries=0, **kw)
        async with LLMClient(cfg) as c:
            results = await c.chat_many(prompts)
            return results, c.usage

    return asyncio.run(go())


def test_second_run_makes_zero_requests(tmp_path):
    with FakeLLM() as fake:
        first, u1 = run_batch(fake.base_url, tmp_path, temperature=0.0)
        assert fake.count == len(PROMPTS) and u1.cache_hits == 0
        second, u2 = run_batch(fake.base_url, tmp_path, temperature=0.0)
        assert fake.count == len(PROMPTS)  # counted at the server: nothing new arrived
        assert u2.http_requests == 0 and u2.cache_hits == len(PROMPTS)
        assert [r.text for r in second] == [r.text for r in first]
        assert all(r.cached for r in second) and not any(r.cached for r in first)
        # any change in params or model is a different key
        run_batch(fake.base_url, tmp_path, prompts=PROMPTS[:2], temperature=0.5)
        assert fake.count == len(PROMPTS) + 2
        run_batch(fake.base_url, tmp_path, prompts=PROMPTS[:1], temperature=0.0, model="other")
        assert fake.count == len(PROMPTS) + 3


def test_failures_are_not_cached(tmp_path):
    with FakeLLM([("status", 500, {}, "x")]) as fake:
        results, _ = run_batch(fake.base_url, tmp_path, prompts=["a"])
        assert results[0].reason == "http 500"
        results, _ = run_batch(fake.base_url, tmp_path, prompts=["a"])
        assert results[0].text == "echo: a" and fake.count == 2


def test_key_is_canonical():
    a = make_key("chat", "openai", {"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 0})
    b = make_key("chat", "openai", {"temperature": 0, "messages": [{"content": "x", "role": "user"}], "model": "m"})
    c = make_key("chat", "openai", {"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 1})
    assert a == b != c
    assert make_key("completions", "openai", {"x": 1}) != make_key("chat", "openai", {"x": 1})


def test_corrupt_entry_is_ignored_and_replaced(tmp_path):
    cache = Cache(tmp_path)
    cache.put("k", {"texts": ["good"]})
    with sqlite3.connect(cache.path) as db:
        db.execute("UPDATE entries SET value = ? WHERE key = 'k'", (b'{"texts": ["tru',))
    assert cache.get("k") is None
    cache.put("k", {"texts": ["again"]})
    assert cache.get("k") == {"texts": ["again"]}
    cache.close()


WRITER = textwrap.dedent(
    """
    import sys
    from datamill.llm import Cache
    cache = Cache(sys.argv[1])
    tag = sys.argv[2]
    i = 0
    while True:
        # big values so a kill lands mid-write often; the value is derivable from the key
        cache.put(f"{tag}-{i}", {"i": i, "tag": tag, "pad": "x" * (20000 + i % 1000)})
        if i == 20:
            print("ready", flush=True)
        i += 1
    """
)


def test_concurrent_writers_and_kill_9_leave_no_corrupt_entry(tmp_path):
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), tag], stdout=subprocess.PIPE, text=True)
        for tag in ("a", "b")
    ]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "ready"
        time.sleep(0.3)
    finally:
        for p in procs:
            os.kill(p.pid, signal.SIGKILL)
            p.wait(10)
    assert all(p.returncode == -signal.SIGKILL for p in procs)
    cache = Cache(tmp_path)
    with sqlite3.connect(cache.path) as db:
        keys = [k for (k,) in db.execute("SELECT key FROM entries")]
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert len(keys) > 40
    for key in keys:
        tag, i = key.split("-")
        assert cache.get(key) == {"i": int(i), "tag": tag, "pad": "x" * (20000 + int(i) % 1000)}
    # the cache still takes writes after the crash
    cache.put("after", {"ok": True})
    assert cache.get("after") == {"ok": True}
    cache.close()
