"""set_system: give every conversation a system prompt, replace it, or remove it."""

from __future__ import annotations

from typing import Literal

from datamill.ops import register
from datamill.ops.base import Mapper, OpConfig
from datamill.record import Record


@register
class SetSystem(Mapper):
    """``mode: set`` replaces any system prompt, ``if_missing`` only fills empty ones, ``remove`` clears it."""

    name = "set_system"

    class Config(OpConfig):
        prompt: str = ""
        mode: Literal["set", "if_missing", "remove"] = "set"

    def map(self, record: Record) -> Record:
        if record.text is not None:
            return record
        mode = self.config.mode
        if mode == "remove":
            record.system = None
        elif mode == "set" or not record.system:
            record.system = self.config.prompt or None
        return record
