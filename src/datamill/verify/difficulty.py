"""difficulty_filter: keep the prompts worth training on, by how often the model solved them.

``meta["difficulty"]`` (``verify_answers``: 1 − the share of correct samples) is on the prompt record
(``keep: annotate``) and on every answer kept from it, so the filter works before or after expansion. A
prompt the model always solves teaches it little; one it never solves gives no correct answer to learn
from (rejection sampling) but may be worth a stronger teacher."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from datamill.ops import register
from datamill.ops.base import Filter, OpConfig
from datamill.record import Record


@register
class DifficultyFilter(Filter):
    """Drop records whose difficulty is outside ``[min, max]``, or 0 (``drop_always_solved``), or 1
    (``drop_never_solved``); records without one are dropped too (``missing: keep`` keeps them)."""

    name = "difficulty_filter"

    class Config(OpConfig):
        min: float | None = Field(None, ge=0, le=1, description="drop easier records (difficulty below this)")
        max: float | None = Field(None, ge=0, le=1, description="drop harder records (difficulty above this)")
        drop_always_solved: bool = Field(False, description="drop difficulty 0: every sample was correct")
        drop_never_solved: bool = Field(False, description="drop difficulty 1: no sample was correct")
        key: str = Field("difficulty", description="the meta key holding the difficulty")
        missing: Literal["drop", "keep"] = Field("drop", description="records without a difficulty")

        @model_validator(mode="after")
        def _check(self):
            if self.min is None and self.max is None and not self.drop_always_solved and not self.drop_never_solved:
                raise ValueError("difficulty_filter needs min, max, drop_always_solved or drop_never_solved")
            if self.min is not None and self.max is not None and self.min > self.max:
                raise ValueError(f"min ({self.min}) is above max ({self.max})")
            return self

    def reason(self, record: Record) -> str | None:
        c = self.config
        d = record.meta.get(c.key)
        if not isinstance(d, int | float) or isinstance(d, bool):
            return None if c.missing == "keep" else f"no meta.{c.key} (run verify_answers first)"
        if c.drop_always_solved and d <= 0:
            return "always solved (difficulty 0)"
        if c.drop_never_solved and d >= 1:
            return "never solved (difficulty 1)"
        if c.min is not None and d < c.min:
            return f"too easy: difficulty {d:.2f} < {c.min}"
        if c.max is not None and d > c.max:
            return f"too hard: difficulty {d:.2f} > {c.max}"
        return None
