"""sample: keep a seeded random fraction of records. The choice hashes the record id with the
seed, so it is the same on every run, in any order, on any number of workers."""

from __future__ import annotations

import hashlib

from pydantic import Field

from datamill.ops import register
from datamill.ops.base import Filter, OpConfig
from datamill.record import Record


@register
class Sample(Filter):
    """Keep each record with probability ``fraction`` (deterministic per record id and seed)."""

    name = "sample"

    class Config(OpConfig):
        fraction: float = Field(gt=0, le=1)

    def reason(self, record: Record) -> str | None:
        digest = hashlib.blake2b(f"{self.context.seed}:{record.id}".encode(), digest_size=8).digest()
        if int.from_bytes(digest) / 2**64 < self.config.fraction:
            return None
        return f"not in the {self.config.fraction:g} sample"
