"""Near-duplicate detection: datamill's minhash_dedup vs datasketch MinHashLSH vs rensa.

    .venv/bin/pip install datasketch rensa          # peers: benchmark only, not project dependencies
    .venv/bin/python benchmarks/dedup.py             # T0 ground truth table + 100k-record run
    .venv/bin/python benchmarks/dedup.py --n 1000000 # the 1M run
    .venv/bin/python benchmarks/dedup.py --skip-t0 --tools datamill,rensa
    .venv/bin/python benchmarks/dedup.py --n 1000000 --skip-t0 --tools datamill,datamill-2w,rensa

Two evaluations:

- **T0 ground truth**: the 5,284 T0 records (27 templates × 4 source datasets); label = the source
  example (``datamill.dedup.evaluate``): records rendered from one example by different templates
  are the near-duplicates to find. Precision/recall/F1 at several thresholds.
- **Scale**: the T0 records plus alpaca_en_demo and alpaca_zh_demo (8,283 originals), replicated with
  random word edits (character edits for Chinese; 0 to len/15 words, 0 to len/40 characters) up to
  N records; label = the original, so "same label ⇔ an edited copy of the same record". Written
  once to ``benchmarks/_work/dedup_n{N}_seed{S}.jsonl``.

Each tool runs in its own subprocess on the same texts, same ``num_perm`` and ``threshold``, and
clusters its LSH candidates with union-find; F1 is over record pairs (same cluster vs same label).
The peers get the same shingles datamill uses (word 5-grams, character 5-grams for CJK text; built
in Python, timed as part of their run). datasketch's MinHashLSH picks bands × rows from the threshold
itself; rensa takes a band count that must divide num_perm, so it gets the divisor with the lowest
weighted false-positive + false-negative area (the same criterion). Timings cover shingling,
hashing, LSH and clustering; for datamill, the whole ``minhash_dedup`` operator (spool to disk,
two passes, clusters.jsonl); ``datamill-2w`` is the operator as ``datamill run --workers 2`` runs it
after a chunk stage: the signatures computed chunk by chunk (10,000 records) in 2 forked processes
(``precompute``), then the same global step, all of it timed. Peak RSS is the worker's ``ru_maxrss``;
"base MB" is its RSS after loading the texts, before the timed part.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
WORK = ROOT / "benchmarks" / "_work"
sys.path.insert(0, str(ROOT / "src"))

from datamill.dedup import minhash as mh  # noqa: E402
from datamill.dedup.evaluate import load_t0, pair_scores  # noqa: E402

CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
FILLERS = ["very", "the", "also", "quite", "just", "really", "a", "then"]
ZH_FILLERS = "的了是在不我有这个们"


# ---- data ---------------------------------------------------------------------------------------
def originals() -> list[tuple[str, str]]:
    out = [(f"{p}\n{c.replace('<|endoftext|>', '')}", f"t0#{i}") for i, (_, p, c, _) in enumerate(load_t0(DATA / "t0"))]
    for name in ("alpaca_en_demo.json", "alpaca_zh_demo.json"):
        rows = json.loads((DATA / "llamafactory" / name).read_text(encoding="utf-8"))
        for i, r in enumerate(rows):
            text = "\n".join(x for x in (r.get("instruction"), r.get("input"), r.get("output")) if x)
            out.append((text, f"{name}#{i}"))
    return out


def edit(text: str, rng: random.Random) -> str:
    if len(CJK.findall(text)) > len(text) * 0.3:
        chars = list(text)
        for _ in range(rng.randint(0, max(1, len(chars) // 40))):
            i = rng.randrange(len(chars))
            chars[i : i + 1] = rng.choice([[rng.choice(ZH_FILLERS)], [], [chars[i], rng.choice(ZH_FILLERS)]])
        return "".join(chars)
    words = text.split(" ")
    for _ in range(rng.randint(0, max(1, len(words) // 15))):
        i = rng.randrange(len(words))
        words[i : i + 1] = rng.choice([[rng.choice(FILLERS)], [], [words[i], rng.choice(FILLERS)]])
    return " ".join(words)


def dataset(n: int, seed: int) -> Path:
    path = WORK / f"dedup_n{n}_seed{seed}.jsonl"
    if path.exists():
        return path
    WORK.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    base = originals()
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for i in range(n):
            text, label = base[i] if i < len(base) else rng.choice(base)
            if i >= len(base):
                text = edit(text, rng)
            f.write(json.dumps({"text": text, "label": label}, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path


# ---- peers' shingles (the same sets datamill hashes) --------------------------------------------
def py_shingles(text: str, ngram: int = 5, char_ngram: int = 5) -> list[str]:
    letters = sum(ch.isalnum() for ch in text)
    if letters and len(CJK.findall(text)) >= 0.3 * letters:
        toks = [t for t in (mh.normalize_token(ch) for ch in text) if t]
        n = char_ngram
    else:
        toks = [t for t in (mh.normalize_token(w) for w in text.split()) if t]
        n = ngram
    if not toks:
        return []
    return [" ".join(toks[i : i + n]) for i in range(max(1, len(toks) - n + 1))]


def clusters_from_candidates(n: int, candidates) -> list[int]:
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, near in candidates:
        for j in near:
            ri, rj = find(i), find(int(j))
            if ri != rj:
                parent[max(ri, rj)] = min(ri, rj)
    return [find(i) for i in range(n)]


def rensa_bands(threshold: float, num_perm: int) -> int:
    divisors = [b for b in range(1, num_perm + 1) if num_perm % b == 0]
    return min(
        divisors,
        key=lambda b: (
            mh.false_positive_area(threshold, b, num_perm // b) + mh.false_negative_area(threshold, b, num_perm // b)
        ),
    )


# ---- workers ------------------------------------------------------------------------------------
def run_datamill(texts: list[str], num_perm: int, threshold: float, **options) -> list[int]:
    from datamill import ops
    from datamill.ops.base import OpContext
    from datamill.record import Record

    def records():  # streamed, as the pipeline feeds a global step
        for i, t in enumerate(texts):
            rec = Record(text=t)
            rec.id = str(i)
            yield rec

    cls = ops.get("minhash_dedup")
    with tempfile.TemporaryDirectory(dir=WORK) as tmp:
        op = cls(cls.Config(num_perm=num_perm, threshold=threshold, **options), OpContext(0, 0, Path(tmp)))
        start = time.perf_counter()
        for _ in op.run(records()):
            pass
        elapsed = time.perf_counter() - start
        labels = list(range(len(texts)))
        with open(Path(tmp) / "clusters.jsonl", "rb") as f:
            for line in f:
                c = json.loads(line)
                for m in c["members"]:
                    labels[int(m)] = -1 - c["cluster"]
    return labels, elapsed


def run_datamill_workers(texts: list[str], num_perm: int, threshold: float, workers: int = 2):
    """``minhash_dedup`` as ``datamill run --workers 2`` runs it after a chunk stage: the signatures
    computed chunk by chunk in ``workers`` processes (``precompute``), then the global step."""
    import multiprocessing

    from datamill import ops
    from datamill.ops.base import OpContext
    from datamill.record import Record

    def record(i: int) -> Record:
        rec = Record(text=texts[i])
        rec.id = str(i)
        return rec

    cls = ops.get("minhash_dedup")
    chunk = 10_000
    with tempfile.TemporaryDirectory(dir=WORK) as tmp:
        op = cls(cls.Config(num_perm=num_perm, threshold=threshold), OpContext(0, 0, Path(tmp) / "step"))
        start = time.perf_counter()
        paths = [Path(tmp) / f"chunk-{i:06d}.pre" for i in range(0, len(texts), chunk)]

        def precompute(i: int) -> None:
            op.precompute([record(j) for j in range(i * chunk, min(len(texts), (i + 1) * chunk))], paths[i])

        _FORKED["task"] = precompute  # the forked workers inherit it (a closure does not pickle)
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            pool.map(_forked_task, range(len(paths)))
        op.precomputed = paths
        for _ in op.run(record(i) for i in range(len(texts))):
            pass
        elapsed = time.perf_counter() - start
        labels = list(range(len(texts)))
        with open(Path(tmp) / "step" / "clusters.jsonl", "rb") as f:
            for line in f:
                c = json.loads(line)
                for m in c["members"]:
                    labels[int(m)] = -1 - c["cluster"]
    return labels, elapsed


_FORKED: dict = {}


def _forked_task(i: int) -> None:
    _FORKED["task"](i)


def run_datasketch(texts: list[str], num_perm: int, threshold: float):
    from datasketch import MinHash, MinHashLSH

    start = time.perf_counter()
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    sigs = []
    for i, t in enumerate(texts):
        m = MinHash(num_perm=num_perm, seed=1)
        m.update_batch([s.encode() for s in py_shingles(t)])
        sigs.append(m)
        lsh.insert(i, m, check_duplication=False)
    labels = clusters_from_candidates(len(texts), ((i, lsh.query(m)) for i, m in enumerate(sigs)))
    return labels, time.perf_counter() - start


def run_rensa(texts: list[str], num_perm: int, threshold: float):
    from rensa import RMinHash, RMinHashLSH

    start = time.perf_counter()
    mhs = RMinHash.from_token_sets((py_shingles(t) for t in texts), num_perm, 1)
    lsh = RMinHashLSH(threshold, num_perm, rensa_bands(threshold, num_perm))
    lsh.insert_many(mhs)
    labels = clusters_from_candidates(len(texts), enumerate(lsh.query_all(mhs)))
    return labels, time.perf_counter() - start


def run_datamill_noverify(texts: list[str], num_perm: int, threshold: float):
    return run_datamill(texts, num_perm, threshold, verify=False)


WORKERS = {
    "datamill": run_datamill,
    "datamill-noverify": run_datamill_noverify,
    "datamill-2w": run_datamill_workers,
    "datasketch": run_datasketch,
    "rensa": run_rensa,
}


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def worker(args) -> None:
    with open(args.data, encoding="utf-8") as f:
        rows = [json.loads(x) for x in f]
    texts, truth = [r["text"] for r in rows], [r["label"] for r in rows]
    del rows
    base = rss_mb()
    labels, seconds = WORKERS[args.worker](texts, args.num_perm, args.threshold)
    scores = pair_scores(labels, truth)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {"tool": args.worker, "n": len(texts), "seconds": seconds, "peak_mb": peak, "base_mb": base}
    print(json.dumps({**result, **scores}))


def spawn(tool: str, data: Path, num_perm: int, threshold: float) -> dict:
    cmd = [sys.executable, __file__, "--worker", tool, "--data", str(data)]
    cmd += ["--num-perm", str(num_perm), "--threshold", str(threshold)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{tool} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-perm", type=int, default=128)
    p.add_argument("--threshold", type=float, default=0.8)
    p.add_argument("--tools", default="datamill,datamill-noverify,datasketch,rensa")
    p.add_argument("--t0-thresholds", default="0.5,0.6,0.7,0.8")
    p.add_argument("--skip-t0", action="store_true")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)
    tools = args.tools.split(",")
    results = {"t0": [], "scale": []}
    if not args.skip_t0:
        t0 = WORK / "dedup_t0.jsonl"
        WORK.mkdir(parents=True, exist_ok=True)
        with open(t0, "w", encoding="utf-8") as f:
            for _, prompt, completion, key in load_t0(DATA / "t0"):
                text = f"{prompt}\n{completion.replace('<|endoftext|>', '')}"
                f.write(json.dumps({"text": text, "label": key}, ensure_ascii=False) + "\n")
        print("T0 ground truth (5,284 records, 800 source examples), num_perm", args.num_perm)
        print("| threshold | tool | precision | recall | F1 |\n|---:|---|---:|---:|---:|")
        for th in (float(x) for x in args.t0_thresholds.split(",")):
            for tool in tools:
                r = spawn(tool, t0, args.num_perm, th)
                results["t0"].append({**r, "threshold": th})
                print(f"| {th:g} | {tool} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} |", flush=True)
    data = dataset(args.n, args.seed)
    print(f"\n{args.n:,} records (T0 + alpaca en/zh with edits), num_perm {args.num_perm}, threshold {args.threshold}")
    print("| tool | seconds | docs/s | peak RSS MB | base MB | precision | recall | F1 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for tool in tools:
        r = spawn(tool, data, args.num_perm, args.threshold)
        results["scale"].append(r)
        print(
            f"| {tool} | {r['seconds']:.1f} | {r['n'] / r['seconds']:,.0f} | {r['peak_mb']:,.0f} | {r['base_mb']:,.0f} "
            f"| {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} |",
            flush=True,
        )
    by = {r["tool"]: r for r in results["scale"]}
    for ours in (t for t in ("datamill", "datamill-2w") if t in by):
        for peer in ("datasketch", "rensa"):
            if peer in by:
                ratio = by[peer]["seconds"] / by[ours]["seconds"]
                print(f"{ours} throughput / {peer}: {ratio:.2f}×")
    (WORK / f"dedup_results_n{args.n}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
