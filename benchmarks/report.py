"""Benchmark: how much of a run the report costs (``output.report: true``).

    .venv/bin/python benchmarks/report.py             # N = 200,000 (default)
    .venv/bin/python benchmarks/report.py 1000000     # 1M records
    .venv/bin/python benchmarks/report.py 1000000 clean-sft   # the clean-sft recipe's steps instead

Builds N synthetic alpaca records (JSONL, in ``benchmarks/_work/``, git-ignored, reused for the same
N) from ``examples/alpaca_en_sample.json`` + ``examples/alpaca_zh_sample.json``: each record is a
sample record with a numbered variation appended to its instruction and its output, so
``exact_dedup`` keeps them all. Runs the quickstart recipe's steps on it (``fill_placeholders``,
``length_filter``, ``exact_dedup part: all``, ``shuffle``; sharegpt jsonl, ``report: true``) in this
process, and prints the total time, the report's cost and its share — the time the run waits for the
report's pass (started in worker processes when the shards start being written) after the shards
are written, plus ``write_report`` (the sample's tokenizing, rendering) — the time of each progress
phase, and the peak RSS of this process and of its worker processes (``ru_maxrss``). Results are also appended to
``benchmarks/_work/report_results.jsonl``.
"""

from __future__ import annotations

import json
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / "_work"

import datamill.report  # noqa: E402  (loaded before the run, as the runner would load it)
from datamill.pipeline import recipe as recipes  # noqa: E402
from datamill.pipeline.runner import Runner  # noqa: E402
from datamill.report.build import Pass  # noqa: E402

EN_WORDS = [
    "alpha",
    "bravo",
    "delta",
    "echo",
    "lima",
    "oscar",
    "sierra",
    "tango",
    "victor",
    "zulu",
    "river",
    "stone",
    "cloud",
    "maple",
]
ZH_WORDS = list("山水风云花草日月星河春夏秋冬东西南北")


def make_input(n: int) -> Path:
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / f"report_alpaca_n{n}.jsonl"
    if path.exists():
        return path
    samples = []
    for name in ("alpaca_en_sample.json", "alpaca_zh_sample.json"):
        samples += json.loads((ROOT / "examples" / name).read_text(encoding="utf-8"))
    rng = random.Random(0)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for i in range(n):
            s = samples[i % len(samples)]
            zh = any("\u4e00" <= c <= "\u9fff" for c in s["instruction"])
            words = ZH_WORDS if zh else EN_WORDS
            tag = ("" if zh else " ").join(rng.choice(words) for _ in range(rng.randint(2, 12)))
            rec = {
                "instruction": f"{s['instruction']} ({i} {tag})",
                "input": s.get("input", ""),
                "output": f"{s['output']}\n\n{tag} #{i}",
            }
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    tmp.rename(path)
    return path


STEPS = {
    "quickstart": lambda: [
        {"op": "fill_placeholders", "values": {"name": "Datamill Assistant", "author": "the datamill team"}},
        {"op": "length_filter", "part": "answer", "unit": "words", "min": 3},
        {"op": "exact_dedup", "part": "all"},
        {"op": "shuffle"},
    ],
    # the shipped recipe's steps as they are (decontaminating against the shipped GSM8K test set)
    "clean-sft": lambda: [
        {**step, "benchmarks": [str(ROOT / "tests/data/gsm8k/test.jsonl")]} if step["op"] == "decontaminate" else step
        for step in yaml.safe_load((ROOT / "recipes/clean-sft.yaml").read_text(encoding="utf-8"))["steps"]
    ],
}


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    recipe_name = sys.argv[2] if len(sys.argv) > 2 else "quickstart"
    t0 = time.perf_counter()
    data = make_input(n)
    gen_s = time.perf_counter() - t0
    out = WORK / f"report_out_{recipe_name}_n{n}"
    subprocess.run(["rm", "-rf", str(out)], check=True)
    body = {
        "name": "report-bench",
        "seed": 42,
        "chunk_size": 500,
        "inputs": [str(data)],
        "steps": STEPS[recipe_name](),
        "output": {"path": str(out), "format": "sharegpt", "container": "jsonl", "report": True},
    }
    recipe_path = WORK / f"report_recipe_n{n}.yaml"
    recipe_path.write_text(yaml.safe_dump(body), encoding="utf-8")

    timing = {"report": 0.0}
    real = datamill.report.write_report

    def timed(*args, **kwargs):
        t = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            timing["report"] += time.perf_counter() - t

    datamill.report.write_report = timed
    real_result = Pass.result

    def timed_result(self, *args, **kwargs):  # waiting for the report's pass once the shards are written
        t = time.perf_counter()
        try:
            return real_result(self, *args, **kwargs)
        finally:
            timing["wait"] += time.perf_counter() - t

    Pass.result = timed_result
    timing["wait"] = 0.0
    phases: list[str] = []
    spans: dict[str, list[float]] = {}  # label → [first, last] progress call

    def progress(label: str, done: int, total) -> None:
        if not phases or phases[-1] != label:
            phases.append(label)
        now = time.perf_counter()
        spans.setdefault(label, [now, now])[1] = now

    t1 = time.perf_counter()
    result = Runner(recipes.load(recipe_path), progress=progress).run()
    total = time.perf_counter() - t1
    report_s = timing["report"] + timing["wait"]
    self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    html = (out / "report.html").read_text(encoding="utf-8")
    sampled = 'data-sample="lengths"' in html
    row = {
        "n": n,
        "recipe": recipe_name,
        "kept": result.stats.get("kept"),
        "total_s": round(total, 1),
        "report_s": round(report_s, 1),
        "report_share": round(report_s / total, 4) if total else 0.0,
        "pass_wait_s": round(timing["wait"], 1),
        "write_report_s": round(timing["report"], 1),
        "peak_rss_main_mb": round(self_rss),
        "peak_rss_worker_mb": round(child_rss),
        "sampled_lengths": sampled,
        "progress_phases": phases,
        "phases_s": {k: round(b - a, 1) for k, (a, b) in spans.items()},
        "input_gen_s": round(gen_s, 1),
    }
    print(
        f"{recipe_name} N={n:,} kept={row['kept']:,}  total {total:.1f} s  "
        f"report {report_s:.1f} s ({row['report_share']:.1%}: "
        f"waiting for the pass after the write {timing['wait']:.1f} s + write_report {timing['report']:.1f} s)  "
        f"peak RSS main {self_rss:.0f} MB, largest worker {child_rss:.0f} MB"
    )
    print(f"phases (first to last progress call): {row['phases_s']}")
    with open(WORK / "report_results.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
