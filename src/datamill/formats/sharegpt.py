"""sharegpt: ``conversations`` of ``{"from", "value"}`` turns (human, gpt, function_call, observation,
system) with optional ``system``, ``tools`` (JSON text), ``chosen``/``rejected`` turns, ``kto_tag``
and media — the LLaMA-Factory layout. The system prompt is written as the leading ``system`` turn
unless it was read from a ``system`` column.
"""

from __future__ import annotations

from typing import Any

from datamill.errors import RecordError
from datamill.formats import fields
from datamill.formats.base import Format, Row
from datamill.record import MEDIA, Message, Record

ROLE_IN = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "function_call": "function",
    "observation": "tool",
}
ROLE_OUT = {"user": "human", "assistant": "gpt", "function": "function_call", "tool": "observation"}


def detect(row: Row) -> bool:
    return "conversations" in row


def to_record(row: Row) -> Record:
    if row.get("conversations") is None:
        raise RecordError("missing required field 'conversations'")
    convs = fields.nested(row, "conversations", list)
    system, messages = fields.turns(convs, "conversations", "from", "value", ROLE_IN)
    rec = Record(messages=messages, system=system, tools=fields.tools(row))
    if system is None and fields.opt_str(row, "system") is not None:
        rec.system = row["system"]
        rec.meta["system_field"] = True  # written back as a column, not as the first turn
    fields.set_pair(rec, row, "from", "value", ROLE_IN)
    rec.label = fields.label(row, "kto_tag")
    fields.set_media(rec, row)
    return rec


def _turn(msg: Message) -> dict[str, str]:
    return {"from": ROLE_OUT[msg.role], "value": msg.content}


def from_record(rec: Record) -> Row:
    fields.conversation_only(rec, "sharegpt")
    row: dict[str, Any] = {"conversations": [_turn(m) for m in rec.messages]}
    if rec.system is not None:
        if rec.meta.get("system_field"):
            row["system"] = rec.system
        else:  # LLaMA-Factory reads a leading system turn, like OpenAI messages
            row["conversations"].insert(0, {"from": "system", "value": rec.system})
    if rec.tools is not None:
        row["tools"] = fields.dump_tools(rec.tools)
    if rec.kind == "preference":
        chosen, rejected = fields.require_pair(rec)
        row["chosen"], row["rejected"] = _turn(chosen), _turn(rejected)
    if rec.label is not None:
        row["kto_tag"] = rec.label
    row.update(rec.media())
    return row


def dataset_info(columns: set[str], ranking: bool, roles: set[str] = frozenset()) -> dict[str, Any]:
    entry: dict[str, Any] = {"formatting": "sharegpt"}
    if ranking:
        entry["ranking"] = True
    cols = {"messages": "conversations"}
    for c in ("system", "tools", "chosen", "rejected", "kto_tag", *MEDIA):
        if c in columns:
            cols[c] = c
    entry["columns"] = cols
    return entry


FORMAT = Format(
    name="sharegpt",
    description="conversations of {from, value} turns incl. function_call/observation, tools, chosen/rejected",
    detect=detect,
    to_record=to_record,
    from_record=from_record,
    dataset_info=dataset_info,
    cannot_hold="pretraining text",
    nested="conversations",
)
