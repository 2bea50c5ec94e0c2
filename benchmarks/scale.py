"""Benchmark: a shipped cleaning recipe at scale — wall time per phase, peak memory, peak disk.

    .venv/bin/python benchmarks/scale.py 1000000                  # clean-sft on 1M records
    .venv/bin/python benchmarks/scale.py 10000000                 # … on 10M
    .venv/bin/python benchmarks/scale.py 1000000 clean-pretrain   # clean-pretrain instead

Input: for ``clean-sft`` the N synthetic alpaca records of ``benchmarks/report.py`` (the shipped en/zh
samples, each with a numbered variation in its instruction and output, so the dedup steps keep
them); for ``clean-pretrain`` the N pretraining records of ``benchmarks/pipeline.py`` (en, zh and
mixed text, 20–2,000 characters). Both are made once into ``benchmarks/_work/`` (git-ignored) and
reused. The recipe runs as users run it — ``datamill run recipes/NAME.yaml -i INPUT -o OUT`` (all
cores, progress bar, report) — with the shipped GSM8K test set for ``decontaminate``.

Printed (and appended to ``benchmarks/_work/scale_results.jsonl``): the wall time of the run and of
each phase from its ``stats.json`` (stages, write, report, with their cores), records kept, peak RSS
summed over the run's process tree and of the main process (``ru_maxrss``; and their anonymous part,
RssAnon: file pages a mapping shares with the page cache are left out),
peak disk used on the output's filesystem while it ran (free space sampled every 2 s; the input's own
size next to it), and the CPU that other jobs took meanwhile.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "_work"
sys.path.insert(0, str(HERE))

from pipeline import datamill_exe, generate, run_measured  # noqa: E402
from report import make_input  # noqa: E402


class Peaks(threading.Thread):
    """The most space used on ``path``'s filesystem since start (above what was used at start), and the
    largest anonymous memory (RssAnon: not file pages a mapping shares with the page cache) of the main
    datamill process, the one child of this process."""

    def __init__(self, path: Path, interval: float = 2.0):
        super().__init__(daemon=True)
        self.path, self.interval = path, interval
        self.start_free = shutil.disk_usage(path).free
        self.disk = self.main_anon_kb = 0
        self.done = threading.Event()

    def run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self.done.wait(self.interval):
            self.disk = max(self.disk, self.start_free - shutil.disk_usage(self.path).free)
            for child in me.children():
                try:
                    status = Path(f"/proc/{child.pid}/status").read_text()
                except OSError:
                    continue
                anon = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("RssAnon:")), 0)
                self.main_anon_kb = max(self.main_anon_kb, anon)

    def stop(self) -> Peaks:
        self.done.set()
        self.join()
        return self


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    name = sys.argv[2] if len(sys.argv) > 2 else "clean-sft"
    WORK.mkdir(parents=True, exist_ok=True)
    data = make_input(n) if name == "clean-sft" else generate(n, 1, WORK)[0]
    out = WORK / f"scale_out_{name}_n{n}"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [datamill_exe(), "run", str(ROOT / "recipes" / f"{name}.yaml"), "-i", str(data), "-o", str(out)]
    env = dict(os.environ, DATAMILL_BENCHMARKS=str(ROOT / "tests/data/gsm8k/test.jsonl"))
    peaks = Peaks(WORK)
    peaks.start()
    measured = run_measured(cmd, env, WORK / f"scale_{name}_n{n}.log", cwd=ROOT, interval=1.0)
    peaks.stop()
    if measured["returncode"] != 0:
        print(f"datamill run failed ({measured['returncode']}); see {WORK / f'scale_{name}_n{n}.log'}")
        return 1
    stats = json.loads((out / "stats.json").read_text(encoding="utf-8"))
    result = {
        "recipe": name,
        "n": n,
        "kept": stats["kept"],
        "wall_s": round(measured["wall"], 1),
        "phases": stats["phases"],
        "peak_rss_tree_mb": round(measured["peak_rss_mb"]),
        "peak_anon_tree_mb": round(measured["peak_anon_mb"]),
        "ru_maxrss_main_mb": round(measured["ru_maxrss_mb"]),
        "peak_anon_main_mb": round(peaks.main_anon_kb / 1024),
        "peak_disk_gb": round(peaks.disk / 1e9, 2),
        "input_gb": round(data.stat().st_size / 1e9, 2),
        "output_gb": round(sum(p.stat().st_size for p in out.iterdir() if p.is_file()) / 1e9, 2),
        "foreign_cpu_pct": round(measured["foreign_cpu_pct"], 1),
        "cpus": os.cpu_count(),
        "at": time.strftime("%Y-%m-%d %H:%M"),
    }
    with open(WORK / "scale_results.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(result, ensure_ascii=False) + "\n")
    print(f"{name} N={n:,}: kept {result['kept']:,} in {result['wall_s']:,} s")
    for p in stats["phases"]:
        print(f"  {p['phase'][:60]:60s} {p['seconds']:9.1f} s  on {p['cores']} core(s)")
    print(
        f"  peak RSS {result['peak_rss_tree_mb']:,} MB (process tree; anonymous {result['peak_anon_tree_mb']:,}), "
        f"main {result['ru_maxrss_main_mb']:,} MB (anonymous {result['peak_anon_main_mb']:,}); "
        f"peak disk {result['peak_disk_gb']} GB for an input of {result['input_gb']} GB "
        f"(output {result['output_gb']} GB); other jobs {result['foreign_cpu_pct']}% CPU"
    )
    shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
