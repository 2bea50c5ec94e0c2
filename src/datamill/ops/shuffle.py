"""shuffle: a seeded shuffle of the whole stream that does not need it in memory: records are
scattered into bucket files at random, then each bucket is shuffled in memory and emitted."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterable, Iterator

import orjson
from pydantic import Field

from datamill.ops import register
from datamill.ops.base import Global, OpConfig
from datamill.record import Record
from datamill.results import Drop


@register
class Shuffle(Global):
    """Random order, the same for the same seed. Memory holds one bucket (≈ records / buckets)."""

    name = "shuffle"

    class Config(OpConfig):
        buckets: int = Field(default=64, ge=1)

    def run(self, records: Iterable[Record]) -> Iterator[Record | Drop]:
        rng = random.Random(self.context.seed)
        workdir = self.context.workdir
        workdir.mkdir(parents=True, exist_ok=True)
        paths = [workdir / f"bucket-{i:05d}.jsonl" for i in range(self.config.buckets)]
        with contextlib.ExitStack() as stack:
            files = [stack.enter_context(open(p, "wb")) for p in paths]
            for rec in records:
                files[rng.randrange(len(files))].write(orjson.dumps(rec.to_dict()) + b"\n")
        for path in paths:
            with open(path, "rb") as f:
                bucket = [Record.from_dict(orjson.loads(line)) for line in f]
            rng.shuffle(bucket)
            yield from bucket
            path.unlink()
