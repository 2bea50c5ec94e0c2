"""Benchmark: what lineage costs a run, and how fast ``datamill trace`` finds a record.

    .venv/bin/python benchmarks/trace.py                        # N = 100,000 SFT records
    .venv/bin/python benchmarks/trace.py --n 1000000 --runs 1   # a 1M-record OUTDIR
    .venv/bin/python benchmarks/trace.py --baseline-src /path/to/old/checkout/src   # before/after

1. Generates N alpaca records from benchmarks/pipeline.py's synthetic text (en/zh/mixed; instructions
   20..200 characters, answers 20..2000, ~18% with ``{{name}}``-style placeholders, 2% exact copies of
   an earlier record) into ``benchmarks/_work/trace_sft_n{N}.jsonl``.
2. Runs recipes/quickstart.yaml's steps on it (fill_placeholders → length_filter → exact_dedup →
   shuffle → sharegpt; the report off, as it is the same with or without lineage) as a fresh
   subprocess, ``--runs`` times, alternating with ``--baseline-src`` (another checkout's ``src/`` put
   first on PYTHONPATH: the code before lineage) when given; prints wall and CPU seconds of each and
   the size of lineage.jsonl.
3. Times ``datamill trace`` on that OUTDIR for a rewritten kept record, a dropped one, a data row
   (``data-00000.jsonl:ROW``) and a missing id (which also computes the close matches), each as a fresh
   process, with its peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
from pathlib import Path

import yaml
from pipeline import Generator, run_measured, wait_idle

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "_work"


def generate(n: int, seed: int) -> Path:
    path = WORK / f"trace_sft_n{n}_seed{seed}.jsonl"
    if path.exists():
        return path
    WORK.mkdir(parents=True, exist_ok=True)
    gen, rng = Generator(seed), random.Random(seed)
    made: list[str] = []
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for _ in range(n):
            if made and rng.random() < 0.02:
                line = rng.choice(made)
            else:
                line = json.dumps(
                    {"instruction": gen.text()[:200], "input": "", "output": gen.text()}, ensure_ascii=False
                )
                if len(made) < 10_000:
                    made.append(line)
            f.write(line + "\n")
    tmp.replace(path)
    return path


def recipe(src: Path, out: Path) -> Path:
    body = yaml.safe_load((ROOT / "recipes" / "quickstart.yaml").read_text(encoding="utf-8"))
    body["inputs"] = [str(src)]
    body["output"] |= {"path": str(out), "report": False}
    path = WORK / "trace_quickstart.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def env_for(src: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src
    return env


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--baseline-src", help="a checkout's src/ without lineage, for the before/after")
    args = ap.parse_args()

    src = generate(args.n, args.seed)
    out = WORK / f"trace_out_n{args.n}"
    path = recipe(src, out)
    variants = [("lineage", None)] + ([("before", args.baseline_src)] if args.baseline_src else [])
    walls: dict[str, list[float]] = {name: [] for name, _ in variants}
    for i in range(args.runs):
        for name, code in variants if i % 2 == 0 else variants[::-1]:
            shutil.rmtree(out, ignore_errors=True)
            wait_idle(60)
            cmd = [sys.executable, "-m", "datamill", "run", str(path), "--workers", str(args.workers)]
            m = run_measured(cmd, env_for(code), WORK / f"trace_run_{name}.log", cwd=ROOT)
            if m["returncode"] != 0:
                sys.exit(f"{name} run failed: see {WORK / f'trace_run_{name}.log'}")
            walls[name].append(m["wall"])
            other = m["foreign_cpu_pct"]
            print(f"run {i + 1} {name:8} wall {m['wall']:6.2f} s  cpu {m['cpu']:6.2f} s  other {other:.0f}%")
    for name, w in walls.items():
        print(f"{name:8} median wall {statistics.median(w):.2f} s over {len(w)} run(s)")
    if args.baseline_src:
        before, after = statistics.median(walls["before"]), statistics.median(walls["lineage"])
        print(f"overhead: {100 * (after - before) / before:+.1f}% wall")
    if variants[-1][0] == "before":  # the last run was the old code: make the OUTDIR to trace again
        run_measured(
            [sys.executable, "-m", "datamill", "run", str(path)], env_for(None), WORK / "trace_run.log", cwd=ROOT
        )

    lineage = out / "lineage.jsonl"
    data = sum(p.stat().st_size for p in out.glob("data-*"))
    print(
        f"lineage.jsonl {lineage.stat().st_size / 1e6:.1f} MB beside {data / 1e6:.1f} MB of data, "
        f"dropped.jsonl {(out / 'dropped.jsonl').stat().st_size / 1e6:.1f} MB"
    )
    rewritten = kept = dropped = None
    with open(lineage, "rb") as f:
        for line in f:
            if b'"lineage":' in line:
                rewritten = json.loads(line)
                break
    with open(lineage, "rb") as f:
        for kept in f:  # the last row: the far end of the data file  # noqa: B007
            pass
    kept = json.loads(kept)
    with open(out / "dropped.jsonl", "rb") as f:
        for line in f:
            dropped = json.loads(line)
    queries = {
        "rewritten kept": rewritten["id"],
        "dropped (last)": dropped["id"],
        "last data row": f"{kept['file']}:{kept['row'] + 1}",
        "missing id": "0123456789abcdef",
    }
    for label, query in queries.items():
        cmd = [sys.executable, "-m", "datamill", "trace", str(out), query]
        m = run_measured(cmd, env_for(None), WORK / "trace_lookup.log", cwd=ROOT)
        print(f"trace {label:15} {m['wall']:5.2f} s wall, peak RSS {m['peak_rss_mb']:.0f} MB, exit {m['returncode']}")


if __name__ == "__main__":
    main()
