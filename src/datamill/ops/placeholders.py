"""fill_placeholders: replace ``{{name}}``-style placeholders in every turn, the system prompt and
the text — e.g. LLaMA-Factory's identity.json ships with {{name}} and {{author}} to fill in."""

from __future__ import annotations

import re

from datamill.ops import register
from datamill.ops.base import Mapper, OpConfig
from datamill.record import Message, Record

PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


@register
class FillPlaceholders(Mapper):
    """Substitute ``{{key}}`` with ``values[key]``; placeholders without a value are left as they are."""

    name = "fill_placeholders"

    class Config(OpConfig):
        values: dict[str, str]

    def _fill(self, s: str | None) -> str | None:
        if s is None or "{{" not in s:
            return s
        values = self.config.values
        return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), s)

    def _msg(self, m: Message | None) -> Message | None:
        return None if m is None else Message(m.role, self._fill(m.content))

    def map(self, record: Record) -> Record:
        record.messages = [self._msg(m) for m in record.messages]
        record.system = self._fill(record.system)
        record.text = self._fill(record.text)
        record.chosen = self._msg(record.chosen)
        record.rejected = self._msg(record.rejected)
        return record
