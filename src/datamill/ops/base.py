"""Operator kinds. An operator is a small class with a ``name``, a pydantic ``Config`` (unknown
options are errors) and one method:

- ``Mapper.map(record) -> record``
- ``Filter.reason(record) -> str | None`` — None keeps the record, a string drops it with that reason
- ``Global.run(records) -> iterator of records and Drop`` — sees the whole stream in order and
  keeps its state on disk under ``context.workdir`` (dedup, shuffle, limit …)
- ``Generator.agenerate(record, llm) -> [records and Drop]`` — one record in, any number out; calls an
  LLM (or not: ``uses_llm = False``) with many records of a chunk in flight at once

Mappers, filters and generators run in worker processes on chunks of records; globals run once over the
stream. A record an op *makes* (not one it was given) counts as generated, so every step balances as
``in + generated == out + dropped``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from datamill.errors import DatamillError
from datamill.llm.client import LLMClient, LLMConfig, Usage
from datamill.llm.reasoning import Mode as ReasoningMode
from datamill.record import Record
from datamill.results import Drop


class OpConfig(BaseModel):
    """Base for operator options: unknown keys and wrong types are errors."""

    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)


@dataclass(frozen=True)
class OpContext:
    seed: int
    step: int  # position of the step in the recipe (0-based)
    workdir: Path  # private scratch directory of this step (globals keep their state here)


class Op:
    name: ClassVar[str]
    kind: ClassVar[str]
    Config: ClassVar[type[OpConfig]] = OpConfig

    def __init__(self, config: OpConfig, context: OpContext):
        self.config = config
        self.context = context
        self.counters: Counter[str] = Counter()  # e.g. PII masked by kind; summed per step into stats.json

    def add_usage(self, usage: Usage) -> None:
        """Count an LLM client's requests and tokens under this step (``llm_*`` in stats.json)."""
        for key, value in usage.to_dict().items():
            if isinstance(value, int | float) and value:
                self.counters[f"llm_{key}"] += value

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
    """Sees the whole stream once, in order (``run``). One may also define ``precompute(records, path)``:
    the workers of the chunk stage just before it call it on each chunk of the records that reach it, in
    parallel, to write what the op needs per record (MinHash signatures) into ``path``; ``run`` then finds
    those files, in chunk order, in ``precomputed`` — None when no chunk stage comes just before (the op
    computes the values itself)."""

    kind = "global"
    precomputed: list[Path] | None = None

    def run(self, records: Iterable[Record]) -> Iterator[Record | Drop]:
        raise NotImplementedError

    def with_precomputed(self, records: Iterable[Record], values: Iterator[Any], counter: str) -> Iterator[tuple]:
        """Each record with its value read back from ``precomputed`` (``values``, in the same order),
        failing when the workers computed values for more or fewer records than reach the step; counts
        the records under ``counter``."""
        n = 0
        for rec in records:
            value = next(values, _NONE)
            if value is _NONE:
                raise DatamillError(f"{self.name}: more records than the workers computed values for ({n})")
            n += 1
            yield rec, value
        if next(values, _NONE) is not _NONE:
            raise DatamillError(f"{self.name}: the workers computed values for more records than reach the step ({n})")
        self.counters[counter] += n


_NONE = object()  # no value left


class GeneratorConfig(OpConfig):
    llm: LLMConfig = Field(default_factory=LLMConfig, description="the model to call (default: embedded Gemma)")


class AnswerGeneratorConfig(GeneratorConfig):
    """Options of a generator that writes the model's answers into records: ``reasoning`` says what
    becomes of a reasoning model's thinking (see :mod:`datamill.llm.reasoning`)."""

    reasoning: ReasoningMode = Field(
        "drop", description="drop: the answer only; keep: a <think> block before it; field: in meta.reasoning"
    )


class Generator(Op):
    """One record in, any number out. ``agenerate`` returns what became of the record: the record itself
    (kept, maybe annotated), new records (generated) and ``Drop`` entries (the input, or a rejected
    candidate). The input must come back as itself or inside a ``Drop``."""

    kind = "generator"
    Config: ClassVar[type[OpConfig]] = GeneratorConfig
    uses_llm: ClassVar[bool] = True  # False: ``llm`` is None (pure 1 -> N expansion)

    async def agenerate(self, record: Record, llm: LLMClient | None) -> list[Record | Drop]:
        raise NotImplementedError
