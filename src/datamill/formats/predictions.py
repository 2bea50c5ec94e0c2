"""predictions: one model's answers to a set of instructions — ``instruction`` / ``input`` + ``response``
(+ an optional reference ``target``), the shape of Self-Instruct's ``predictions_<model>.jsonl``.

Several such files (one per model) answering the same instructions are the raw material of preference
data: ``group_answers`` joins them by prompt. The reference answer is kept in ``meta["reference"]``, the
model-side ``prompt`` string (with its ``Output:`` cue) is not: the instruction and input are the prompt.
Not detected automatically (alpaca's ``instruction`` would claim it): name it with ``format: predictions``.
"""

from __future__ import annotations

from typing import Any

from datamill.formats import fields
from datamill.formats.base import Format, Row
from datamill.record import Message, Record


def detect(row: Row) -> bool:
    return "instruction" in row and "response" in row and "output" not in row


def to_record(row: Row) -> Record:
    instruction = fields.req_str(row, "instruction").strip()
    query = (fields.opt_str(row, "input") or "").strip()
    response = fields.req_str(row, "response").strip()
    prompt = "\n".join(p for p in (instruction, query) if p)
    rec = Record(messages=[Message("user", prompt), Message("assistant", response)])
    if query:
        rec.meta["input"] = query
    target = fields.opt_str(row, "target")
    if target is not None:
        rec.meta["reference"] = target
    return rec


def from_record(rec: Record) -> Row:
    user, answer = fields.single_turn(rec, "predictions")
    query = rec.meta.get("input")
    instruction = user.content
    if isinstance(query, str) and query and instruction.endswith("\n" + query):
        instruction = instruction[: -len(query) - 1]
    else:
        query = ""
    row: dict[str, Any] = {"instruction": instruction, "input": query, "response": answer.content}
    if isinstance(rec.meta.get("reference"), str):
        row["target"] = rec.meta["reference"]
    return row


def dataset_info(columns: set[str], ranking: bool, roles: set[str] = frozenset()) -> dict[str, Any]:
    return {"columns": {"prompt": "instruction", "query": "input", "response": "response"}}


FORMAT = Format(
    name="predictions",
    description="instruction/input + one model's response (+ reference target) — Self-Instruct predictions files",
    detect=detect,
    to_record=to_record,
    from_record=from_record,
    dataset_info=dataset_info,
    cannot_hold="system prompts, history, tools, media, preference pairs, KTO labels, pretraining text",
)
