"""What every synthesis operator shares: reading a record as an (instruction, input, output) task,
making new SFT records, the provenance block, the language to prompt in, and an event loop that a
global operator keeps across rounds."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from datamill.llm.client import Completion, LLMClient, LLMConfig, LLMError
from datamill.llm.prompts import detect_lang
from datamill.record import Message, Record
from datamill.results import Drop


@dataclass(slots=True)
class Task:
    instruction: str
    input: str = ""
    output: str = ""
    id: str = ""
    is_classification: bool | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt(self) -> str:
        return "\n".join(p for p in (self.instruction, self.input) if p)


def task_of(rec: Record) -> Task | None:
    """The record's last user turn and its answer as a task (the alpaca ``input`` split kept), or None
    for documents, preference/KTO records and conversations not ending in a user → assistant pair."""
    msgs = rec.messages
    if rec.text is not None or len(msgs) < 2 or msgs[-2].role != "user" or msgs[-1].role != "assistant":
        return None
    prompt = msgs[-2].content
    inp = rec.meta.get("input") if isinstance(rec.meta.get("input"), str) else ""
    if inp and prompt.endswith("\n" + inp):
        instruction = prompt[: -len(inp) - 1]
    else:
        instruction, inp = prompt, ""
    if not instruction.strip():
        return None
    info = rec.meta.get("task") if isinstance(rec.meta.get("task"), dict) else {}
    flag = info.get("is_classification")
    return Task(
        instruction, inp, msgs[-1].content, rec.id or rec.compute_id(), flag if isinstance(flag, bool) else None
    )


def sft_record(instruction: str, inp: str, output: str, synth: dict[str, Any], **meta: Any) -> Record:
    """A new single-turn record; ``meta["input"]`` keeps the alpaca split, ``meta["synth"]`` the provenance."""
    rec = Record(
        messages=[Message("user", "\n".join(p for p in (instruction, inp) if p)), Message("assistant", output)]
    )
    if inp:
        rec.meta["input"] = inp
    rec.meta.update(meta)
    rec.meta["synth"] = synth
    rec.id = rec.compute_id()
    return rec


def provenance(method: str, llm: LLMConfig | None, template: str | Sequence[str], **extra: Any) -> dict[str, Any]:
    """Where a generated record came from: method, model (None: no model involved), prompt template(s),
    parents, round …"""
    out: dict[str, Any] = {"method": method, "model": f"{llm.backend}:{llm.model}" if llm else None}
    out["template"] = template
    out.update({k: v for k, v in extra.items() if v is not None})
    return out


NOT_A_TASK = "not a single-turn instruction task"


Begun = tuple[Task, list[Record | Drop], random.Random]


def begin(record: Record, keep: bool, consumed: str, seed: str) -> Begun | None:
    """How a synthesis operator starts on one record: its instruction task (None when it has none),
    the output list opened with the record itself — or its drop with reason ``consumed`` when it is not
    kept — and a random generator seeded by ``seed`` + the record id, so a re-run makes the same choices."""
    task = task_of(record)
    if task is None:
        return None
    out: list[Record | Drop] = [record if keep else Drop(record, consumed)]
    return task, out, random.Random(f"{seed}:{record.id}")


def pick_lang(setting: str, texts: Iterable[str]) -> str:
    """``en``/``zh`` as configured, or (``auto``) the majority language of the texts."""
    if setting != "auto":
        return setting
    votes = [detect_lang(t) for t in texts if t]
    return "zh" if votes and votes.count("zh") * 2 >= len(votes) else "en"


class LoopClient:
    """One LLM client on a private event loop, for a global operator that asks in rounds from
    synchronous generator code (``run``). Close it to flush the cache; usage stays readable. ``seed``
    (the recipe's) seeds the sampled requests (see :class:`LLMClient`)."""

    def __init__(self, config: LLMConfig, seed: int | None = None):
        self.loop = asyncio.new_event_loop()
        self.client = LLMClient(config, seed=seed)

    def run(self, coro: Awaitable[Any]) -> Any:
        return self.loop.run_until_complete(coro)

    def chat_many(self, batch: Sequence[Any], **params: Any) -> list[Completion | LLMError]:
        return self.run(self.client.chat_many(batch, **params))

    def close(self) -> None:
        try:
            self.loop.run_until_complete(self.client.aclose())
        finally:
            self.loop.close()
