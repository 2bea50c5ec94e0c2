"""trl: TRL's prompt/completion layouts — ``prompt`` + ``chosen``/``rejected`` (DPO, ORPO, reward),
``prompt`` + ``completion`` + ``label`` (KTO), ``prompt`` + ``completion`` (SFT). Reads both the
conversational (lists of messages) and the standard (plain strings) variants; writes conversational.
"""

from __future__ import annotations

from typing import Any

from datamill.errors import CannotExpress, RecordError
from datamill.formats import fields, messages
from datamill.formats.base import Format, Row
from datamill.record import Message, Record


def detect(row: Row) -> bool:
    return "prompt" in row and ("chosen" in row or "completion" in row)


def _prompt(row: Row) -> tuple[str | None, list[Message]]:
    prompt = row.get("prompt")
    if prompt is None:
        raise RecordError("missing required field 'prompt'")
    if isinstance(prompt, str) and not prompt.startswith("[{"):
        return None, [Message("user", prompt)]
    return messages.parse_turns(fields.nested(row, "prompt", list), "prompt")


def _answer(row: Row, key: str) -> Message:
    value = row.get(key)
    if value is None:
        raise RecordError(f"missing required field '{key}'")
    if isinstance(value, str) and value.startswith("[{"):
        value = fields.nested(row, key, list)
    if isinstance(value, list):
        if len(value) != 1:
            raise RecordError(f"field '{key}' must hold exactly one assistant message, got {len(value)}")
        _, msgs = messages.parse_turns(value, key)
        if not msgs:
            raise RecordError(f"field '{key}' must hold an assistant message, not a system prompt")
        return msgs[0]
    if not isinstance(value, str):
        raise RecordError(f"field '{key}' must be a string or a list of messages")
    return Message("assistant", value)


def to_record(row: Row) -> Record:
    system, msgs = _prompt(row)
    rec = Record(messages=msgs, system=system, tools=fields.tools(row))
    if "chosen" in row or "rejected" in row:
        rec.chosen = _answer(row, "chosen")
        rec.rejected = _answer(row, "rejected")
    else:
        rec.messages.append(_answer(row, "completion"))
        rec.label = fields.label(row, "label")
    fields.set_media(rec, row)
    return rec


def from_record(rec: Record) -> Row:
    fields.conversation_only(rec, "trl")
    prompt = rec.messages if rec.kind == "preference" else rec.messages[:-1]
    if rec.kind != "preference" and (not rec.messages or rec.messages[-1].role != "assistant"):
        raise CannotExpress("trl needs the conversation to end with the assistant's completion")
    turns = messages.to_turns(prompt)
    if rec.system is not None:
        turns.insert(0, {"role": "system", "content": rec.system})
    row: dict[str, Any] = {"prompt": turns}
    if rec.kind == "preference":
        chosen, rejected = fields.require_pair(rec)
        row["chosen"], row["rejected"] = messages.to_turns([chosen]), messages.to_turns([rejected])
    else:
        row["completion"] = messages.to_turns(rec.messages[-1:])
        if rec.label is not None:
            row["label"] = rec.label
    if rec.tools is not None:
        row["tools"] = messages.openai_tools(rec.tools)
    row.update(rec.media())
    return row


def dataset_info(columns: set[str], ranking: bool, roles: set[str] = frozenset()) -> None:
    return None  # LLaMA-Factory does not read TRL's prompt/completion layout


FORMAT = Format(
    name="trl",
    description="TRL prompt + chosen/rejected (DPO/ORPO), prompt + completion + label (KTO) or SFT",
    detect=detect,
    to_record=to_record,
    from_record=from_record,
    dataset_info=dataset_info,
    cannot_hold="pretraining text; not loadable by LLaMA-Factory (no dataset_info entry)",
    nested="prompt",
)
