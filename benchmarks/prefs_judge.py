"""How far does an LLM judge agree with the prior "text-davinci-003 beats davinci"?

    .venv/bin/python benchmarks/prefs_judge.py                      # embedded Gemma 270M, first 12 prompts
    .venv/bin/python benchmarks/prefs_judge.py --no-reason          # verdicts/scores without reasons
    .venv/bin/python benchmarks/prefs_judge.py --n 252 --backend openai --base-url http://127.0.0.1:8000/v1 --model qwen

Runs the ``dpo-from-answers`` pipeline end to end (the four Self-Instruct prediction files → group_answers
→ judge_pairwise between text-davinci-003 and davinci → make_pairs) on the first ``--n`` prompts, with and
without the position swap, plus judge_score (pointwise) on the same two answers, and prints for each:
decided / agree / disagree / ties / position-inconsistent, the agreement among decided verdicts and the
length-bias counters. Two judge-free baselines over all 252 prompts put the numbers in context: "the
shorter answer wins" and "the answer that does not run on into new made-up Input:/Output: examples wins".
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import time
from pathlib import Path

import yaml

from datamill import formats
from datamill.formats import predictions
from datamill.pipeline import recipe as recipes
from datamill.pipeline.runner import Runner
from datamill.prefs import judge

ROOT = Path(__file__).resolve().parents[1]
SI = ROOT.parent / "shared" / "data" / "self_instruct"
WORK = Path(__file__).resolve().parent / "_work" / "prefs"
GOOD, BASE = "text-davinci-003", "davinci"
RAMBLE = re.compile(r"\n\s*(Input|Output|Instruction|Task)\s*:")


def baselines() -> dict[str, dict]:
    def load(model: str) -> list[str]:
        path = SI / f"predictions_{model}.jsonl"
        return [json.loads(x)["response"].strip() for x in path.open(encoding="utf-8")]

    good, base = load(GOOD), load(BASE)
    out = {}
    for name, prefers_good in (
        ("shorter answer wins", lambda g, b: None if len(g) == len(b) else len(g) < len(b)),
        (
            "no run-on examples wins",
            lambda g, b: None if bool(RAMBLE.search(g)) == bool(RAMBLE.search(b)) else not RAMBLE.search(g),
        ),
    ):
        votes = [prefers_good(g, b) for g, b in zip(good, base, strict=True)]
        agree, disagree = votes.count(True), votes.count(False)
        out[name] = {
            "compared": len(votes),
            "agree": agree,
            "disagree": disagree,
            "ties": votes.count(None),
            "agreement": round(agree / (agree + disagree), 4) if agree + disagree else None,
        }
    return out


def run(name: str, steps: list[dict], n: int) -> tuple[Runner, float]:
    body = {
        "name": name,
        "seed": 1,
        "workers": 1,
        "chunk_size": 64,
        "inputs": [{"path": str(p), "format": "predictions"} for p in sorted(SI.glob("predictions_*.jsonl"))],
        "steps": [{"op": "group_answers"}, {"op": "limit", "n": n}, *steps],
        "output": {"path": str(WORK / name), "format": "datamill"},  # the judged records, meta and all
    }
    shutil.rmtree(WORK / name, ignore_errors=True)
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / f"{name}.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False), encoding="utf-8")
    runner = Runner(recipes.load(path))
    start = time.perf_counter()
    runner.result = runner.run()
    return runner, time.perf_counter() - start


def judged(runner: Runner) -> list[dict]:
    path = runner.outdir / "data-00000.jsonl"
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=12, help="prompts (of 252)")
    ap.add_argument("--backend", default="embedded")
    ap.add_argument("--base-url", default="http://127.0.0.1:8000/v1")
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--max-chars", type=int, default=400, help="each answer is clipped to this for the judge")
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--no-reason", action="store_true", help="ask for the verdict/score only (tiny models)")
    args = ap.parse_args()
    formats.FORMATS.setdefault("predictions", predictions.FORMAT)
    llm = {"backend": args.backend, "model": args.model, "max_tokens": args.max_tokens, "temperature": 0}
    if args.backend == "openai":
        llm["base_url"] = args.base_url
    common = {"models": [GOOD, BASE], "max_chars": args.max_chars, "reason": not args.no_reason, "llm": llm}
    print(json.dumps({"baselines (all 252 prompts, no judge)": baselines()}, indent=2))
    for label, swap, models in (
        ("both orders", True, [GOOD, BASE]),
        (f"one order, {GOOD} shown first", False, [GOOD, BASE]),
        (f"one order, {BASE} shown first", False, [BASE, GOOD]),
    ):
        step = {"op": "judge_pairwise", **common, "swap": swap, "models": models}
        runner, seconds = run(f"pairwise-{label.split(',')[0].replace(' ', '-')}-{models[0]}", [step], args.n)
        st = next(s for s in runner.result.stats["steps"] if s["op"] == "judge_pairwise")
        judgments = [j for rec in judged(runner) for j in rec["meta"].get("judgments", [])]
        report = judge.agreement(judgments, GOOD, BASE)
        print(json.dumps({f"pairwise, {label}": report, "counters": st["counters"], "seconds": round(seconds, 1)}))
    runner, seconds = run("pointwise", [{"op": "judge_score", **common}], args.n)
    st = next(s for s in runner.result.stats["steps"] if s["op"] == "judge_score")
    tally = {"agree": 0, "disagree": 0, "ties": 0, "unscored": 0}
    for rec in judged(runner):
        by_model = {c["model"]: c.get("score") for c in rec["meta"]["candidates"]}
        g, b = by_model.get(GOOD), by_model.get(BASE)
        key = "unscored" if g is None or b is None else "ties" if g == b else "agree" if g > b else "disagree"
        tally[key] += 1
    decided = tally["agree"] + tally["disagree"]
    tally["agreement"] = round(tally["agree"] / decided, 4) if decided else None
    print(
        json.dumps(
            {"pointwise (score 003 vs davinci)": tally, "counters": st["counters"], "seconds": round(seconds, 1)}
        )
    )


if __name__ == "__main__":
    main()
