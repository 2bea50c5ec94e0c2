"""datamill: the record model itself, one JSON object per record with ``id`` and ``meta`` — lossless,
for intermediate files between pipeline runs."""

from __future__ import annotations

from typing import Any

from datamill.errors import RecordError
from datamill.formats.base import Format, Row
from datamill.record import ROLES, Record


def detect(row: Row) -> bool:
    return "id" in row and "meta" in row and ("messages" in row or "text" in row)


def to_record(row: Row) -> Record:
    try:
        rec = Record.from_dict(row)
    except (KeyError, TypeError, AttributeError) as e:
        raise RecordError(f"not a datamill record: {e!r}") from None
    bad = {m.role for m in rec.messages} - set(ROLES)
    if bad:
        raise RecordError(f"unknown role(s) {sorted(bad)}; expected {', '.join(ROLES)}")
    return rec


def from_record(rec: Record) -> Row:
    return rec.to_dict()


def dataset_info(columns: set[str], ranking: bool, roles: set[str] = frozenset()) -> dict[str, Any] | None:
    return None


FORMAT = Format(
    name="datamill",
    description="datamill's own record model with id and meta (lossless; for intermediate files)",
    detect=detect,
    to_record=to_record,
    from_record=from_record,
    dataset_info=dataset_info,
)
