"""Bringing a project made by an older datamill to the current schema when it is opened: schema 1 had
no questions, gold items or filter columns, schema 2 nothing for active learning. The missing columns
are added (portable ``ALTER TABLE … ADD COLUMN``), filled in from each item's record, suggestions and
answers, the queues ranked uncertainty first, and the upgrade is one transaction with its history row —
a project is never left half upgraded."""

from __future__ import annotations

from typing import Any

from sqlalchemy import LargeBinary, select, text, update

from datamill.review.active import rerank
from datamill.review.answers import answer_dict
from datamill.review.items import facets
from datamill.review.questions import differ, values
from datamill.review.schema import SCHEMA_VERSION, Answer, Item, Setting

ADDED = {  # version → table → (column, SQL type); None: the dialect's binary type
    2: {"items": [("gold", "JSON"), ("score", "FLOAT"), ("source", "VARCHAR(1000)"),
                  ("tags", "TEXT DEFAULT '' NOT NULL"), ("disagree", "BOOLEAN DEFAULT FALSE NOT NULL")],
        "answers": [("responses", "JSON")]},
    3: {"items": [("embedding", None), ("uncertainty", "FLOAT DEFAULT 0.5 NOT NULL"), ("prediction", "JSON"),
                  ("auto", "JSON")],
        "assignments": [("rank", "FLOAT DEFAULT 0.5 NOT NULL")]},
}  # fmt: skip
INDEXES = {
    2: [("ix_items_score", "items", "score"), ("ix_items_source", "items", "source"),
        ("ix_items_disagree", "items", "disagree")],
    3: [("assignments_next", "assignments", "annotator_id, status, rank, position")],
}  # fmt: skip


def upgrade(project: Any, settings: dict[str, Any]) -> None:
    """Upgrade ``project`` (a :class:`~datamill.review.store.Project`) from ``settings['schema']``."""
    old = settings.get("schema", 1)
    with project.write("upgrade") as w:
        s = w.session
        binary = LargeBinary().compile(dialect=s.get_bind().dialect)
        for version in range(old + 1, SCHEMA_VERSION + 1):
            for table, columns in ADDED[version].items():
                for name, kind in columns:
                    s.execute(text(f"ALTER TABLE {table} ADD COLUMN {name} {kind or binary}"))
            for name, table, columns in INDEXES[version]:
                s.execute(text(f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({columns})"))
        fields = settings | {"questions": settings.get("questions") or []}
        votes: dict[int, list[dict[str, Any]]] = {}
        for ans in s.scalars(select(Answer)):
            votes.setdefault(ans.item_id, []).append(values(fields, answer_dict(ans)))
        for item_id, record, hints in s.execute(select(Item.id, Item.record, Item.suggestions)).all():
            row = facets(record, hints) | {"disagree": differ(fields, votes.get(item_id, []))}
            s.execute(update(Item).where(Item.id == item_id).values(**row))
        rerank(s, fields)
        s.merge(Setting(key="schema", value=SCHEMA_VERSION))
        w.log("upgrade", "settings", None, before={"schema": old}, after={"schema": SCHEMA_VERSION})
    settings["schema"] = SCHEMA_VERSION
