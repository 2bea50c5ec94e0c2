"""split: train / validation / test, seeded, stratified, and leak-free; plus a streaming shuffle buffer.

Leak-free means records that share a group key never land in different splits. ``group_by`` names
meta fields — e.g. ``near_dup_cluster`` (minhash_dedup), ``semantic_dup_cluster`` (semantic_dedup),
``source_group`` (group_shared_text: one source passage under several templates), or any field of
your own such as a source-document id. Records sharing a value of *any* of these fields are joined
(union-find), so a chain of shared keys is one group. A record without any key is its own group.

Assignment: per stratum (``stratify`` names a meta field, or ``kind`` / ``source``), groups are
shuffled with the seed, ordered largest first, and each goes to the split with the largest remaining
deficit against its target; the small groups at the end fill the gaps, so proportions land within
about one small group of the target. The split name is written to ``meta[key]`` and records come out
in input order (or shuffled with ``shuffle_buffer``). Nothing is dropped.

Targets are ``fractions`` (they must sum to 1) or ``counts`` (records; the ``rest`` split takes
what is left).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import orjson
from pydantic import Field, model_validator

from datamill.dedup.unionfind import find, union
from datamill.ops import register
from datamill.ops.base import Global, OpConfig
from datamill.record import Record
from datamill.results import Drop


def meta_value(rec: Record, field: str) -> Any:
    """A meta field (dots walk into nested dicts); ``kind`` is the record kind."""
    if field == "kind":
        return rec.kind
    value: Any = rec.meta
    for part in field.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def buffer_shuffle(items: Iterable[Any], size: int, rng: random.Random) -> Iterator[Any]:
    """Streaming shuffle: keep ``size`` items, emit a random one for each new item (tf.data style).
    Memory is ``size`` items; the result is only locally random for inputs much larger than it."""
    buf: list[Any] = []
    for item in items:
        if len(buf) < size:
            buf.append(item)
            continue
        j = rng.randrange(size)
        yield buf[j]
        buf[j] = item
    rng.shuffle(buf)
    yield from buf


def assign(groups: list[tuple[int, str, int]], targets: dict[str, float], rng: random.Random) -> dict[int, str]:
    """Map each group (id, stratum, size) to a split: per stratum, shuffled, largest first, to the
    split with the largest remaining deficit. ``targets`` are fractions summing to 1."""
    by_stratum: dict[str, list[tuple[int, int]]] = {}
    for gid, stratum, size in groups:
        by_stratum.setdefault(stratum, []).append((gid, size))
    out: dict[int, str] = {}
    names = list(targets)
    for stratum in sorted(by_stratum):
        members = by_stratum[stratum]
        rng.shuffle(members)
        members.sort(key=lambda g: -g[1])  # stable: random order among equal sizes
        total = sum(size for _, size in members)
        want = {s: targets[s] * total for s in names}
        have = dict.fromkeys(names, 0)
        for gid, size in members:
            best = max(names, key=lambda s: (want[s] - have[s], targets[s]))
            out[gid] = best
            have[best] += size
    return out


@register
class Split(Global):
    """Write the split name (train / validation / test or your own) into ``meta[key]``."""

    name = "split"

    class Config(OpConfig):
        fractions: dict[str, float] | None = None  # e.g. {train: 0.8, validation: 0.1, test: 0.1}
        counts: dict[str, int] | None = None  # e.g. {validation: 500, test: 500}; the rest → ``rest``
        rest: str = "train"
        stratify: str | None = None  # meta field (or kind) whose values each get the same proportions
        group_by: list[str] = []  # meta fields: records sharing a value of any stay in one split
        key: str = "split"
        shuffle_buffer: int = Field(0, ge=0)  # >0: emit in a streaming-shuffled order

        @model_validator(mode="after")
        def _targets(self):
            if (self.fractions is None) == (self.counts is None):
                raise ValueError("give either fractions or counts")
            if self.fractions is not None:
                if any(v < 0 for v in self.fractions.values()) or abs(sum(self.fractions.values()) - 1) > 1e-6:
                    raise ValueError(f"fractions must be ≥ 0 and sum to 1, got {self.fractions}")
            elif any(v < 0 for v in self.counts.values()) or self.rest in self.counts:
                raise ValueError("counts must be ≥ 0 and must not name the rest split")
            return self

    def _targets(self, n: int) -> dict[str, float]:
        c = self.config
        if c.fractions is not None:
            return dict(c.fractions)
        asked = sum(c.counts.values())
        if asked > n:
            self.counters["counts_exceed_input"] += 1
        scale = min(1.0, n / asked) if asked else 1.0
        targets = {s: v * scale / n for s, v in c.counts.items()} if n else dict.fromkeys(c.counts, 0.0)
        targets[c.rest] = max(0.0, 1 - sum(targets.values()))
        return targets

    def run(self, records: Iterable[Record]) -> Iterator[Record | Drop]:
        c = self.config
        work = self.context.workdir
        work.mkdir(parents=True, exist_ok=True)
        spool_path = work / "spool.jsonl"
        strata: list[str] = []
        key_index: dict[tuple[str, str], int] = {}  # (field, value) → first record carrying it
        u: list[int] = []
        v: list[int] = []
        n = 0
        with open(spool_path, "wb") as spool:
            for rec in records:
                spool.write(orjson.dumps(rec.to_dict()) + b"\n")
                strata.append("" if c.stratify is None else str(meta_value(rec, c.stratify)))
                for field in c.group_by:
                    value = meta_value(rec, field)
                    if value is None or value == "":
                        continue
                    first = key_index.setdefault((field, orjson.dumps(value).decode()), n)
                    if first != n:
                        u.append(first)
                        v.append(n)
                n += 1
        del key_index
        parent = np.arange(n, dtype=np.int64)
        if u:
            union(parent, np.asarray(u, np.int64), np.asarray(v, np.int64))
        roots = find(parent, np.arange(n, dtype=np.int64)) if n else parent
        del u, v, parent
        sizes = np.bincount(roots, minlength=n) if n else np.zeros(0, np.int64)
        group_ids = np.flatnonzero(sizes)
        rng = random.Random(self.context.seed)
        choice = assign([(int(g), strata[g], int(sizes[g])) for g in group_ids], self._targets(n), rng)
        del strata
        self.counters["groups"] += len(group_ids)
        self.counters["grouped_records"] += int((sizes[roots] > 1).sum()) if n else 0

        def emit() -> Iterator[Record]:
            with open(spool_path, "rb") as spool:
                for i, line in enumerate(spool):
                    rec = Record.from_dict(orjson.loads(line))
                    name = choice[int(roots[i])]
                    rec.meta[c.key] = name
                    self.counters[f"split:{name}"] += 1
                    yield rec

        stream = emit()
        if c.shuffle_buffer:
            stream = buffer_shuffle(stream, c.shuffle_buffer, random.Random(self.context.seed + 1))
        yield from stream
        spool_path.unlink(missing_ok=True)


@register
class ShuffleBuffer(Global):
    """Streaming shuffle with a fixed-size buffer: no disk, one pass, memory = ``size`` records.
    Locally random only; use ``shuffle`` for a full shuffle of huge data."""

    name = "shuffle_buffer"

    class Config(OpConfig):
        size: int = Field(10_000, ge=1)

    def run(self, records: Iterable[Record]) -> Iterator[Record | Drop]:
        yield from buffer_shuffle(records, self.config.size, random.Random(self.context.seed))
