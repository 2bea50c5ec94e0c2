"""qa: ``{"question", "answer"}`` rows — the shape of GSM8K and many benchmarks — as prompts with a
reference: the question is the user turn, the answer both the assistant turn and ``meta["reference"]``
(what ``verify_answers`` checks candidates against; ``sample_answers`` with ``keep_answer: false`` leaves
the gold solution out of the candidates). Not detected automatically (``{"question", "answer"}`` is too
common a shape to claim): name it with ``format: qa``, so that recipes read GSM8K directly."""

from __future__ import annotations

from typing import Any

from datamill.formats import fields
from datamill.formats.base import Format, Row
from datamill.record import Message, Record


def detect(row: Row) -> bool:
    return False  # named explicitly only


def to_record(row: Row) -> Record:
    question = fields.req_str(row, "question").strip()
    answer = fields.req_str(row, "answer").strip()
    rec = Record(messages=[Message("user", question), Message("assistant", answer)])
    rec.meta["reference"] = answer
    return rec


def from_record(rec: Record) -> Row:
    user, answer = fields.single_turn(rec, "qa")
    return {"question": user.content, "answer": answer.content}


def dataset_info(columns: set[str], ranking: bool, roles: set[str] = frozenset()) -> dict[str, Any]:
    return {"columns": {"prompt": "question", "response": "answer"}}


FORMAT = Format(
    name="qa",
    description="question/answer rows (GSM8K and other benchmarks): the answer is also the reference",
    detect=detect,
    to_record=to_record,
    from_record=from_record,
    dataset_info=dataset_info,
    cannot_hold="system prompts, history, tools, media, preference pairs, KTO labels, pretraining text",
)
