"""What every reader yields — ``RawRow`` — and the limits the readers share."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import IO, Any

from datamill.errors import FileError

MAX_RECORD_BYTES = 16 << 20  # default for DATAMILL_MAX_RECORD_BYTES
UTF8 = ("utf-8", "ascii", "utf-8-sig")


@dataclass(slots=True)
class RawRow:
    where: str  # file:line or file[#index]
    line: int | None  # 1-based line, or None for formats without lines
    index: int  # 0-based position of the record in the file
    row: dict[str, Any] | None
    error: str | None = None
    raw: Any = None  # the unparsed text, kept for the quarantine file


def max_record_bytes() -> int:
    """The largest record read (raw bytes; characters for text not in UTF-8): ``DATAMILL_MAX_RECORD_BYTES``."""
    value = os.environ.get("DATAMILL_MAX_RECORD_BYTES")
    if not value:
        return MAX_RECORD_BYTES
    try:
        limit = int(value)
    except ValueError:
        raise FileError(f"DATAMILL_MAX_RECORD_BYTES={value!r} is not a number of bytes") from None
    if limit < 1:
        raise FileError(f"DATAMILL_MAX_RECORD_BYTES={value!r} must be positive")
    return limit


def too_large(size: int, limit: int) -> str:
    return f"record of {size:,} bytes is over the {limit:,}-byte limit (DATAMILL_MAX_RECORD_BYTES); not parsed"


def stream_damage(f: IO) -> str | None:
    """Why a .gz stream ended early, if it did."""
    return getattr(getattr(f, "raw", None), "damage", None)
