"""select: keep N records chosen for quality × diversity, with optional quotas by a field.

A few thousand well-chosen examples can match a much larger pool (LIMA), if they are both good and
different from each other. Diversity comes from k-center greedy on sentence embeddings (MiniLM by
default): each next pick is the record farthest from everything picked so far, so the selection
spreads over the whole embedding space instead of piling up in its dense regions. Quality, when the
records carry a score (``quality_key``, e.g. a judge's or a filter's score in meta), multiplies that
distance: ``score = distance × q^quality_weight`` with ``q`` the record's score rank in (0, 1], so
a scale-free score of any range works. The first pick is the best-scored record.

Quotas (``quota_by`` a meta field such as ``lang``, ``source`` or a task type; ``quotas`` value → n,
where a key may be a glob such as ``"*alpaca_zh*"``) cap each value; when ``n`` is larger than the
quotas' sum the rest is open to any record.

Memory: one float32 embedding per record (384 dimensions: 1.5 KB), written to the work directory
while embedding (by the workers of the stage before, when there is one: ``record_vectors``) and read
back once for the selection; time: n passes over the N embeddings.
"""

from __future__ import annotations

import fnmatch
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import Literal

import numpy as np
import orjson
from pydantic import Field

from datamill.errors import DatamillError
from datamill.llm.embeddings import EmbedConfig
from datamill.llm.record_vectors import EmbedsRecords
from datamill.ops import register
from datamill.ops.base import Global, OpConfig
from datamill.record import Record
from datamill.results import Drop
from datamill.select.split import meta_value

MAX_CHARS = 2000  # MiniLM reads 256 word pieces; longer text only costs time


def rank_quality(scores: Sequence[float | None]) -> np.ndarray:
    """Scores → ranks in (0, 1] (best = 1); records without a score get the lowest rank."""
    values = np.array([-np.inf if s is None else float(s) for s in scores], dtype=np.float64)
    if not len(values):
        return values
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1) / len(values)
    return ranks


def k_center(
    emb: np.ndarray,
    n: int,
    quality: np.ndarray | None = None,
    quality_weight: float = 1.0,
    groups: Sequence[str] | None = None,
    quotas: dict[str, int] | None = None,
) -> list[int]:
    """Indices of ``n`` rows picked by k-center greedy on cosine distance (rows L2-normalised),
    weighted by ``quality`` and capped per group by ``quotas`` (the rest of ``n`` is open)."""
    total = len(emb)
    n = min(n, total)
    weight = np.ones(total) if quality is None else np.power(np.maximum(quality, 1e-9), quality_weight)
    allowed = np.ones(total, bool)
    left: Counter[str] = Counter()
    open_slots = n
    if quotas:
        left.update(quotas)
        open_slots = max(0, n - sum(quotas.values()))
        group_arr = np.array([str(g) for g in groups], dtype=object)
    dist = np.full(total, 2.0)  # cosine distance is at most 2
    picked: list[int] = []
    while len(picked) < n:
        score = np.where(allowed, dist * weight, -1.0)
        best = int(np.argmax(score))
        if score[best] < 0:
            break  # quotas exhausted and no open slots left for the others
        picked.append(best)
        allowed[best] = False
        dist = np.minimum(dist, 1.0 - emb @ emb[best])
        if quotas:
            g = group_arr[best]
            if left[g] > 0:
                left[g] -= 1
            else:
                open_slots -= 1
            if open_slots <= 0:  # only values with quota left may still be picked
                full = [v for v in set(group_arr[allowed]) if left[v] <= 0]
                if full:
                    allowed &= ~np.isin(group_arr, full)
    return picked


@register
class Select(EmbedsRecords, Global):
    """Keep ``n`` records by quality × diversity (k-center greedy on embeddings), within quotas."""

    name = "select"

    class Config(OpConfig):
        n: int = Field(ge=1)
        # text embedded: the prompt (what the task is) by default; records without one use all their text
        part: Literal["all", "prompt", "answer", "text"] = "prompt"
        quality_key: str | None = "quality_score"  # meta field; missing on every record: diversity only
        quality_weight: float = Field(1.0, ge=0)
        quota_by: str | None = None  # meta field (or kind)
        quotas: dict[str, int] = {}
        embed: EmbedConfig = EmbedConfig()
        batch_size: int = Field(512, ge=1)

    def record_text(self, rec: Record) -> str:
        """Every record gets a vector: its part, else all its text, else a space."""
        return (rec.part(self.config.part) or rec.part("all"))[:MAX_CHARS] or " "

    def _quota_key(self, value: str) -> str:
        """The quota a value counts against: equal to a key, or matching it as a glob (``*zh*``)."""
        if value in self.config.quotas:
            return value
        return next((k for k in self.config.quotas if fnmatch.fnmatchcase(value, k)), value)

    def run(self, records: Iterable[Record]) -> Iterator[Record | Drop]:
        c = self.config
        if c.quotas and not c.quota_by:
            raise DatamillError("select: quotas need quota_by (the meta field they count)")
        work = self.context.workdir
        work.mkdir(parents=True, exist_ok=True)
        spool_path, emb_path = work / "spool.jsonl", work / "embeddings.f32"
        scores: list[float | None] = []
        groups: list[str] = []
        with open(spool_path, "wb") as spool, open(emb_path, "wb") as out:
            for rec, _ in self.embed_stream(records, out):
                spool.write(orjson.dumps(rec.to_dict()) + b"\n")
                value = meta_value(rec, c.quality_key) if c.quality_key else None
                scores.append(float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None)
                groups.append(self._quota_key(str(meta_value(rec, c.quota_by))) if c.quota_by else "")
        n = len(scores)
        emb = np.fromfile(emb_path, dtype=np.float32).reshape(n, self.dim) if n else np.zeros((0, 1), np.float32)
        quality = rank_quality(scores) if any(s is not None for s in scores) else None
        picked = k_center(emb, c.n, quality, c.quality_weight, groups, c.quotas or None)
        del emb
        rank = {i: r for r, i in enumerate(picked)}
        self.counters["selected"] += len(picked)
        with open(spool_path, "rb") as spool:
            for i, line in enumerate(spool):
                rec = Record.from_dict(orjson.loads(line))
                if i in rank:
                    rec.meta["select_rank"] = rank[i]
                    if c.quota_by:
                        self.counters[f"selected:{groups[i]}"] += 1
                    yield rec
                else:
                    yield Drop(rec, "not selected")
        spool_path.unlink(missing_ok=True)
        emb_path.unlink(missing_ok=True)
