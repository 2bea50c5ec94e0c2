"""conversation: a ``conversation`` list of ``{"role", "content"}`` turns — the sharegpt variant
common in the wild (and in the seed notes), with an optional ``system``, ``tools`` and media."""

from __future__ import annotations

from typing import Any

from datamill.errors import CannotExpress, RecordError
from datamill.formats import fields, messages
from datamill.formats.base import Format, Row
from datamill.record import Record


def detect(row: Row) -> bool:
    conv = row.get("conversation")
    return isinstance(conv, list) and bool(conv) and isinstance(conv[0], dict) and "role" in conv[0]


def to_record(row: Row) -> Record:
    if row.get("conversation") is None:
        raise RecordError("missing required field 'conversation'")
    system, msgs = messages.parse_turns(fields.nested(row, "conversation", list), "conversation")
    rec = Record(messages=msgs, system=system or fields.opt_str(row, "system"), tools=fields.tools(row))
    fields.set_media(rec, row)
    return rec


def from_record(rec: Record) -> Row:
    if rec.text is not None or rec.kind in ("preference", "kto"):
        raise CannotExpress(f"conversation holds SFT dialogues only, not {rec.kind} records")
    row: dict[str, Any] = {"conversation": messages.to_turns(rec.messages)}
    if rec.system is not None:
        row["system"] = rec.system
    if rec.tools is not None:
        row["tools"] = messages.openai_tools(rec.tools)
    row.update(rec.media())
    return row


def dataset_info(columns: set[str], ranking: bool, roles: set[str] = frozenset()) -> dict[str, Any] | None:
    entry = messages.dataset_info(columns, ranking, roles)
    if entry is not None:
        entry["columns"]["messages"] = "conversation"
        if "system" in columns:
            entry["columns"]["system"] = "system"
    return entry


FORMAT = Format(
    name="conversation",
    description='a "conversation" list of {role, content} turns (sharegpt variant seen in the wild)',
    detect=detect,
    to_record=to_record,
    from_record=from_record,
    dataset_info=dataset_info,
    cannot_hold="pretraining text, preference pairs, KTO labels",
    nested="conversation",
)
