"""datamill: the record model itself, one JSON object per record with ``id`` and ``meta`` — lossless,
for intermediate files between pipeline runs."""

from __future__ import annotations

from typing import Any

from datamill.errors import RecordError
from datamill.formats import fields
from datamill.formats.base import Format, Row
from datamill.record import ROLES, Record

IDENTITY = {r: r for r in ROLES}


def detect(row: Row) -> bool:
    return "id" in row and "meta" in row and ("messages" in row or "text" in row)


def to_record(row: Row) -> Record:
    """Every field type-checked: a native file may have been edited by hand or another tool."""
    text = row.get("text")
    if text is not None and not isinstance(text, str):
        raise RecordError(f"field 'text' must be a string, got {type(text).__name__}")
    system, msgs = fields.turns(row.get("messages") or [], "messages", "role", "content", IDENTITY)
    if system is not None:
        raise RecordError("messages[0] is a system turn; the system prompt belongs in 'system'")
    rec = Record(
        messages=msgs,
        system=fields.opt_str(row, "system"),
        tools=fields.tools(row),
        text=text,
        label=fields.label(row, "label"),
    )
    for side in ("chosen", "rejected"):
        if row.get(side) is not None:
            setattr(rec, side, fields.one_turn(row[side], side, "role", "content", IDENTITY))
    fields.set_media(rec, row)
    meta = row.get("meta")
    if not isinstance(meta, dict):
        raise RecordError("field 'meta' must be an object")
    rec.meta = dict(meta)
    if isinstance(row.get("id"), str):
        rec.id = row["id"]
    return rec


def from_record(rec: Record) -> Row:
    return rec.to_dict()


def dataset_info(columns: set[str], ranking: bool, roles: set[str] = frozenset()) -> dict[str, Any] | None:
    return None


FORMAT = Format(
    name="datamill",
    description="datamill's own record model with id and meta (lossless; for intermediate files)",
    detect=detect,
    to_record=to_record,
    from_record=from_record,
    dataset_info=dataset_info,
)
