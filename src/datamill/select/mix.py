"""mix: combine sources at a ratio, by records or by tokens (e.g. ``{web: 969, books: 30, code: 1}``).

Each record belongs to the first source whose patterns match ``meta[source_field]`` (the input file
path by default; pattern ``*NAME*`` when a source lists none). The op reads the stream once (spooled
to disk), measures what each source has (records, or tokens from ``meta["tokens"]["total"]`` that
count_tokens wrote, else counted with ``tokenizer``), and sets a target per source:

- ``total`` given: target = share × total;
- otherwise the largest mix the sources allow with at most ``max_epochs`` passes over each.

A source with more than its target is down-sampled: records in a seeded random order are taken
while each one brings the total closer to the target (so token targets are met to within part of one
record). A source with less is up-sampled — repeated whole epochs plus a sampled remainder — only up
to ``max_epochs``. Records not taken are dropped (``not selected for the mix``); records of no listed
source are dropped (``source not in the mix``) or kept as they are with ``others: keep``.

Counters report the mix: ``units:NAME`` (records or tokens taken), ``records:NAME``, and the
effective and requested share in parts per million (``share_ppm:NAME``, ``target_ppm:NAME``).
Up-sampled copies carry ``meta["epoch"]`` (1, 2, …), are counted in ``added`` and come out as
``Generated`` (the runner counts them as generated, so ``in + generated = out + dropped`` holds).
"""

from __future__ import annotations

import fnmatch
import math
import random
from collections.abc import Iterable, Iterator
from typing import Literal

import orjson
from pydantic import Field, model_validator

from datamill.errors import DatamillError
from datamill.ops import register
from datamill.ops.base import Global, OpConfig
from datamill.record import Record
from datamill.results import Drop, Generated
from datamill.select.mixing import fill
from datamill.select.split import meta_value
from datamill.select.tokenizer import get_tokenizer, record_tokens


@register
class Mix(Global):
    """Down- and up-sample sources to a ratio of records or tokens; report the effective ratio."""

    name = "mix"

    class Config(OpConfig):
        ratio: dict[str, float]  # source name → weight
        sources: dict[str, list[str]] = {}  # source name → glob patterns on meta[source_field]
        source_field: str = "source"
        by: Literal["records", "tokens"] = "records"
        total: int | None = Field(None, ge=1)  # records or tokens; default: the largest mix possible
        max_epochs: float = Field(1.0, ge=1.0)  # > 1 allows up-sampling (repeated records)
        others: Literal["drop", "keep"] = "drop"
        tokenizer: str = "embedded"  # used when by: tokens and a record has no meta["tokens"]

        @model_validator(mode="after")
        def _check(self):
            if not self.ratio or any(w < 0 for w in self.ratio.values()) or sum(self.ratio.values()) <= 0:
                raise ValueError("ratio needs at least one source with a positive weight")
            unknown = set(self.sources) - set(self.ratio)
            if unknown:
                raise ValueError(f"sources not in ratio: {sorted(unknown)}")
            return self

    def _source_of(self, rec: Record) -> str | None:
        value = meta_value(rec, self.config.source_field)
        if value is None:
            return None
        value = str(value)
        for name in self.config.ratio:
            patterns = self.config.sources.get(name) or [f"*{name}*"]
            if any(fnmatch.fnmatchcase(value, p) for p in patterns):
                return name
        return None

    def _size(self, rec: Record) -> int:
        if self.config.by == "records":
            return 1
        counts = rec.meta.get("tokens")
        if not (isinstance(counts, dict) and isinstance(counts.get("total"), int)):
            counts = record_tokens(rec, get_tokenizer(self.config.tokenizer))
            rec.meta["tokens"] = counts
        return counts["total"]

    def plan(self, available: dict[str, int]) -> dict[str, float]:
        """Target units per source."""
        c = self.config
        weights = {s: w for s, w in c.ratio.items() if w > 0}
        total_w = sum(weights.values())
        if c.total is not None:
            total = float(c.total)
        else:
            total = min(available.get(s, 0) * c.max_epochs * total_w / w for s, w in weights.items())
        return {s: total * c.ratio[s] / total_w for s in c.ratio}

    def run(self, records: Iterable[Record]) -> Iterator[Record | Drop | Generated]:
        c = self.config
        work = self.context.workdir
        work.mkdir(parents=True, exist_ok=True)
        spool_path = work / "spool.jsonl"
        source: list[str | None] = []
        size: list[int] = []
        with open(spool_path, "wb") as spool:
            for rec in records:
                name = self._source_of(rec)
                source.append(name)
                size.append(self._size(rec) if name is not None else 0)
                spool.write(orjson.dumps(rec.to_dict()) + b"\n")
        members: dict[str, list[int]] = {s: [] for s in c.ratio}
        for i, name in enumerate(source):
            if name is not None:
                members[name].append(i)
        available = {s: sum(size[i] for i in idx) for s, idx in members.items()}
        empty = [s for s, w in c.ratio.items() if w > 0 and not available[s]]
        if empty and source:
            seen = sorted(
                {str(meta_value(Record.from_dict(orjson.loads(line)), c.source_field)) for line in _head(spool_path)}
            )
            raise DatamillError(
                f"mix: no record matched source(s) {empty} (patterns on meta.{c.source_field}: "
                f"{ {s: c.sources.get(s) or [f'*{s}*'] for s in empty} }); values seen include {seen[:5]}"
            )
        targets = self.plan(available)
        rng = random.Random(self.context.seed)
        copies = [0] * len(source)  # times each record is emitted
        for name, idx in members.items():
            target = min(targets[name], available[name] * c.max_epochs)
            whole = math.floor(target / available[name]) if available[name] else 0
            for i in idx:
                copies[i] = whole
            order = list(idx)
            rng.shuffle(order)
            for i in fill(order, size, target - whole * available[name]):
                copies[i] += 1
        taken = {s: 0 for s in c.ratio}
        taken_records = {s: 0 for s in c.ratio}
        with open(spool_path, "rb") as spool:
            for i, line in enumerate(spool):
                rec = Record.from_dict(orjson.loads(line))
                name = source[i]
                if name is None:
                    if c.others == "keep":
                        yield rec
                    else:
                        yield Drop(rec, "source not in the mix")
                    continue
                if not copies[i]:
                    yield Drop(rec, "not selected for the mix")
                    continue
                taken[name] += size[i] * copies[i]
                taken_records[name] += copies[i]
                yield rec
                for epoch in range(1, copies[i]):
                    copy = Record.from_dict(orjson.loads(line))
                    copy.meta["epoch"] = epoch
                    self.counters["added"] += 1
                    yield Generated(copy)
        spool_path.unlink(missing_ok=True)
        grand = sum(taken.values()) or 1
        total_w = sum(c.ratio.values())
        for name in c.ratio:
            self.counters[f"units:{name}"] += taken[name]
            self.counters[f"records:{name}"] += taken_records[name]
            self.counters[f"available:{name}"] += available[name]
            self.counters[f"share_ppm:{name}"] += round(1e6 * taken[name] / grand)
            self.counters[f"target_ppm:{name}"] += round(1e6 * c.ratio[name] / total_w)


def _head(path, n: int = 200):
    with open(path, "rb") as f:
        for i, line in enumerate(f):
            if i >= n:
                return
            yield line
