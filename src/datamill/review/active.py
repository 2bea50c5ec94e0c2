"""Active learning around the queue: the queues' order (uncertainty first), the background refit of
the learner while the app keeps serving, and auto-deciding what the learner is sure of — allowed only
once its held-out accuracy exists, so nobody trusts a learner whose accuracy they have not seen."""

from __future__ import annotations

import logging
import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from datamill.review import learner
from datamill.review.schema import Answer, Assignment, Item
from datamill.review.store import Project, ReviewError

log = logging.getLogger(__name__)
REFIT_EVERY = 10  # new answers between background refits
AUTO = "learner"  # the name auto-decisions are exported under


def rerank(s: Session, settings: dict[str, Any]) -> None:
    """Set every pending assignment's rank from its item's uncertainty (lowest rank first: the most
    uncertain item). A gold item takes the rank found at a fixed, seeded share of the data's ranks, so
    gold stays spread through every queue whatever the learner sorts first."""
    data = select(Item.id).where(Item.gold.is_(None))
    unsure = select(Item.uncertainty).where(Item.id == Assignment.item_id).scalar_subquery()
    s.execute(
        update(Assignment).where(Assignment.status == "pending", Assignment.item_id.in_(data)).values(rank=1 - unsure),
        execution_options={"synchronize_session": False},
    )
    gold = s.scalars(select(Item.id).where(Item.gold.is_not(None))).all()
    if not gold:
        return
    ranks = sorted(s.scalars(select(Assignment.rank).where(Assignment.status == "pending",
                                                            Assignment.item_id.in_(data))).all())  # fmt: skip
    for item_id in gold:
        share = random.Random(f"{settings['seed']}:gold-rank:{item_id}").random()
        rank = ranks[int(share * len(ranks))] if ranks else 0.5
        s.execute(update(Assignment).where(Assignment.item_id == item_id, Assignment.status == "pending")
                  .values(rank=rank), execution_options={"synchronize_session": False})  # fmt: skip


@dataclass
class AutoSummary:
    decided: Counter[str] = field(default_factory=Counter)
    below: int = 0  # open items the learner was less sure of
    report: dict[str, Any] = field(default_factory=dict)


def auto_decide(project: Project, min_confidence: float, actor: str = "cli") -> AutoSummary:
    """Decide every open item (no answer yet) whose prediction reaches ``min_confidence``: the item is
    marked ``auto`` with the decision and confidence, leaves every queue, and exports with
    ``meta.review.auto``. Refused until the learner's held-out accuracy exists."""
    if not 0 < min_confidence <= 1:
        raise ReviewError(f"--min-confidence must be above 0 and at most 1, not {min_confidence:g}")
    fitted = learner.report(project)
    if fitted is None or fitted.get("accuracy") is None:
        why = "the learner has not been fit yet"
        if fitted is not None:
            why = f"its last fit, on {fitted['decisions']} decisions, had too few of one kind to cross-validate"
        raise ReviewError(
            f"refusing to auto-decide: the learner has no held-out accuracy yet ({why}). It needs "
            f"{learner.MIN_DECISIONS} human decisions with at least two of each kind; then run "
            "`datamill review learn PROJECT` (or let `review serve` refit) and check its accuracy first"
        )
    summary = AutoSummary(report=fitted)
    with project.write(actor) as w:
        s = w.session
        waiting = (Item.status == "open", Item.gold.is_(None), Item.auto.is_(None), Item.prediction.is_not(None))
        open_items = s.execute(select(Item.id, Item.prediction).where(*waiting)).all()
        for item_id, pred in open_items:
            if pred.get("fit") != fitted["fits"] or pred["confidence"] < min_confidence:
                summary.below += 1
                continue
            if s.scalar(select(func.count(Answer.id)).where(Answer.item_id == item_id)):
                continue  # answered since it was read: people go first
            auto = {"decision": pred["decision"], "confidence": pred["confidence"], "min_confidence": min_confidence,
                    "accuracy": fitted["accuracy"], "decisions": fitted["decisions"], "fit": fitted["fits"],
                    "at": w.at}  # fmt: skip
            s.execute(update(Item).where(Item.id == item_id).values(status="auto", auto=auto))
            s.execute(update(Assignment).where(Assignment.item_id == item_id, Assignment.status == "pending")
                      .values(status="auto"))  # fmt: skip
            w.log("auto-decide", "items", item_id, before={"status": "open"}, after={"status": "auto", "auto": auto})
            summary.decided[pred["decision"]] += 1
    return summary


def auto_vote(task: str, auto: dict[str, Any]) -> dict[str, Any]:
    """An auto-decision as the answer it stands for (what :func:`datamill.review.decide.decide` reads)."""
    cls = auto["decision"]
    why = f"auto-decided by the learner (confidence {auto['confidence']:.3f})"
    vote: dict[str, Any] = {"name": AUTO, "updated_at": auto["at"], "choice": None, "labels": None, "ratings": None,
                            "record": None, "reason": why}  # fmt: skip
    if task == "pairwise" and cls.startswith("candidate "):
        return vote | {"decision": "ab"[int(cls.split()[1])], "choice": int(cls.split()[1])}
    if task == "label":
        return vote | {"decision": "label", "labels": [cls]}
    return vote | {"decision": cls}


class Refitter:
    """Refits the learner in a background thread once ``learner.MIN_DECISIONS`` answers exist and again
    after every ``every`` new ones, so a request never waits for it; with ``auto_confidence`` each refit
    that has a held-out accuracy is followed by auto-deciding above it. One refit runs at a time: answers
    that arrive meanwhile start the next when it ends."""

    def __init__(self, project: Project, every: int = REFIT_EVERY, auto_confidence: float | None = None,
                 embedder: Any = None):  # fmt: skip
        if every < 1:
            raise ReviewError("--refit-every must be at least 1")
        self.project, self.every, self.auto_confidence, self.embedder = project, every, auto_confidence, embedder
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.error: str | None = None
        self.enabled = project.task in learner.LEARNABLE
        with project.read() as s:
            self.answers = s.scalar(select(func.count(Answer.id))) or 0
        fitted = learner.report(project)
        self.fitted_at = -1 if fitted is None else self.answers  # answers counted at the last fit (-1: never)
        if self.enabled and (fitted is None or fitted["decisions"] < learner.decisions(project)):
            self._maybe_start(force=True)

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def answered(self) -> None:
        """A new answer was stored (cheap: counts, and starts a refit when one is due)."""
        with self.lock:
            self.answers += 1
        self._maybe_start()

    def _maybe_start(self, force: bool = False) -> None:
        with self.lock:
            due = self.answers >= learner.MIN_DECISIONS and (
                force or self.fitted_at < 0 or self.answers - self.fitted_at >= self.every)  # fmt: skip
            if not self.enabled or self.running or not due:
                return
            self.fitted_at = self.answers
            self.thread = threading.Thread(target=self._run, name="datamill-review-refit", daemon=True)
            self.thread.start()

    def _run(self) -> None:
        try:
            learner.fit(self.project, self.embedder)
            self.error = None
            if self.auto_confidence is not None and (learner.report(self.project) or {}).get("accuracy") is not None:
                auto_decide(self.project, self.auto_confidence, actor=AUTO)
        except ReviewError as e:  # too few decisions of a kind: wait for more answers
            self.error = str(e)
            with self.lock:
                self.fitted_at = self.answers  # retry after `every` more
        except Exception as e:  # noqa: BLE001 - the server keeps serving; the stats page shows it
            log.exception("review learner refit failed")
            self.error = f"refit failed: {e}"
        with self.lock:
            again = self.answers - self.fitted_at >= self.every
        if again:
            self.thread = None
            self._maybe_start()

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the refit in progress (tests, and the CLI's shutdown)."""
        thread = self.thread
        if thread is not None:
            thread.join(timeout)
