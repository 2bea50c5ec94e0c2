"""Self-Instruct's ROUGE-L novelty filter: datamill's RougeIndex vs the all-pairs loop of the original
code (the ``rouge-score`` package), on the same instructions, with identical decisions checked.

    .venv/bin/pip install rouge-score          # the peer: benchmark only, not a project dependency
    .venv/bin/python benchmarks/synth.py                     # 50k candidates vs a 50k pool
    .venv/bin/python benchmarks/synth.py --pool 20000 --candidates 20000 --sample 10

Data: real English instructions — the 175 Self-Instruct seeds, the 252 user-oriented instructions,
alpaca_en_demo (999), GSM8K train+test questions (8,792) and the shortest line of each T0 prompt —
de-duplicated (11,615), shuffled and split in two halves. The pool is grown from one half and the
candidates from the other with random word edits (0 to len/6 edits: delete, insert, replace), the
way a model writes near-copies of what it was shown. Seeded.

- **datamill**: tokenize, build ``RougeIndex(0.7)`` over the pool (token order from the pool), then
  ``match`` every candidate — every candidate, nothing sampled.
- **rouge-score, original**: ``RougeScorer(["rougeL"]).score(candidate, p)`` for every p in the pool,
  as Self-Instruct's ``bootstrap_instructions.py`` does (it spreads this over a process pool; both
  sides here use one core). Timed on ``--sample`` candidates and extrapolated to all of them.
- **rouge-score, pre-tokenized**: Stanford Alpaca's faster variant — the pool tokenized once, then
  ``rouge_scorer._score_lcs`` per pair. Also sampled and extrapolated.

Decisions ("some pool instruction has ROUGE-L >= 0.7", and the best score) are compared on the
sampled candidates plus ``--check`` more chosen among the index's hits and near-misses.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
DATA = ROOT.parent / "shared" / "data"

from datamill.synth.rouge import RougeIndex, tokenize  # noqa: E402

FILLERS = ["new", "quick", "please", "the", "very", "short", "given", "each", "story", "list", "simple", "two"]


def originals() -> list[str]:
    texts: list[str] = []
    for name in ("seed_tasks.jsonl", "user_oriented_instructions.jsonl"):
        for line in (DATA / "self_instruct" / name).read_text(encoding="utf-8").splitlines():
            texts.append(json.loads(line)["instruction"])
    texts += [r["instruction"] for r in json.loads((DATA / "llamafactory" / "alpaca_en_demo.json").read_text())]
    for name in ("train.jsonl", "test.jsonl"):
        for line in (DATA / "gsm8k" / name).read_text(encoding="utf-8").splitlines():
            texts.append(json.loads(line)["question"])
    for f in sorted((DATA / "t0").glob("*.jsonl")):
        for line in f.read_text(encoding="utf-8").splitlines():
            lines = [x for x in json.loads(line)["prompt"].splitlines() if x.strip()]
            texts.append(min(lines, key=len) if lines else "")
    seen, out = set(), []
    for t in texts:
        t = re.sub(r"\s+", " ", t).strip()
        if len(t.split()) >= 3 and t not in seen:
            seen.add(t)
            out.append(t)
    return out


def edit(text: str, rng: random.Random) -> str:
    words = text.split()
    for _ in range(rng.randint(0, max(1, len(words) // 6))):
        i = rng.randrange(len(words))
        r = rng.random()
        if r < 0.35 and len(words) > 3:
            del words[i]
        elif r < 0.7:
            words.insert(i, rng.choice(FILLERS))
        else:
            words[i] = rng.choice(FILLERS)
    return " ".join(words)


def grow(base: list[str], n: int, rng: random.Random) -> list[str]:
    out = list(base)
    while len(out) < n:
        out.append(edit(rng.choice(base), rng))
    rng.shuffle(out)
    return out[:n]


def make_sets(n_pool: int, n_cand: int, seed: int) -> tuple[list[str], list[str]]:
    """The real instructions split in two halves, each grown with edited copies: the pool from one
    half, the candidates from the other (so a candidate is rejected only when it really is close to
    a different pool instruction, as with templated T0 prompts and look-alike GSM8K questions)."""
    base = originals()
    rng = random.Random(seed)
    rng.shuffle(base)
    half = len(base) // 2
    return grow(base[:half], n_pool, rng), grow(base[half:], n_cand, rng)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pool", type=int, default=50_000)
    ap.add_argument("--candidates", type=int, default=50_000)
    ap.add_argument("--threshold", type=float, default=0.7)
    ap.add_argument("--sample", type=int, default=8, help="candidates timed with the all-pairs loop")
    ap.add_argument("--check", type=int, default=40, help="extra candidates whose decisions are compared")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    pool, cands = make_sets(args.pool, args.candidates, args.seed)
    print(f"{len(originals())} distinct real instructions → pool {len(pool):,}, candidates {len(cands):,}")

    t0 = time.perf_counter()
    pool_tokens = [tokenize(t) for t in pool]
    index = RougeIndex(args.threshold, order_texts=pool_tokens)
    for toks in pool_tokens:
        index.add(toks)
    t_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours = [index.match(tokenize(c)) for c in cands]
    t_match = time.perf_counter() - t0
    ours_total = t_build + t_match
    hits = sum(m is not None for m in ours)
    pairs = len(pool) * len(cands)
    print(
        f"datamill RougeIndex: build {t_build:.2f}s + match {t_match:.2f}s = {ours_total:.2f}s; "
        f"{hits:,} of {len(cands):,} rejected (>= {args.threshold}); exact LCS on {index.scored:,} of "
        f"{pairs:,} pairs ({index.scored / pairs:.5%})"
    )

    try:
        from rouge_score import rouge_scorer
    except ImportError:
        print("rouge-score is not installed: .venv/bin/pip install rouge-score   (peer timing skipped)")
        return
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    rng = random.Random(args.seed + 1)
    sample = rng.sample(range(len(cands)), args.sample)

    def decide(scores: list[float]) -> tuple[bool, float]:
        best = max(scores)
        return best >= args.threshold, best

    t0 = time.perf_counter()
    slow = {i: decide([scorer.score(cands[i], p)["rougeL"].fmeasure for p in pool]) for i in sample}
    t_orig = (time.perf_counter() - t0) / len(sample) * len(cands)
    t0 = time.perf_counter()
    tok = scorer._tokenizer
    pool_tok = [tok.tokenize(p) for p in pool]
    t_pretok = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in sample:
        ct = tok.tokenize(cands[i])
        decide([rouge_scorer._score_lcs(ct, p).fmeasure for p in pool_tok])
    t_alpaca = t_pretok + (time.perf_counter() - t0) / len(sample) * len(cands)

    # decisions: the timed sample, plus index hits and near-misses (the cases that could go wrong)
    near = [i for i, m in enumerate(ours) if m is not None and m[0] < 0.8][: args.check // 2]
    misses = [i for i in range(len(cands)) if ours[i] is None][: args.check // 2]
    check = list(dict.fromkeys(sample + near + misses))
    mismatches = 0
    for i in check:
        ref = slow.get(i)
        if ref is None:
            ct = tok.tokenize(cands[i])
            ref = decide([rouge_scorer._score_lcs(ct, p).fmeasure for p in pool_tok])
        mine = ours[i]
        if ref[0] != (mine is not None) or (mine is not None and mine[0] != ref[1]):
            mismatches += 1
    n = len(sample)
    print(f"rouge-score all-pairs (original Self-Instruct): {t_orig:,.0f}s extrapolated from {n} candidates")
    print(f"rouge-score pre-tokenized (Alpaca variant):     {t_alpaca:,.0f}s extrapolated from {n} candidates")
    print(f"identical decisions on {len(check)} candidates: {mismatches == 0} ({mismatches} mismatches)")
    print(f"speed-up: {t_orig / ours_total:,.0f}x vs original, {t_alpaca / ours_total:,.0f}x vs pre-tokenized")


if __name__ == "__main__":
    main()
