"""A review project as a recipe input (``inputs: [{path: review.db, format: review}]``, or any SQLite file
whose tables are a review project's): the records ``review export`` would write — accepted, edited,
chosen/rejected pairs, rated, labelled, KTO-labelled, each with ``meta.review`` — so reviewed data goes
on through a recipe's steps, split, mix and report. Only the kept records are read: rejected, tied and
both-bad items and those still pending are not input (``review export`` writes the rejected ones to
``dropped.jsonl`` with the reason; ``review stats`` counts the pending). Plugged into the pipeline by
``datamill.ingest.source_reader``."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datamill.dataset import Quarantined
from datamill.errors import DatamillError
from datamill.ingest.dumps import options
from datamill.record import Record

FORMAT = "review"
PER_ROW = False  # a project that cannot be read is an unreadable input file, not a bad row
SQLITE = b"SQLite format 3\x00"


def claims(path: str | Path, fmt: str | None = None) -> bool:
    """Anything declared ``format: review``, or a SQLite file with a review project's tables."""
    if fmt is not None:
        return fmt == FORMAT
    p = Path(path)
    try:
        with p.open("rb") as f:
            if f.read(16) != SQLITE:
                return False
        con = sqlite3.connect(f"file:{p}?mode=ro", uri=True)
        try:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            return {"settings", "items", "answers", "assignments"} <= tables and con.execute(
                "SELECT 1 FROM settings WHERE key = 'task'").fetchone() is not None  # fmt: skip
        finally:
            con.close()
    except (OSError, sqlite3.Error):
        return False


@dataclass
class Options:
    """A project input takes no options yet: what it yields is what ``review export`` keeps."""


def where(rec: Record) -> str:
    return f"review item {rec.meta['review']['item']}"


def read(path: str | Path, **given: Any) -> Iterator[Record | Quarantined]:
    """The kept records of the project at ``path``, in item order."""
    from datamill.review.export import outcomes
    from datamill.review.store import Project

    options(Options, given, FORMAT)
    project = None
    try:
        project = Project(path)
        for _, outcome in outcomes(project):
            if outcome is not None and outcome.reason is None:
                yield from outcome.records
    except DatamillError as e:  # not a review project, or one this datamill cannot read: with the reason
        why = str(e).removeprefix(f"{path}: ")  # the run's report names the file
        yield Quarantined(str(path), str(path), None, 0, why, None, stage="read")
    finally:
        if project is not None:
            project.close()
