"""fill_placeholders: replace ``{{name}}``-style placeholders in every turn, the system prompt and
the text — e.g. LLaMA-Factory's identity.json ships with {{name}} and {{author}} to fill in."""

from __future__ import annotations

import re

from datamill.ops import register
from datamill.ops.base import Mapper, OpConfig
from datamill.record import Record

PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


@register
class FillPlaceholders(Mapper):
    """Substitute ``{{key}}`` with ``values[key]``; placeholders without a value are left as they are."""

    name = "fill_placeholders"

    class Config(OpConfig):
        values: dict[str, str]

    def _fill(self, s: str) -> str:
        if "{{" not in s:
            return s
        values = self.config.values
        return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), s)

    def map(self, record: Record) -> Record:
        record.rewrite("all", self._fill)
        return record
