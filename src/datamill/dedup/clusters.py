"""What the clustering dedups (minhash_dedup, semantic_dedup) share around their own similarity search.

Pass 1 spools every record to disk with its id, the length of its text and (``keep: score``) its
score; after the op has found clusters (union-find roots), :meth:`ClusterSpool.choose` picks one
record per cluster, :meth:`ClusterSpool.write_clusters` lists them in ``clusters.jsonl`` and
:meth:`ClusterSpool.emit` re-reads the spool to yield every record once, in input order.
"""

from __future__ import annotations

import math
import mmap
import shutil
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from datamill.io.atomic import open_atomic
from datamill.record import Record
from datamill.results import Drop


def meta_number(meta: dict[str, Any], key: str) -> float:
    """The number at a dotted path in ``meta`` (``quality.score``), or -inf when there is none."""
    value: Any = meta
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else -math.inf


class ClusterSpool:
    def __init__(self, work: Path, keep: str, score_key: str):
        self.work, self.keep, self.score_key = work, keep, score_key
        self.lengths, self.scores = array("q"), array("d")
        self.id_offsets = array("Q")  # where each record's id starts in ids.txt
        self.n = 0

    def __enter__(self) -> ClusterSpool:
        self._spool = open(self.work / "spool.jsonl", "wb")  # noqa: SIM115 - closed in __exit__
        self._ids = open(self.work / "ids.txt", "wb")  # noqa: SIM115
        return self

    def __exit__(self, *exc: Any) -> None:
        self._spool.close()
        self._ids.close()

    def add(self, rec: Record, text: str) -> None:
        self._spool.write(orjson.dumps(rec.to_dict()) + b"\n")
        self.id_offsets.append(self._ids.tell())
        self._ids.write(orjson.dumps(rec.id) + b"\n")
        self.lengths.append(len(text))
        if self.keep == "score":
            self.scores.append(meta_number(rec.meta, self.score_key))
        self.n += 1

    def choose(self, roots: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(cluster number per record or -1, kept record index per cluster, member indices)."""
        n = len(roots)
        sizes = np.bincount(roots, minlength=n)
        members = np.flatnonzero(sizes[roots] > 1)
        cluster_of = np.full(n, -1, np.int64)
        if not len(members):
            return cluster_of, np.zeros(0, np.int64), members
        r = roots[members]
        cluster_roots, number = np.unique(r, return_inverse=True)  # numbered by first member
        cluster_of[members] = number
        if self.keep == "first":
            return cluster_of, cluster_roots, members
        if self.keep == "longest":
            value = np.frombuffer(self.lengths, dtype=np.int64).astype(np.float64)
        else:
            value = np.frombuffer(self.scores, dtype=np.float64)
        order = np.lexsort((members, -value[members], number))  # best, then earliest, per cluster
        first_of = np.concatenate([[True], number[order][1:] != number[order][:-1]])
        return cluster_of, members[order][first_of], members

    def write_clusters(self, cluster_of, kept, members, copy_to: str | None = None) -> list[str]:
        """clusters.jsonl (``{"cluster", "members", "kept"}`` by id), optionally copied to ``copy_to``;
        returns the id of each cluster's kept record."""
        offsets = np.frombuffer(self.id_offsets, dtype=np.uint64) if len(self.id_offsets) else np.zeros(0, np.uint64)
        order = members[np.argsort(cluster_of[members], kind="stable")]  # by cluster, input order within
        bounds = np.flatnonzero(np.diff(cluster_of[order])) + 1
        kept_ids: list[str] = []
        with open(self.work / "ids.txt", "rb") as f, open(self.work / "clusters.jsonl", "wb") as out:
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if len(members) else None

            def rid(i: int) -> str:
                start = int(offsets[i])
                return orjson.loads(mm[start : mm.find(b"\n", start)])

            for number, group in enumerate(np.split(order, bounds) if len(order) else []):
                kept_id = rid(int(kept[number]))
                kept_ids.append(kept_id)
                line = {"cluster": number, "members": [rid(int(i)) for i in group], "kept": kept_id}
                out.write(orjson.dumps(line) + b"\n")
            if mm is not None:
                mm.close()
        if copy_to:
            target = Path(copy_to)
            target.parent.mkdir(parents=True, exist_ok=True)
            with open_atomic(target) as f, open(self.work / "clusters.jsonl", "rb") as src:
                shutil.copyfileobj(src, f)
        return kept_ids

    def emit(
        self, cluster_of, kept, kept_ids, cluster_key: str, dup_key: str, reason: str, external=None
    ) -> Iterator[Record | Drop]:
        """Pass 2: every record once, in input order — the kept member of each cluster (and unclustered
        records) as records, the others as ``Drop`` with the cluster number and the kept record's id in
        meta. ``external`` maps a record number to the id of an already-indexed record it duplicates:
        those are dropped too."""
        external = external or {}
        with open(self.work / "spool.jsonl", "rb") as spool:
            for i, line in enumerate(spool):
                rec = Record.from_dict(orjson.loads(line))
                if i in external:
                    rec.meta[dup_key] = external[i]
                    yield Drop(rec, f"{reason} of the index")
                    continue
                number = int(cluster_of[i])
                if number < 0:
                    yield rec
                    continue
                rec.meta[cluster_key] = number
                if kept[number] == i:
                    yield rec
                else:
                    rec.meta[dup_key] = kept_ids[number]
                    yield Drop(rec, reason)

    def cleanup(self, *extra: str) -> None:
        """Remove the scratch files (clusters.jsonl and the op's summary stay)."""
        for name in ("spool.jsonl", "ids.txt", *extra):
            (self.work / name).unlink(missing_ok=True)
