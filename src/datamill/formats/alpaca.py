"""alpaca: instruction / input / output (+ system, history, chosen/rejected, kto_tag, media, tools).

The prompt is ``instruction`` and ``input`` joined by a newline (either may be empty), as
LLaMA-Factory builds it. The split is remembered in ``meta["input"]`` so alpaca → alpaca is exact.
"""

from __future__ import annotations

from typing import Any

from datamill.errors import CannotExpress, RecordError
from datamill.formats import fields
from datamill.formats.base import Format, Row
from datamill.record import MEDIA, Message, Record


def detect(row: Row) -> bool:
    return "instruction" in row


def to_record(row: Row) -> Record:
    instruction = row.get("instruction")
    if instruction is None:
        raise RecordError("missing required field 'instruction'")
    if not isinstance(instruction, str):
        raise RecordError(f"field 'instruction' must be a string, got {type(instruction).__name__}")
    query = fields.opt_str(row, "input")
    ranking = "chosen" in row or "rejected" in row
    messages = _history(row)
    messages.append(Message("user", "\n".join(p for p in (instruction, query) if p)))
    rec = Record(messages=messages, system=fields.opt_str(row, "system"), tools=fields.tools(row))
    if ranking:
        rec.chosen = Message("assistant", fields.req_str(row, "chosen"))
        rec.rejected = Message("assistant", fields.req_str(row, "rejected"))
    else:
        messages.append(Message("assistant", fields.req_str(row, "output")))
        rec.label = fields.label(row, "kto_tag")
    fields.set_media(rec, row)
    if query:
        rec.meta["input"] = query
    return rec


def _history(row: Row) -> list[Message]:
    history = fields.nested(row, "history", list) or []
    out: list[Message] = []
    for i, pair in enumerate(history):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
            raise RecordError(f"history[{i}] must be a [user, assistant] pair of strings")
        out += [Message("user", pair[0]), Message("assistant", pair[1])]
    return out


def from_record(rec: Record) -> Row:
    fields.conversation_only(rec, "alpaca")
    fields.require_roles(rec.messages, {"user", "assistant"}, "alpaca")
    msgs = rec.messages
    prompt_turns = msgs if rec.kind == "preference" else msgs[:-1]
    if (
        not prompt_turns
        or prompt_turns[-1].role != "user"
        or (rec.kind != "preference" and msgs[-1].role != "assistant")
    ):
        raise CannotExpress("alpaca needs alternating user/assistant turns ending with the answer")
    *history, last = prompt_turns
    pairs = [[history[i].content, history[i + 1].content] for i in range(0, len(history) - 1, 2)]
    if len(history) % 2 or any(
        history[i].role != "user" or history[i + 1].role != "assistant" for i in range(0, len(history), 2)
    ):
        raise CannotExpress("alpaca history needs strictly alternating user/assistant pairs")
    instruction, query = _split_prompt(last.content, rec.meta.get("input"))
    row: dict[str, Any] = {"instruction": instruction, "input": query}
    if rec.kind == "preference":
        for side in ("chosen", "rejected"):
            msg = getattr(rec, side)
            if msg is None or msg.role != "assistant":
                raise CannotExpress(f"alpaca preference needs an assistant '{side}' answer")
            row[side] = msg.content
    else:
        row["output"] = msgs[-1].content
    if rec.system is not None:
        row["system"] = rec.system
    if pairs:
        row["history"] = pairs
    if rec.label is not None:
        row["kto_tag"] = rec.label
    if rec.tools is not None:
        row["tools"] = fields.dump_tools(rec.tools)
    row.update(rec.media())
    return row


def _split_prompt(prompt: str, query: Any) -> tuple[str, str]:
    if isinstance(query, str) and query:
        if prompt == query:
            return "", query
        if prompt.endswith("\n" + query):
            return prompt[: -len(query) - 1], query
    return prompt, ""


COLUMN_OF = {
    "instruction": ("prompt", "instruction"),
    "input": ("query", "input"),
    "output": ("response", "output"),
    "system": ("system", "system"),
    "history": ("history", "history"),
    "chosen": ("chosen", "chosen"),
    "rejected": ("rejected", "rejected"),
    "kto_tag": ("kto_tag", "kto_tag"),
    "tools": ("tools", "tools"),
    **{m: (m, m) for m in MEDIA},
}


def dataset_info(columns: set[str], ranking: bool, roles: set[str] = frozenset()) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    if ranking:
        entry["ranking"] = True
    entry["columns"] = {COLUMN_OF[c][0]: COLUMN_OF[c][1] for c in COLUMN_OF if c in columns}
    return entry


FORMAT = Format(
    name="alpaca",
    description="instruction/input/output (+system, history, chosen/rejected, kto_tag, images) — LLaMA-Factory",
    detect=detect,
    to_record=to_record,
    from_record=from_record,
    dataset_info=dataset_info,
    cannot_hold="function/tool turns; pretraining text; a preference pair after a non-user turn",
)
