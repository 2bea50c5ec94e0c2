"""Active learning in `datamill review`: does the uncertainty-first queue teach the learner faster than
reviewing in random order, and does it bring the defects to people sooner?

    .venv/bin/python benchmarks/review_active.py                  # ~10 min on 2 cores
    .venv/bin/python benchmarks/review_active.py --per-class 10 --seed 0 --decisions 20,50,100,200 --repeats 3

The labelled set: LLaMA-Factory's alpaca demos (en + zh, ../shared/data/llamafactory) with known defects
injected into answers no filter flags — ``datamill.clean.inject``, as ``tests/test_clean_sft.py`` builds
its ground truth: ``--per-class`` of each of the ten defect classes per language (empty, echo, truncated,
refusal, placeholder, html, wrong language, mojibake, repetition, PII), the rest clean. The "human" answer
is the truth: reject a defect, accept a clean record.

One real review project (``review start``, shuffled by ``--seed``) with two annotators: ``sim`` reviews,
``heldout`` never answers — its half of the items (assigned round-robin) is the fixed held-out set the
learner's predictions are scored on. Everything is embedded once (MiniLM) and the project file copied,
so both orders start from the same state. Then ``sim`` answers the truth through ``answers.submit``:

- **uncertainty**: always ``queue.next_pending`` — the queue's own order (the judges' uncertainty; these
  records have no judge suggestions, so the file order until the learner is fit), then the learner's;
- **random**: a seeded random pending item.

The learner (``learner.fit``: logistic regression on MiniLM + judge features) is refit after every
``--refit-every`` decisions from 20 on, as ``review serve`` does in the background, and at every
checkpoint. Printed per checkpoint and order (the mean of ``--repeats`` runs, each from its own seed): the
learner's accuracy and balanced accuracy on the held-out half, its own cross-validated accuracy, and how
many defects people had seen; then the issue's figure — defects found in the first 10% of the pool
reviewed. The embedded project is kept in benchmarks/_work/review_active/ for the next run.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LF = ROOT.parent / "shared" / "data" / "llamafactory"
WORK = ROOT / "benchmarks" / "_work" / "review_active"  # git-ignored; the embedded project is reused
sys.path.insert(0, str(ROOT / "src"))

from sqlalchemy import func, select  # noqa: E402

import datamill  # noqa: E402
from datamill import ops  # noqa: E402
from datamill.clean.inject import inject  # noqa: E402
from datamill.ops.base import OpContext  # noqa: E402
from datamill.record import Record  # noqa: E402
from datamill.review import learner, queue  # noqa: E402
from datamill.review.answers import submit  # noqa: E402
from datamill.review.project import start  # noqa: E402
from datamill.review.schema import Annotator, Assignment, Item  # noqa: E402
from datamill.review.store import Project, ReviewError  # noqa: E402

FILTERS = ("empty_answer_filter", "echo_answer_filter", "mojibake_filter", "refusal_filter", "placeholder_filter",
           "answer_language_filter", "repetition_filter", "truncated_answer_filter")  # fmt: skip


def labelled(per_class: int, seed: int) -> list[tuple[Record, bool]]:
    """(record, is a defect) for the en and zh demos, defects injected only into records no filter flags
    (a flagged record is a real defect of the demo data, and its label would be unknown)."""
    filters = [ops.get(f)(ops.get(f).Config(), OpContext(seed=0, step=0, workdir=Path("w"))) for f in FILTERS]
    pools = {}
    for lang in ("en", "zh"):
        recs = [r for r in datamill.read(LF / f"alpaca_{lang}_demo.json") if isinstance(r, Record)]
        pools[lang] = [r for r in recs if not any(f.reason(r) for f in filters)]
    out = inject(pools["en"], pools["zh"], seed=seed + 1, per_class=per_class)
    out += inject(pools["zh"], pools["en"], seed=seed + 2, per_class=per_class)
    rng = random.Random(seed)
    rng.shuffle(out)
    return [(rec, label != "clean") for rec, label in out]


def project_for(data: list[tuple[Record, bool]], work: Path) -> tuple[Path, dict[str, bool]]:
    """The project (every item embedded) and each record id's truth."""
    src = work / "labelled.jsonl"
    truth = {}
    with src.open("w", encoding="utf-8") as f:
        for rec, defect in data:
            rec = copy.deepcopy(rec)
            rec.id = rec.compute_id()
            truth[rec.id] = defect
            f.write(json.dumps(rec.to_dict(), ensure_ascii=False) + "\n")
    db = work / "base.db"
    if not db.exists():  # else made by an earlier run with the same --per-class and --seed
        start(src, db, "sft", annotators=["sim", "heldout"], seed=0)
    t = time.perf_counter()
    project = Project(db)
    n = learner.embed_missing(project)
    project.close()  # the last connection checkpoints the WAL into the file the orders copy
    print(f"embedded {n:,} items with MiniLM in {time.perf_counter() - t:.0f} s", flush=True)
    return db, truth


def held_out(project: Project, truth: dict[str, bool]) -> tuple[float, float]:
    """The learner's accuracy and balanced accuracy on the held-out annotator's items."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score

    with project.read() as s:
        rows = s.execute(
            select(Item.record_id, Item.prediction)
            .join(Assignment, Assignment.item_id == Item.id)
            .join(Annotator, Annotator.id == Assignment.annotator_id)
            .where(Annotator.name == "heldout")
        ).all()
    y = ["reject" if truth[r.record_id] else "accept" for r in rows]
    p = [r.prediction["decision"] for r in rows]
    return accuracy_score(y, p), balanced_accuracy_score(y, p)


def pick(project: Project, sim: Annotator, order: str, rng: random.Random, fitted: bool) -> int:
    """The next assignment: the queue's (``next_pending``) for uncertainty-first once the learner is fit;
    before that, with no judge suggestions, the queue is the file order — a seeded random pick here, so
    each repeat starts from a different sample, as a differently shuffled file would."""
    if order == "uncertainty" and fitted:
        return queue.next_pending(project, sim)
    with project.read() as s:
        mine = select(Assignment.id).where(Assignment.annotator_id == sim.id, Assignment.status == "pending")
        return rng.choice(sorted(s.scalars(mine).all()))


def simulate(db: Path, truth: dict[str, bool], order: str, checkpoints: list[int], every: int, seed: int) -> dict:
    """``sim`` answers the truth in ``order`` until the last checkpoint and a tenth of its pool."""
    project = Project(db)
    with project.read() as s:
        sim = s.scalar(select(Annotator).where(Annotator.name == "sim"))
        pool = s.scalar(select(func.count()).select_from(Assignment).where(Assignment.annotator_id == sim.id))
    rng = random.Random(seed)
    tenth = max(1, round(pool / 10))
    found, found_tenth, rows, fitted = 0, None, {}, None
    for n in range(1, max(max(checkpoints), tenth) + 1):
        aid = pick(project, sim, order, rng, fitted is not None)
        with project.read() as s:
            record_id = s.scalar(select(Item.record_id).join(Assignment, Assignment.item_id == Item.id)
                                 .where(Assignment.id == aid))  # fmt: skip
        submit(project, sim, aid, {"decision": "reject" if truth[record_id] else "accept"})
        found += truth[record_id]
        if n == tenth:
            found_tenth = found
        if n <= max(checkpoints) and n >= learner.MIN_DECISIONS and (n % every == 0 or n in checkpoints):
            try:
                fitted = learner.fit(project)
            except ReviewError:  # e.g. no defect seen yet: nothing to learn from
                fitted = None
        if n in checkpoints:
            acc, bal = held_out(project, truth) if fitted else (None, None)
            rows[n] = {"accuracy": acc, "balanced": bal, "cv": fitted and fitted["accuracy"], "defects_seen": found}
    project.close()
    return {"checkpoints": rows, "tenth": tenth, "found_tenth": found_tenth, "pool": pool}


def mean(values: list) -> float | None:
    got = [v for v in values if v is not None]
    return sum(got) / len(got) if got else None


def fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.1%}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-class", type=int, default=10, help="defects of each class injected per language")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--decisions", default="20,50,100,200", help="checkpoints (human decisions)")
    ap.add_argument("--refit-every", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3, help="runs of each order, each from its own seed")
    args = ap.parse_args()
    checkpoints = sorted(int(x) for x in args.decisions.split(","))
    data = labelled(args.per_class, args.seed)
    defects = sum(d for _, d in data)
    print(f"{len(data):,} records, {defects:,} with an injected defect ({defects / len(data):.1%})", flush=True)
    work = WORK / f"per{args.per_class}_seed{args.seed}"
    work.mkdir(parents=True, exist_ok=True)
    base, truth = project_for(data, work)
    results: dict[str, list[dict]] = {"uncertainty": [], "random": []}
    for repeat in range(args.repeats):
        for order in results:
            db = work / f"{order}.db"
            for suffix in ("", "-wal", "-shm"):
                Path(f"{db}{suffix}").unlink(missing_ok=True)
            shutil.copy(base, db)
            t = time.perf_counter()
            results[order].append(simulate(db, truth, order, checkpoints, args.refit_every, args.seed + repeat))
            print(f"repeat {repeat + 1}, {order}: {time.perf_counter() - t:.0f} s", flush=True)
    pool = results["uncertainty"][0]["pool"]
    print(f"\npool reviewed by `sim`: {pool:,} items; held out (never answered): {len(data) - pool:,}; "
          f"mean of {args.repeats} repeats ('fit': in how many a learner could be fit — it needs both decisions)\n")
    print("| decisions | order | held-out accuracy | balanced accuracy | learner's CV accuracy | defects seen | fit |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for n in checkpoints:
        for order, runs in results.items():
            at = [r["checkpoints"][n] for r in runs]
            scores = " | ".join(fmt(mean([a[k] for a in at])) for k in ("accuracy", "balanced", "cv"))
            fits = sum(a["accuracy"] is not None for a in at)
            print(f"| {n} | {order} | {scores} | {mean([a['defects_seen'] for a in at]):.1f} | {fits}/{len(at)} |")
    u, r = (mean([x["found_tenth"] for x in results[o]]) for o in ("uncertainty", "random"))
    tenth = results["uncertainty"][0]["tenth"]
    print(f"\ndefects found in the first 10% of the pool ({tenth} items): uncertainty-first {u:.1f}, random {r:.1f} "
          f"— {u / r:.2f}×" if r else "")  # fmt: skip


if __name__ == "__main__":
    main()
