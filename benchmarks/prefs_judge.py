"""Which judge — or judge-free signal — agrees with the prior "text-davinci-003 beats davinci"?

    .venv/bin/python benchmarks/prefs_judge.py                      # embedded Gemma 270M, first 12 prompts
    .venv/bin/python benchmarks/prefs_judge.py --n 252              # all 252 prompts (about 45 min on 1 thread)
    .venv/bin/python benchmarks/prefs_judge.py --signals verdict-one-order,pointwise --reason
    .venv/bin/python benchmarks/prefs_judge.py --n 252 --backend openai --base-url http://127.0.0.1:8000/v1 --model qwen

On the first ``--n`` prompts of the four Self-Instruct prediction files (grouped by prompt, text-davinci-003
against davinci, answers clipped to ``--max-chars`` for the judge as the dpo-from-answers recipe does), it
prints for each signal: compared / agree / disagree / ties (and position-inconsistent for judges), the
agreement among decided comparisons and the seconds taken. ``--signals`` picks from:

- ``likelihood``: judge_pairwise ``method: likelihood`` — log P("A") − log P("B") of the reply's first
  token, averaged over both orders (the position bias cancels);
- ``verdict``: judge_pairwise ``method: verdict`` — a JSON verdict in both orders, one that flips is a tie;
- ``verdict-one-order``: the same verdict asked in one order only, each model shown first once;
- ``pointwise``: judge_score on both answers, the higher score wins;
- ``loglik``: no prompt to judge — the mean per-token log-likelihood of each answer after the prompt,
  under the embedded model (``--backend embedded`` only), the likelier answer wins.

Two judge-free rules always run: "the shorter answer wins" and "the answer that does not run on into
new made-up Input:/Output: examples wins"; and for ``likelihood`` and ``loglik`` a combination: the
run-on rule where it decides, the model signal where it does not. Every pipeline step runs uncached.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from datamill import formats
from datamill.formats import predictions
from datamill.pipeline import recipe as recipes
from datamill.pipeline.runner import Runner
from datamill.prefs import judge
from datamill.prefs.candidates import clip

ROOT = Path(__file__).resolve().parents[1]
SI = ROOT.parent / "shared" / "data" / "self_instruct"
WORK = Path(__file__).resolve().parent / "_work" / "prefs"
GOOD, BASE = "text-davinci-003", "davinci"
RAMBLE = re.compile(r"\n\s*(Input|Output|Instruction|Task)\s*:")
SIGNALS = ("likelihood", "verdict", "verdict-one-order", "pointwise", "loglik")
Vote = bool | None  # True: the signal prefers GOOD's answer, False: BASE's, None: no preference

RULES: dict[str, Callable[[str, str], Vote]] = {
    "shorter answer wins": lambda g, b: None if len(g) == len(b) else len(g) < len(b),
    "no run-on examples wins": lambda g, b: (
        None if bool(RAMBLE.search(g)) == bool(RAMBLE.search(b)) else not RAMBLE.search(g)
    ),
}


def run(name: str, steps: list[dict], n: int) -> tuple[list[dict], dict | None, float]:
    """The grouped, judged records of a pipeline on the first ``n`` prompts, the stats of its last step (if
    any) and the seconds the run took."""
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
    start = time.perf_counter()
    stats = Runner(recipes.load(path)).run().stats
    seconds = time.perf_counter() - start
    lines = (WORK / name / "data-00000.jsonl").read_text(encoding="utf-8").splitlines()
    last = next((s for s in stats["steps"] if steps and s["op"] == steps[-1]["op"]), None)
    return [json.loads(x) for x in lines if x.strip()], last, seconds


def prompt_of(rec: dict) -> str:
    return rec["messages"][0]["content"]


def answers(rec: dict) -> tuple[str, str]:
    by_model = {c["model"]: str(c.get("text") or "") for c in rec["meta"]["candidates"]}
    return by_model[GOOD], by_model[BASE]


def tally(votes: list[Vote]) -> dict[str, int | float | None]:
    agree, disagree = votes.count(True), votes.count(False)
    decided = agree + disagree
    return {
        "compared": len(votes),
        "agree": agree,
        "disagree": disagree,
        "ties": votes.count(None),
        "agreement": round(agree / decided, 4) if decided else None,
    }


def judged_votes(records: list[dict]) -> dict[str, Vote]:
    """Per prompt: which model the pairwise judgment preferred."""
    out: dict[str, Vote] = {}
    for rec in records:
        for j in rec["meta"].get("judgments", []):
            out[prompt_of(rec)] = j[f"{j['winner']}_model"] == GOOD if j["winner"] in ("a", "b") else None
    return out


def loglik_votes(records: list[dict], max_chars: int, threads: int) -> dict[str, Vote]:
    """Per prompt: is text-davinci-003's answer the likelier one, per token, after the prompt (framed as
    the embedded backend frames a chat)?"""
    from datamill.clean.model_scores import Scorer
    from datamill.llm.embedded import EmbeddedModel

    scorer = Scorer(None, 2048, threads)
    tokenize = scorer.llm.tokenize

    def mean_logprob(prompt: str, answer: str) -> float:
        frame, _ = EmbeddedModel.chat_prompt([{"role": "user", "content": clip(prompt, max_chars)}])
        head = tokenize(frame.encode("utf-8"), add_bos=True, special=True)
        tail = tokenize((" " + clip(answer, max_chars)).encode("utf-8"), add_bos=False)
        return float(scorer.token_logprobs(head + tail, start=len(head)).mean())

    out = {}
    for rec in records:
        g, b = (mean_logprob(prompt_of(rec), text) for text in answers(rec))
        out[prompt_of(rec)] = None if g == b else g > b
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=12, help="prompts (of 252)")
    ap.add_argument("--signals", default="likelihood,verdict,loglik", help=f"comma-separated, of {', '.join(SIGNALS)}")
    ap.add_argument("--backend", default="embedded")
    ap.add_argument("--base-url", default="http://127.0.0.1:8000/v1")
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--threads", type=int, default=1, help="embedded backend: llama.cpp threads")
    ap.add_argument("--max-chars", type=int, default=1500, help="each answer is clipped to this for the judge")
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--reason", action="store_true", help="verdicts/scores with a reason (tiny models break the JSON)")
    args = ap.parse_args()
    signals = args.signals.split(",")
    if unknown := set(signals) - set(SIGNALS):
        ap.error(f"unknown signals: {', '.join(sorted(unknown))}")
    formats.FORMATS.setdefault("predictions", predictions.FORMAT)
    llm = {"backend": args.backend, "model": args.model, "max_tokens": args.max_tokens, "temperature": 0}
    if args.backend == "openai":
        llm["base_url"] = args.base_url
    else:
        llm["n_threads"] = args.threads
    llm["cache"] = False  # time the model, not the cache
    common = {"models": [GOOD, BASE], "max_chars": args.max_chars, "llm": llm}
    table: list[tuple[str, dict, float]] = []

    def report(label: str, row: dict, seconds: float, step: dict | None = None) -> None:
        table.append((label, row, seconds))
        counters = {"counters": step["counters"]} if step else {}
        print(json.dumps({"signal": label, **row, "seconds": round(seconds, 1), **counters}), flush=True)

    grouped, _, _ = run("grouped", [], args.n)
    pairs = {prompt_of(rec): answers(rec) for rec in grouped}
    for name, rule in RULES.items():
        start = time.perf_counter()
        report(f"rule: {name}", tally([rule(g, b) for g, b in pairs.values()]), time.perf_counter() - start)
    combine = {}  # model signal → (its votes, seconds), for "the run-on rule where it decides, else the signal"
    for signal in signals:
        if signal in ("likelihood", "verdict"):
            step = {"op": "judge_pairwise", **common, "method": signal, "reason": args.reason}
            records, st, seconds = run(f"pairwise-{signal}", [step], args.n)
            judgments = [j for rec in records for j in rec["meta"].get("judgments", [])]
            report(f"judge_pairwise method: {signal}", judge.agreement(judgments, GOOD, BASE), seconds, st)
            if signal == "likelihood":
                combine[signal] = judged_votes(records), seconds
        elif signal == "verdict-one-order":
            for models in ([GOOD, BASE], [BASE, GOOD]):
                step = {"op": "judge_pairwise", **common, "models": models, "method": "verdict", "swap": False}
                records, st, seconds = run(f"pairwise-one-order-{models[0]}", [{**step, "reason": args.reason}], args.n)
                judgments = [j for rec in records for j in rec["meta"].get("judgments", [])]
                label = f"judge_pairwise method: verdict, one order, {models[0]} shown first"
                report(label, judge.agreement(judgments, GOOD, BASE), seconds, st)
        elif signal == "pointwise":
            records, st, seconds = run("pointwise", [{"op": "judge_score", **common, "reason": args.reason}], args.n)
            votes = []
            for rec in records:
                by_model = {c["model"]: c.get("score") for c in rec["meta"]["candidates"]}
                g, b = by_model.get(GOOD), by_model.get(BASE)
                votes.append(None if g is None or b is None or g == b else g > b)
            report("judge_score (the higher score wins)", tally(votes), seconds, st)
        else:
            if args.backend != "embedded":
                ap.error("loglik scores with the embedded model: --backend embedded")
            start = time.perf_counter()
            votes = loglik_votes(grouped, args.max_chars, args.threads)
            combine[signal] = votes, time.perf_counter() - start
            report("mean per-token log-likelihood of the answer", tally(list(votes.values())), combine[signal][1])
    run_on = RULES["no run-on examples wins"]
    for signal, (votes, seconds) in combine.items():
        mixed = [vote if (rule := run_on(*pairs[p])) is None else rule for p, vote in votes.items()]
        report(f"no run-on examples wins, else {signal}", tally(mixed), seconds)
    print("\n| signal | compared | agree | disagree | ties | agreement (decided) | seconds |")
    print("|---|---|---|---|---|---|---|")
    for label, row, seconds in table:
        ties = row["ties"] + row.get("inconsistent", 0)
        cells = [row["compared"], row["agree"], row["disagree"], ties, row["agreement"], round(seconds)]
        print(f"| {label} | " + " | ".join("–" if c is None else str(c) for c in cells) + " |")


if __name__ == "__main__":
    main()
