"""Operator kinds. An operator is a small class with a ``name``, a pydantic ``Config`` (unknown
options are errors) and one method:

- ``Mapper.map(record) -> record``
- ``Filter.reason(record) -> str | None`` — None keeps the record, a string drops it with that reason
- ``Global.run(records) -> iterator of records and Drop`` — sees the whole stream in order and
  keeps its state on disk under ``context.workdir`` (dedup, shuffle, limit …)
- ``Generator`` — calls an LLM (added by the LLM-layer issue)

Mappers and filters run in worker processes on chunks of records; globals run once over the stream.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from datamill.record import Record


class OpConfig(BaseModel):
    """Base for operator options: unknown keys and wrong types are errors."""

    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)


@dataclass(frozen=True)
class OpContext:
    seed: int
    step: int  # position of the step in the recipe (0-based)
    workdir: Path  # private scratch directory of this step (globals keep their state here)


@dataclass(slots=True)
class Drop:
    record: Record
    reason: str


class Op:
    name: ClassVar[str]
    kind: ClassVar[str]
    Config: ClassVar[type[OpConfig]] = OpConfig

    def __init__(self, config: OpConfig, context: OpContext):
        self.config = config
        self.context = context
        self.counters: Counter[str] = Counter()  # e.g. PII masked by kind; summed per step into stats.json

    def take_counters(self) -> dict[str, int]:
        """What the op counted since the last call (the runner collects it per chunk)."""
        out = dict(self.counters)
        self.counters.clear()
        return out


class Mapper(Op):
    kind = "mapper"

    def map(self, record: Record) -> Record:
        raise NotImplementedError


class Filter(Op):
    kind = "filter"

    def reason(self, record: Record) -> str | None:
        raise NotImplementedError


class Global(Op):
    kind = "global"

    def run(self, records: Iterable[Record]) -> Iterator[Record | Drop]:
        raise NotImplementedError
