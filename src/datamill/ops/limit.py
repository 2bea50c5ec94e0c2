"""limit: keep the first ``n`` records of the stream and drop the rest."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from pydantic import Field

from datamill.ops import register
from datamill.ops.base import Global, OpConfig
from datamill.record import Record
from datamill.results import Drop


@register
class Limit(Global):
    """Keep the first ``n`` records (put it after ``shuffle`` for a random subset)."""

    name = "limit"

    class Config(OpConfig):
        n: int = Field(ge=0)

    def run(self, records: Iterable[Record]) -> Iterator[Record | Drop]:
        for i, rec in enumerate(records):
            yield rec if i < self.config.n else Drop(rec, f"over the limit of {self.config.n}")
