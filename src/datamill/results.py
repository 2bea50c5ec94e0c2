"""What a step yields besides a kept record: a ``Drop`` (the record and why), or a ``Generated``
wrapper for a record it made. Below both the operators and the logic packages (dedup clusters,
synthesis helpers) so either side can use them without importing the other."""

from __future__ import annotations

from dataclasses import dataclass

from datamill.record import Record


@dataclass(slots=True)
class Drop:
    record: Record
    reason: str


@dataclass(slots=True)
class Generated:
    """Yielded by a global op for a record it made (not one it was given); wrap a ``Drop`` to reject a
    made candidate with a reason (it then counts as generated and dropped)."""

    record: Record | Drop


def drop_entry(rec: Record, step: int, op: str, reason: str) -> dict:
    """A dropped.jsonl line: the record, which step dropped it and why."""
    return {"id": rec.id, "step": step, "op": op, "reason": reason, "record": rec.to_dict()}
