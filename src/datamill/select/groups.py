"""group_shared_text: find records built from the same source passage, so a split can keep them together.

Instruction data is often made by applying several templates to one source example (T0, FLAN,
Self-Instruct-style rewrites): the records differ in their template words but share the passage.
Near-dup dedup misses them (the templates make them dissimilar overall), yet putting two of them
in different splits leaks the test set into training.

Every record's text becomes a set of word n-grams (a CJK character counts as a word). N-grams found
in more than ``max_df`` records are template or boilerplate and are ignored; the rest are the
record's *distinctive* n-grams. Two records are linked when the Jaccard similarity of their
distinctive n-grams is at least ``min_jaccard``; linked records form one group (union-find), and
``meta[key]`` gets the id of the group's first record. Linking by Jaccard rather than by any shared
n-gram keeps a common phrase (an app name, a dateline) from chaining unrelated records together.

Memory: the n-gram hashes of every record (8 bytes each); pair counting is vectorized and bounded by
``max_df``. The records themselves are spooled to the work directory.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Literal

import numpy as np
import orjson
import xxhash
from pydantic import Field

from datamill.clean.text import CJK
from datamill.dedup.unionfind import find, union
from datamill.ops import register
from datamill.ops.base import Global, OpConfig
from datamill.record import Record
from datamill.results import Drop

TOKEN = re.compile(f"[{CJK}]|[^\\W_]+")


def ngram_hashes(text: str, n: int) -> np.ndarray:
    """Sorted unique 64-bit hashes of the lowercased word n-grams of ``text``."""
    words = TOKEN.findall(text.lower())
    if not words:
        return np.zeros(0, np.uint64)
    grams = {" ".join(words[i : i + n]) for i in range(max(1, len(words) - n + 1))}
    return np.unique(np.fromiter((xxhash.xxh64_intdigest(g.encode()) for g in grams), np.uint64, len(grams)))


def shared_text_groups(hashes: list[np.ndarray], max_df: int, min_jaccard: float) -> np.ndarray:
    """Union-find root (index of the group's first record) for each record's n-gram hash set."""
    n = len(hashes)
    parent = np.arange(n, dtype=np.int64)
    if not n:
        return parent
    keys = np.concatenate(hashes) if hashes else np.zeros(0, np.uint64)
    owner = np.repeat(np.arange(n, dtype=np.int64), [len(h) for h in hashes])
    order = np.lexsort((owner, keys))
    keys, owner = keys[order], owner[order]
    _, df = np.unique(keys, return_counts=True)
    rare_key = (df >= 2) & (df <= max_df)
    keep = np.repeat(rare_key, df)
    # distinctive n-grams per record (the denominator of the Jaccard similarity)
    keys, owner = keys[keep], owner[keep]
    distinct = np.bincount(owner, minlength=n)
    us, vs = [], []
    for d in range(1, max_df):  # pairs (i, i+d) inside one posting list
        if d >= len(keys):
            break
        same = keys[d:] == keys[:-d]
        if not same.any():
            break
        us.append(owner[:-d][same])
        vs.append(owner[d:][same])
    if not us:
        return parent
    u, v = np.concatenate(us), np.concatenate(vs)
    pair = u * n + v
    pair, shared = np.unique(pair, return_counts=True)
    u, v = pair // n, pair % n
    jaccard = shared / np.maximum(distinct[u] + distinct[v] - shared, 1)
    ok = jaccard >= min_jaccard
    union(parent, u[ok], v[ok])
    return find(parent, np.arange(n, dtype=np.int64))


@register
class GroupSharedText(Global):
    """Write ``meta[key]``: the id of the first record sharing this record's source passage."""

    name = "group_shared_text"

    class Config(OpConfig):
        part: Literal["all", "prompt", "answer", "text"] = "all"
        ngram: int = Field(2, ge=1, le=16)
        max_df: int = Field(30, ge=2, le=1000)  # n-grams in more records are template words
        min_jaccard: float = Field(0.3, gt=0, le=1)
        key: str = "source_group"

    def run(self, records: Iterable[Record]) -> Iterator[Record | Drop]:
        c = self.config
        work = self.context.workdir
        work.mkdir(parents=True, exist_ok=True)
        spool_path = work / "spool.jsonl"
        hashes: list[np.ndarray] = []
        ids: list[str] = []
        with open(spool_path, "wb") as spool:
            for rec in records:
                spool.write(orjson.dumps(rec.to_dict()) + b"\n")
                hashes.append(ngram_hashes(rec.part(c.part), c.ngram))
                ids.append(rec.id or rec.compute_id())
        roots = shared_text_groups(hashes, c.max_df, c.min_jaccard)
        del hashes
        sizes = np.bincount(roots, minlength=len(roots))
        self.counters["groups"] += int((sizes > 0).sum())
        self.counters["grouped_records"] += int((sizes[roots] > 1).sum())
        with open(spool_path, "rb") as spool:
            for i, line in enumerate(spool):
                rec = Record.from_dict(orjson.loads(line))
                rec.meta[c.key] = ids[int(roots[i])]
                yield rec
        spool_path.unlink(missing_ok=True)
