"""semantic_dedup: drop records whose embeddings are nearly identical (see docs/dedup.md).

Two passes over the stream, all state on disk in the step's work directory, like ``minhash_dedup``:

1. every record is spooled to ``spool.jsonl`` while its ``part`` is embedded batch-wise (the local
   all-MiniLM-L6-v2 by default, or an OpenAI-compatible ``/v1/embeddings`` endpoint via ``embed``) —
   by the workers of the stage before, chunk by chunk, when there is one (``record_vectors``);
   the L2-normalised vectors go to ``embeddings.f32`` (read back as a numpy memmap), ids to
   ``ids.txt``; records whose part is empty get no vector and are never clustered;
2. pairs with cosine ≥ ``threshold`` are found with a nearest-neighbour index — ``usearch`` (HNSW,
   the ``neighbors`` nearest of every record, each candidate re-checked with the exact dot product)
   or ``exact`` blocked matrix products — and joined with the vectorized union-find of
   ``datamill.dedup.minhash``; one record per cluster is kept (``first``, ``longest`` or highest
   ``score``) and the spool is re-read to yield every record in input order — kept, or ``Drop`` with
   ``meta.semantic_duplicate_of`` (the kept record's id) and ``meta.semantic_dup_cluster``.

``clusters.jsonl`` and ``summary.json`` stay in the work directory (``clusters: PATH`` copies the
former), exactly as ``minhash_dedup`` writes them.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import orjson
from pydantic import Field

from datamill.dedup.clusters import ClusterSpool
from datamill.dedup.unionfind import find, union
from datamill.llm.embeddings import EmbedConfig
from datamill.llm.record_vectors import EmbedsRecords
from datamill.ops import register
from datamill.ops.base import Global, OpConfig
from datamill.record import Record
from datamill.results import Drop

EXACT_UP_TO = 20_000  # index: auto uses exact matrix products up to this many vectors, usearch above


def _have_usearch() -> bool:
    try:
        import usearch.index  # noqa: F401
    except ImportError:
        return False
    return True


@register
class SemanticDedup(EmbedsRecords, Global):
    """Drop semantic near-duplicates (cosine similarity of sentence embeddings); keep one record per
    cluster."""

    name = "semantic_dedup"

    class Config(OpConfig):
        part: Literal["all", "prompt", "answer", "text"] = "all"
        threshold: float = Field(0.95, gt=0, le=1)  # cosine similarity that makes two records duplicates
        embed: EmbedConfig = EmbedConfig()  # backend local (MiniLM) or openai (an /v1/embeddings endpoint)
        index: Literal["auto", "usearch", "exact"] = "auto"
        neighbors: int = Field(16, ge=1, le=1024)  # usearch: nearest neighbours searched per record
        keep: Literal["first", "longest", "score"] = "first"
        score_key: str = "quality_score"  # meta number read when keep = score (higher wins; dotted path ok)
        batch_size: int = Field(1024, ge=1)  # texts per embedding call
        block: int = Field(2048, ge=1)  # rows per matrix product / index search
        clusters: str | None = None  # also write clusters.jsonl to this path

    def __init__(self, config, context):
        super().__init__(config, context)
        self.reason_text = f"semantic duplicate (cosine >= {self.config.threshold:g})"
        self.stats: dict[str, int | str] = {}

    # ---- pass 1 --------------------------------------------------------------------------------
    def record_text(self, rec: Record) -> str:
        return rec.part(self.config.part).strip()

    def _pass1(self, records: Iterable[Record], spool: ClusterSpool) -> np.ndarray:
        """Spool and embed; returns the record index of each embedding row (non-empty texts only)."""
        rows = array("q")  # records with a non-empty part, in order: one embedding row each
        with spool, open(spool.work / "embeddings.f32", "wb") as emb:
            for rec, has_vector in self.embed_stream(records, emb):
                spool.add(rec, rec.part(self.config.part))
                if has_vector:
                    rows.append(spool.n - 1)
        return np.frombuffer(rows, dtype=np.int64).copy()

    # ---- pairs (of embedding rows) -------------------------------------------------------------
    def _pairs_exact(self, emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every pair i < j with cosine ≥ threshold: blocked E[lo:hi] · E[lo:]ᵀ, upper triangle."""
        us, vs = [], []
        b = max(1, min(self.config.block, 2**25 // max(1, len(emb))))  # similarity block ≤ 128 MB
        t = np.float32(self.config.threshold - 1e-6)
        for lo in range(0, len(emb), b):
            hi = min(lo + b, len(emb))
            sim = np.asarray(emb[lo:hi]) @ np.asarray(emb[lo:]).T  # column j is row lo + j
            r, c = np.nonzero(sim >= t)
            upper = c > r  # the diagonal and the lower triangle are seen by earlier blocks
            us.append(lo + r[upper])
            vs.append(lo + c[upper])
        return self._concat(us), self._concat(vs)

    def _pairs_usearch(self, emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Candidates from an HNSW index (the ``neighbors`` nearest of each row), kept when the exact
        dot product of the stored vectors reaches the threshold."""
        from usearch.index import Index

        m_rows, b = len(emb), self.config.block
        index = Index(ndim=emb.shape[1], metric="ip", dtype="f16")
        for lo in range(0, m_rows, b):
            hi = min(lo + b, m_rows)
            index.add(np.arange(lo, hi, dtype=np.uint64), np.ascontiguousarray(emb[lo:hi]))
        count = min(self.config.neighbors + 1, m_rows)
        loose = 1 - self.config.threshold + 1e-3  # ip distance is 1 − dot; slack for f32 rounding
        us, vs = [], []
        for lo in range(0, m_rows, b):
            hi = min(lo + b, m_rows)
            m = index.search(np.ascontiguousarray(emb[lo:hi]), count)
            found = np.asarray(m.keys).reshape(hi - lo, -1).astype(np.int64)
            dist = np.asarray(m.distances).reshape(hi - lo, -1)
            filled = np.arange(found.shape[1])[None, :] < np.asarray(m.counts).reshape(-1, 1)
            q = np.arange(lo, hi, dtype=np.int64)
            r, c = np.nonzero(filled & (dist <= loose) & (found != q[:, None]))
            us.append(q[r])
            vs.append(found[r, c])
        u, v = self._concat(us), self._concat(vs)
        if len(u):  # each pair is usually found from both ends
            pair = np.unique(np.stack([np.minimum(u, v), np.maximum(u, v)], axis=1), axis=0)
            u, v = pair[:, 0], pair[:, 1]
        ok = np.empty(len(u), bool)
        for lo in range(0, len(u), 65536):
            a, c = np.asarray(emb[u[lo : lo + 65536]]), np.asarray(emb[v[lo : lo + 65536]])
            ok[lo : lo + 65536] = np.einsum("ij,ij->i", a, c) >= self.config.threshold - 1e-6
        self.stats["candidate_pairs"] = int(len(u))
        return u[ok], v[ok]

    @staticmethod
    def _concat(parts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)

    def _cluster(self, n: int, rows: np.ndarray, work: Path) -> np.ndarray:
        """Union-find roots: parent[i] is the first record of i's cluster."""
        parent = np.arange(n, dtype=np.int64)
        backend = self.config.index
        if backend == "auto":
            backend = "usearch" if len(rows) > EXACT_UP_TO and _have_usearch() else "exact"
        self.stats["index"] = backend
        if len(rows) > 1:
            emb = np.memmap(work / "embeddings.f32", dtype=np.float32, mode="r", shape=(len(rows), self.dim))
            u, v = (self._pairs_usearch if backend == "usearch" else self._pairs_exact)(emb)
            del emb
            self.stats["joined_pairs"] = int(len(u))
            union(parent, rows[u], rows[v])
        return find(parent, np.arange(n, dtype=np.int64))

    # ---- the operator --------------------------------------------------------------------------
    def run(self, records: Iterable[Record]) -> Iterator[Record | Drop]:
        work = self.context.workdir
        work.mkdir(parents=True, exist_ok=True)
        spool = ClusterSpool(work, self.config.keep, self.config.score_key)
        rows = self._pass1(records, spool)
        n = spool.n
        roots = self._cluster(n, rows, work)
        cluster_of, kept, members = spool.choose(roots)
        del roots
        kept_ids = spool.write_clusters(cluster_of, kept, members, self.config.clusters)
        self.stats.update(records=n, embedded=len(rows), clusters=len(kept))
        self.stats.update(dropped=int(len(members) - len(kept)))
        summary = {**self.stats, "threshold": self.config.threshold, "model": self.embedder_name}
        (work / "summary.json").write_bytes(orjson.dumps(summary))
        yield from spool.emit(
            cluster_of, kept, kept_ids, "semantic_dup_cluster", "semantic_duplicate_of", self.reason_text
        )
        spool.cleanup("embeddings.f32")
