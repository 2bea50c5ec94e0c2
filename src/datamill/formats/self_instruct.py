"""self_instruct: the Self-Instruct seed-task shape, ``{"id", "name", "instruction", "instances":
[{"input", "output"}], "is_classification"}`` — what ``seed_tasks.jsonl`` holds and what the
``self_instruct`` operator starts from.

A task becomes one SFT record from its first instance (prompt ``instruction\\ninput`` as alpaca builds
it); the task's name, id, classification flag and any further instances stay in ``meta`` so writing
the record back in this format is exact, and generated tasks can seed the next run.
"""

from __future__ import annotations

from typing import Any

from datamill.errors import CannotExpress, RecordError
from datamill.formats import fields
from datamill.formats.base import Format, Row
from datamill.record import Message, Record


def detect(row: Row) -> bool:
    return "instruction" in row and "instances" in row


def _instance(value: Any, i: int) -> tuple[str, str]:
    if not isinstance(value, dict):
        raise RecordError(f"instances[{i}] must be an object with 'input' and 'output'")
    inp, out = value.get("input", ""), value.get("output")
    if inp is None:
        inp = ""
    if not isinstance(inp, str):
        raise RecordError(f"instances[{i}].input must be a string, got {type(inp).__name__}")
    if not isinstance(out, str):
        raise RecordError(f"instances[{i}].output must be a string, got {type(out).__name__}")
    return inp, out


def to_record(row: Row) -> Record:
    instruction = fields.req_str(row, "instruction")
    if not instruction.strip():
        raise RecordError("field 'instruction' is empty")
    items = fields.nested(row, "instances", list)
    if not items:
        raise RecordError("field 'instances' must be a non-empty list of {input, output}")
    instances = [_instance(x, i) for i, x in enumerate(items)]
    inp, out = instances[0]
    rec = Record(messages=[Message("user", "\n".join(p for p in (instruction, inp) if p)), Message("assistant", out)])
    if inp:
        rec.meta["input"] = inp
    task: dict[str, Any] = {"instruction": instruction}
    for key in ("id", "name"):
        if row.get(key) is not None:
            task[key] = str(row[key])
    flag = row.get("is_classification")
    if flag is not None:
        task["is_classification"] = fields.label(row, "is_classification")
    if len(instances) > 1:
        task["more_instances"] = [{"input": a, "output": b} for a, b in instances[1:]]
    rec.meta["task"] = task
    return rec


def from_record(rec: Record) -> Row:
    user, answer = fields.single_turn(rec, "self_instruct")
    if rec.system:
        raise CannotExpress("self_instruct has no system prompt field")
    task = rec.meta.get("task") if isinstance(rec.meta.get("task"), dict) else {}
    inp = rec.meta.get("input") if isinstance(rec.meta.get("input"), str) else ""
    prompt = user.content
    if inp and prompt.endswith("\n" + inp):
        instruction = prompt[: -len(inp) - 1]
    else:
        instruction, inp = prompt, ""
    row: dict[str, Any] = {}
    if task.get("id"):
        row["id"] = task["id"]
    if task.get("name"):
        row["name"] = task["name"]
    row["instruction"] = instruction
    row["instances"] = [{"input": inp, "output": answer.content}, *task.get("more_instances", [])]
    row["is_classification"] = bool(task.get("is_classification", False))
    return row


def dataset_info(columns: set[str], ranking: bool, roles: set[str] = frozenset()) -> None:
    return None  # a seed-task file, not something LLaMA-Factory trains on


FORMAT = Format(
    name="self_instruct",
    description="Self-Instruct seed tasks: instruction + instances[{input, output}] + is_classification",
    detect=detect,
    to_record=to_record,
    from_record=from_record,
    dataset_info=dataset_info,
    cannot_hold="multi-turn dialogues, system prompts, preference pairs, pretraining text",
    nested="instances",
)
