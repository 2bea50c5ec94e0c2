"""``review export``: the reviewed data back into training files. OUT is a folder laid out like a
run's output: ``data-00000.<container>`` in any datamill format (registered in dataset_info.json),
``dropped.jsonl`` (rejected, tied, both-bad and unexpressible items, each with its reason and
``meta.review``) and ``review.json`` (the counts). Items still waiting for answers are counted, not
written: ``items = written + dropped + pending``; an adjudicator's decision settles an item, and so does
the learner's auto-decision (``meta.review.auto``). Gold items are not data: never written, not counted."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from datamill import formats
from datamill.dataset import DatasetWriter
from datamill.errors import CannotExpress
from datamill.io import outputs
from datamill.io.atomic import write_text_atomic
from datamill.io.writers import JsonlWriter
from datamill.review.answers import answer_dict
from datamill.review.decide import Outcome, decide, original
from datamill.review.schema import Annotator, Answer, Assignment, Item
from datamill.review.store import Project, now

BATCH = 500
CONTAINERS = ("jsonl", "json", "parquet", "csv")


@dataclass
class ExportSummary:
    items: int = 0
    written: int = 0
    dropped: int = 0
    pending: int = 0
    decisions: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    output: Path | None = None
    dropped_path: Path | None = None
    dataset_info: Path | None = None

    @property
    def balanced(self) -> bool:
        return self.items == self.written + self.dropped + self.pending

    def to_dict(self) -> dict[str, Any]:
        return {
            "items": self.items, "written": self.written, "dropped": self.dropped, "pending": self.pending,
            "balanced": self.balanced, "decisions": dict(self.decisions), "reasons": dict(self.reasons),
            "output": str(self.output) if self.output else None,
        }  # fmt: skip


def decided(project: Project) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]], int]]:
    """Every item of the data in order (gold items are never data) with its answers (each with the
    annotator's name) and how many were assigned."""
    last = -1
    while True:
        with project.read() as s:
            data = select(Item).where(Item.seq > last, Item.gold.is_(None))
            items = s.scalars(data.order_by(Item.seq).limit(BATCH)).all()
            if not items:
                return
            ids = [i.id for i in items]
            assigned = dict(
                s.execute(
                    select(Assignment.item_id, func.count()).where(Assignment.item_id.in_(ids)).group_by(
                        Assignment.item_id
                    )
                ).all()
            )
            votes: dict[int, list[dict[str, Any]]] = {}
            rows = s.execute(
                select(Answer, Annotator.name, Annotator.role)
                .join(Annotator, Annotator.id == Answer.annotator_id)
                .where(Answer.item_id.in_(ids))
                .order_by(Answer.id)
            )
            for ans, name, role in rows:
                votes.setdefault(ans.item_id, []).append(answer_dict(ans) | {"name": name, "role": role})
        for i in items:
            yield ({"id": i.id, "record": i.record, "payload": i.payload, "suggestions": i.suggestions,
                    "auto": i.auto}, votes.get(i.id, []), assigned.get(i.id, 0))  # fmt: skip
        last = items[-1].seq


def settled(item: dict[str, Any], votes: list[dict[str, Any]], assigned: int) -> bool:
    """Whether an item has its decision: everyone assigned answered, an adjudicator decided it, or the
    learner auto-decided it."""
    if item.get("auto") is not None and not votes:
        return True
    return any(v.get("role") == "adjudicator" for v in votes) or 0 < assigned <= len(votes)


def outcomes(project: Project) -> Iterator[tuple[dict[str, Any], Outcome | None]]:
    """Every data item in order with what the data gets (None while it is pending)."""
    task, questions = project.task, project.settings.get("questions")
    for item, votes, assigned in decided(project):
        yield item, decide(task, item, votes, questions) if settled(item, votes, assigned) else None


def export(
    project: Project,
    out: Path,
    fmt: str,
    *,
    container: str = "jsonl",
    name: str | None = None,
    keep_meta: bool = True,
    overwrite: bool = False,
) -> ExportSummary:
    formats.get(fmt)  # an unknown format fails before anything is written
    if container not in CONTAINERS:
        raise ValueError(f"--container must be one of {', '.join(CONTAINERS)}")
    summary = ExportSummary()
    data_path = out / f"data-00000.{container}"
    writer = DatasetWriter(data_path, fmt, keep_meta=keep_meta, name=name or out.name, overwrite=overwrite)
    dropped = JsonlWriter(out / "dropped.jsonl", output=True, overwrite=overwrite)
    try:
        for item, outcome in outcomes(project):
            summary.items += 1
            if outcome is None:
                summary.pending += 1
                continue
            summary.decisions[outcome.decision] += 1
            if outcome.reason is not None:
                _drop(dropped, summary, original(item, outcome.review), outcome.reason)
                continue
            for rec in outcome.records:
                try:
                    writer.write(rec)
                    summary.written += 1
                except CannotExpress as e:
                    _drop(dropped, summary, rec, f"{fmt} cannot hold it: {e}")
        if writer.count:
            writer.commit()
            summary.output, summary.dataset_info = data_path, writer.info_path
        else:
            writer.abort()
        dropped.commit()
        summary.dropped_path = dropped.path
    except BaseException:
        writer.abort()
        dropped.abort()
        raise
    _write_summary(out / "review.json", summary, project, fmt, overwrite)
    return summary


def _drop(dropped: JsonlWriter, summary: ExportSummary, rec, reason: str) -> None:
    summary.dropped += 1
    summary.reasons[reason if len(reason) < 120 else reason[:117] + "…"] += 1
    dropped.write({"id": rec.id, "op": "review", "reason": reason, "record": rec.to_dict()})


def _write_summary(path: Path, summary: ExportSummary, project: Project, fmt: str, overwrite: bool) -> None:
    outputs.check_replace(path, overwrite)
    body = {"project": project.target, "task": project.task, "format": fmt, "at": now(), **summary.to_dict()}
    write_text_atomic(path, json.dumps(body, ensure_ascii=False, indent=2) + "\n")
    outputs.record(path)
