"""length_filter: drop records whose text is too short or too long, in characters or words
(a CJK character counts as one word, so the same bounds work for Chinese and English)."""

from __future__ import annotations

from typing import Literal

from datamill.clean.text import count_words
from datamill.ops import register
from datamill.ops.base import Filter, OpConfig
from datamill.record import Record


@register
class LengthFilter(Filter):
    """Keep records whose chosen part has between ``min`` and ``max`` characters or words."""

    name = "length_filter"

    class Config(OpConfig):
        part: Literal["all", "prompt", "answer", "text"] = "all"
        unit: Literal["chars", "words"] = "chars"
        min: int = 0
        max: int | None = None

    def reason(self, record: Record) -> str | None:
        c = self.config
        text = record.part(c.part)
        n = len(text)
        if c.unit == "words" and n >= c.min and (c.min > 0 or (c.max is not None and n > c.max)):
            n = count_words(text)  # only when it can matter: a text has at most as many words as characters
        if n < c.min:
            return f"{c.part} shorter than {c.min} {c.unit}"
        if c.max is not None and n > c.max:
            return f"{c.part} longer than {c.max} {c.unit}"
        return None
