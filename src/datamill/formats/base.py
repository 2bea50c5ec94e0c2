"""What a format is: a name, detection, and a pure pair of converters through the record model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from datamill.record import Record

Row = dict[str, Any]


@dataclass(frozen=True)
class Format:
    name: str
    description: str
    detect: Callable[[Row], bool]
    to_record: Callable[[Row], Record]  # raises RecordError
    from_record: Callable[[Record], Row]  # raises CannotExpress
    # LLaMA-Factory dataset_info.json entry for (columns written, ranking?, message roles seen),
    # or None when LLaMA-Factory cannot load the format
    dataset_info: Callable[[set[str], bool, set[str]], dict[str, Any] | None]
    cannot_hold: str = ""  # documented losses when converting into this format
    nested: str = ""  # a column every row holds as a list/object: a CSV cell cannot carry it for a trainer
