"""The review app under load: 100k items, 20 annotators over HTTP on 127.0.0.1.

    python benchmarks/review_load.py [--items 100000] [--annotators 20] [--seconds 30] [--refit-every 10]

Builds an sft project of N items (alpaca demo records from ../shared/data, or the shipped sample, repeated
with a numbered suffix so every item differs), serves it with ``datamill review serve`` in its own process,
and runs the annotators in this process as asyncio clients (httpx), each logged in through its login
link: ask for the next item (``GET /api/next``), open it (``GET /api/assignments/ID``), accept it
(``POST …/answer`` with the CSRF header), again, for ``--seconds``. Prints p50 / p99 latency per request
kind and the requests per second the server answered. Client and server share this machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import httpx  # noqa: E402

from datamill.review.project import start  # noqa: E402

DEMO = ROOT.parent / "shared" / "data" / "llamafactory" / "alpaca_en_demo.json"
SAMPLE = ROOT / "examples" / "alpaca_en_sample.json"


def build_items(path: Path, n: int) -> None:
    rows = json.loads((DEMO if DEMO.exists() else SAMPLE).read_text(encoding="utf-8"))
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            row = rows[i % len(rows)]
            f.write(json.dumps({**row, "instruction": f"{row['instruction']} (#{i})"}, ensure_ascii=False) + "\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def annotator(base: str, token: str, until: float, times: dict[str, list[float]]) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        (await client.get("/login", params={"token": token})).raise_for_status()
        csrf = (await client.get("/api/me")).json()["csrf"]
        while time.perf_counter() < until:
            t0 = time.perf_counter()
            nxt = await client.get("/api/next")
            t1 = time.perf_counter()
            item = nxt.json().get("id")
            if item is None:
                return
            await client.get(f"/api/assignments/{item}")
            t2 = time.perf_counter()
            r = await client.post(
                f"/api/assignments/{item}/answer", json={"decision": "accept"}, headers={"X-CSRF-Token": csrf}
            )
            t3 = time.perf_counter()
            r.raise_for_status()
            times["next"].append(t1 - t0)
            times["open"].append(t2 - t1)
            times["submit"].append(t3 - t2)


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] * 1000 if len(values) > 1 else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--annotators", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--refit-every", type=int, default=10, help="serve's: answers between learner refits")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data, db = Path(tmp) / "items.jsonl", Path(tmp) / "p.db"
        build_items(data, args.items)
        t = time.perf_counter()
        names = [f"a{i:02d}" for i in range(args.annotators)]
        tokens = start(data, db, "sft", annotators=names).tokens
        print(f"project: {args.items:,} items, {len(names)} annotators, built in {time.perf_counter() - t:.1f} s")
        port = free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "datamill",
                "review",
                "serve",
                str(db),
                "--port",
                str(port),
                "--refit-every",
                str(args.refit_every),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=os.environ | {"PYTHONPATH": str(ROOT / "src")},
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    httpx.get(f"{base}/api/me", timeout=1)
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise SystemExit("the review server did not start") from None
                    time.sleep(0.2)
            times: dict[str, list[float]] = {"next": [], "open": [], "submit": []}
            until = time.perf_counter() + args.seconds
            t = time.perf_counter()

            async def everyone() -> None:
                await asyncio.gather(*(annotator(base, tokens[n], until, times) for n in names))

            asyncio.run(everyone())
            wall = time.perf_counter() - t
        finally:
            server.terminate()
            server.wait(10)
    total = sum(map(len, times.values()))
    print(f"load average {os.getloadavg()[0]:.2f}; {total:,} requests in {wall:.1f} s = {total / wall:,.0f} req/s")
    for kind, values in times.items():
        print(f"{kind:>6}: {len(values):,} requests, p50 {pct(values, 50):.1f} ms, p99 {pct(values, 99):.1f} ms")


if __name__ == "__main__":
    main()
