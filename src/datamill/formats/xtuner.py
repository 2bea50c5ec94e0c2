"""xtuner: XTuner's ``conversation`` list of ``{"system", "input", "output"}`` rounds
(the system prompt rides on the first round), used to train InternLM models."""

from __future__ import annotations

from typing import Any

from datamill.errors import CannotExpress, RecordError
from datamill.formats import fields
from datamill.formats.base import Format, Row
from datamill.record import Message, Record


def detect(row: Row) -> bool:
    conv = row.get("conversation")
    return isinstance(conv, list) and bool(conv) and isinstance(conv[0], dict) and "input" in conv[0]


def to_record(row: Row) -> Record:
    conv = row.get("conversation")
    if conv is None:
        raise RecordError("missing required field 'conversation'")
    conv = fields.nested(row, "conversation", list)
    rec = Record()
    for i, rnd in enumerate(conv):
        if not isinstance(rnd, dict):
            raise RecordError(f"conversation[{i}] must be an object with input/output")
        system = fields.opt_str(rnd, "system")
        if system is not None:
            if i:
                raise RecordError(f"conversation[{i}] has a system prompt; only the first round may")
            rec.system = system
        rec.messages += [
            Message("user", fields.req_str(rnd, "input")),
            Message("assistant", fields.req_str(rnd, "output")),
        ]
    return rec


def from_record(rec: Record) -> Row:
    if rec.text is not None or rec.kind != "sft" or rec.tools or rec.media():
        raise CannotExpress("xtuner holds plain SFT dialogues only (no text, pairs, labels, tools, media)")
    fields.require_roles(rec.messages, {"user", "assistant"}, "xtuner")
    msgs = rec.messages
    if len(msgs) % 2 or any(m.role != ("user", "assistant")[i % 2] for i, m in enumerate(msgs)):
        raise CannotExpress("xtuner needs alternating user/assistant turns ending with the assistant")
    rounds: list[dict[str, Any]] = []
    for i in range(0, len(msgs), 2):
        rnd: dict[str, Any] = {}
        if i == 0 and rec.system is not None:
            rnd["system"] = rec.system
        rnd["input"] = msgs[i].content
        rnd["output"] = msgs[i + 1].content
        rounds.append(rnd)
    return {"conversation": rounds}


def dataset_info(columns: set[str], ranking: bool, roles: set[str] = frozenset()) -> None:
    return None  # an XTuner layout; LLaMA-Factory cannot read it


FORMAT = Format(
    name="xtuner",
    description='XTuner: "conversation" list of {system, input, output} rounds (InternLM)',
    detect=detect,
    to_record=to_record,
    from_record=from_record,
    dataset_info=dataset_info,
    cannot_hold="function/tool turns, tools, media, preference pairs, KTO labels, pretraining text",
    nested="conversation",
)
