"""minhash_dedup: near-duplicate removal with MinHash + LSH (see docs/dedup.md).

Two passes over the stream, all state on disk in the step's work directory:

1. every record is spooled to ``spool.jsonl`` while its MinHash signature and LSH bucket keys are
   computed batch-wise — the signatures by the workers of the chunk stage before, in parallel, when
   the step follows one (``precompute``); bucket keys go to ``buckets-NN.bin`` partition files (key,
   record index), signatures to ``signatures.u32`` (a memmap), ids to ``ids.txt``;
2. each bucket partition is loaded alone, sorted, and records sharing a key are joined with a
   vectorized union-find (optionally only when their signatures agree on ≥ threshold of the
   hashes); one record per cluster is kept (``first``, ``longest`` or highest ``score``) and the
   spool is re-read to yield every record in input order — kept, or ``Drop`` with
   ``meta.near_duplicate_of`` (the kept record's id) and ``meta.near_dup_cluster``.

``clusters.jsonl`` in the work directory lists every cluster: ``{"cluster", "members", "kept"}``
(member and kept record ids); ``clusters: PATH`` also writes it there (the work directory is removed
when a run finishes).

Options: part (all | prompt | answer | text), threshold (target Jaccard, 0.8), num_perm (128),
ngram (words per shingle, 5), char_ngram (characters per shingle for CJK text, 5), cjk_ratio,
normalize (NFKC, lowercase, punctuation → space before shingling; off),
bands/rows (default: chosen from the threshold by minimizing the weighted false-positive and
false-negative areas of the LSH S-curve; fp_weight), verify, keep (first | longest | score, with
score_key naming a meta field), batch_size, partitions, hash_seed, clusters; index (a persistent
index directory of an earlier corpus: records near-duplicating it are dropped too — see
``datamill.dedup.index``) and update_index (append this run's kept records to it).
"""

from __future__ import annotations

import math
import mmap
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import orjson
from pydantic import Field, model_validator

from datamill.dedup import minhash as mh
from datamill.dedup.clusters import ClusterSpool
from datamill.dedup.index import MinHashIndex
from datamill.dedup.unionfind import find, union
from datamill.errors import DatamillError
from datamill.io.atomic import open_atomic
from datamill.ops import register
from datamill.ops.base import Global, OpConfig
from datamill.record import Record
from datamill.results import Drop

BUCKET = np.dtype([("key", "<u8"), ("idx", "<u8")])


@register
class MinHashDedup(Global):
    """Drop near-duplicates (MinHash + LSH over word n-grams, or character n-grams for CJK text);
    keep one record per cluster."""

    name = "minhash_dedup"

    class Config(OpConfig):
        part: Literal["all", "prompt", "answer", "text"] = "all"
        threshold: float = Field(0.8, gt=0, lt=1)  # target Jaccard similarity of the shingle sets
        num_perm: int = Field(128, ge=8, le=1024)
        ngram: int = Field(5, ge=1, le=64)  # words per shingle
        char_ngram: int = Field(5, ge=1, le=64)  # characters per shingle for CJK text
        cjk_ratio: float = Field(0.3, ge=0, le=1)  # share of CJK letters that switches to characters
        # rewrite the text before shingling (NFKC width, lowercase, punctuation → space, whitespace
        # collapsed); off by default so signatures and existing indexes stay as they were
        normalize: bool = False
        bands: int | None = Field(None, ge=1)  # default: chosen from threshold (see docs/dedup.md)
        rows: int | None = Field(None, ge=1)
        # weight of false positives vs negatives when choosing bands × rows; default 0.2 with verify
        # (candidates are checked, so the bands favour recall), 0.5 without
        fp_weight: float | None = Field(None, ge=0, le=1)
        verify: bool = True  # join candidates only when their signatures agree on ≥ threshold
        keep: Literal["first", "longest", "score"] = "first"
        score_key: str = "quality_score"  # meta number read when keep = score (higher wins; dotted path ok)
        batch_size: int = Field(10_000, ge=1)
        partitions: int = Field(16, ge=1, le=4096)  # bucket files; memory ≈ records·bands·16 B / partitions
        hash_seed: int = 1
        clusters: str | None = None  # also write clusters.jsonl to this path
        index: str | None = None  # a persistent index directory (datamill.dedup.index) to check against
        update_index: bool = False  # add this run's kept records to `index` as a new segment

        @model_validator(mode="after")
        def _bands_rows(self):
            if (self.bands is None) != (self.rows is None):
                raise ValueError("give both bands and rows, or neither")
            if self.bands is not None and self.bands * self.rows > self.num_perm:
                raise ValueError(f"bands × rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}")
            if self.update_index and not self.index:
                raise ValueError("update_index needs index: DIR")
            return self

    def __init__(self, config, context):
        super().__init__(config, context)
        c = self.config
        if c.bands is not None:
            self.bands, self.rows = c.bands, c.rows
        else:
            fp = c.fp_weight if c.fp_weight is not None else (0.2 if c.verify else 0.5)
            self.bands, self.rows = mh.optimal_bands(c.threshold, c.num_perm, fp, 1 - fp)
        self.a, self.b = mh.permutations(c.num_perm, c.hash_seed)
        self.reason_text = f"near duplicate (minhash J≥{c.threshold:g})"
        self.stats: dict[str, int] = {}

    # ---- pass 1 --------------------------------------------------------------------------------
    def _signatures(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """MinHash signatures of a batch of texts, and which texts had any shingle."""
        c = self.config
        sh = mh.shingle(texts, c.ngram, c.char_ngram, c.cjk_ratio, c.normalize)
        return mh.signatures(sh, self.a, self.b), sh.count > 0

    def precompute(self, records: list[Record], path: Path) -> None:
        """A chunk's signatures, computed by a worker of the stage before (see ``Global``): one validity
        byte per record, then the records' signatures (uint32 × num_perm each)."""
        c = self.config
        sigs, flags = [], []
        for lo in range(0, len(records), c.batch_size):
            sig, valid = self._signatures([rec.part(c.part) for rec in records[lo : lo + c.batch_size]])
            sigs.append(sig)
            flags.append(valid)
        with open_atomic(path) as f:
            for part in (*flags, *sigs):
                f.write(part.astype(np.uint8 if part.dtype == bool else np.uint32).tobytes())

    def _read_precomputed(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        data = np.fromfile(path, dtype=np.uint8)
        n = len(data) // (1 + 4 * self.config.num_perm)
        return data[n:].view(np.uint32).reshape(n, self.config.num_perm), data[:n].astype(bool)

    def _buckets(self, sig: np.ndarray, valid: np.ndarray, first: int, parts, sig_file) -> None:
        """Write a batch's signatures (when verify or an index needs them) and LSH bucket keys; ``first`` is
        the stream index of its first record."""
        c = self.config
        if c.verify or c.index:
            sig_file.write(sig.tobytes())
        valid = np.flatnonzero(valid)
        if not len(valid):
            return
        keys = mh.band_keys(sig[valid], self.bands, self.rows)
        rec = np.empty(keys.size, BUCKET)
        rec["key"] = keys.ravel()
        rec["idx"] = np.repeat(valid + first, self.bands)
        which = rec["key"] % np.uint64(len(parts))
        for p, f in enumerate(parts):
            sel = rec[which == p]
            if len(sel):
                f.write(sel.tobytes())

    def _pass1(self, records: Iterable[Record], spool: ClusterSpool) -> int:
        c = self.config
        parts = [open(spool.work / f"buckets-{p:03d}.bin", "wb") for p in range(c.partitions)]  # noqa: SIM115
        try:
            with spool, open(spool.work / "signatures.u32", "wb") as sig_file:
                if self.precomputed is not None:  # the workers computed them, chunk by chunk
                    for rec in records:
                        spool.add(rec, rec.part(c.part))
                    first = 0
                    for path in self.precomputed:
                        sig, valid = self._read_precomputed(path)
                        self._buckets(sig, valid, first, parts, sig_file)
                        first += len(valid)
                    if first != spool.n:
                        raise DatamillError(f"minhash_dedup: {first} signatures from the workers for {spool.n} records")
                    self.counters["signatures_from_workers"] += first
                    return spool.n
                texts: list[str] = []
                for rec in records:
                    text = rec.part(c.part)
                    spool.add(rec, text)
                    texts.append(text)
                    if len(texts) >= c.batch_size:
                        self._buckets(*self._signatures(texts), spool.n - len(texts), parts, sig_file)
                        texts = []
                if texts:
                    self._buckets(*self._signatures(texts), spool.n - len(texts), parts, sig_file)
        finally:
            for f in parts:
                f.close()
        return spool.n

    # ---- clustering ----------------------------------------------------------------------------
    def _cluster(self, n: int, work: Path) -> np.ndarray:
        """Union-find roots: parent[i] is the first record of i's cluster."""
        c = self.config
        parent = np.arange(n, dtype=np.int64)
        sig_file = open(work / "signatures.u32", "rb") if c.verify and n else None  # noqa: SIM115
        sig_map = mmap.mmap(sig_file.fileno(), 0, access=mmap.ACCESS_READ) if sig_file else None
        need = math.ceil(c.threshold * c.num_perm - 1e-9)
        candidates = joined = 0
        for p in range(c.partitions):
            path = work / f"buckets-{p:03d}.bin"
            data = np.fromfile(path, dtype=BUCKET)
            path.unlink()
            if not len(data):
                continue
            u, v = mh.bucket_edges(data["key"], data["idx"].astype(np.int64))
            del data
            if sig_map is not None and len(u):
                # drop pairs already joined, then check the rest against their signatures
                fresh = find(parent, u) != find(parent, v)
                u, v = u[fresh], v[fresh]
                candidates += len(u)
                ok = self._verify(sig_map, n, u, v, need)
                u, v = u[ok], v[ok]
            else:
                candidates += len(u)
            joined += len(u)
            union(parent, u, v)
        if sig_map is not None:
            sig_map.close()
            sig_file.close()
        self.stats.update(candidate_pairs=int(candidates), joined_pairs=int(joined))
        return find(parent, np.arange(n, dtype=np.int64))

    def _verify(self, sig_map: mmap.mmap, n: int, u: np.ndarray, v: np.ndarray, need: int) -> np.ndarray:
        """Pairs whose signatures agree on at least ``need`` values. The signature file is mapped
        read-only; the (clean, reclaimable) pages a block touched are unmapped after it."""
        k = self.config.num_perm
        ok = np.empty(len(u), bool)
        for lo in range(0, len(u), 8192):
            sig = np.frombuffer(sig_map, dtype=np.uint32).reshape(n, k)
            ok[lo : lo + 8192] = (sig[u[lo : lo + 8192]] == sig[v[lo : lo + 8192]]).sum(axis=1) >= need
            del sig
            sig_map.madvise(mmap.MADV_DONTNEED)
        return ok

    # ---- the operator --------------------------------------------------------------------------
    def run(self, records: Iterable[Record]) -> Iterator[Record | Drop]:
        c = self.config
        work = self.context.workdir
        work.mkdir(parents=True, exist_ok=True)
        spool = ClusterSpool(work, c.keep, c.score_key)
        n = self._pass1(records, spool)
        roots = self._cluster(n, work)
        cluster_of, kept, members = spool.choose(roots)
        del roots
        kept_ids = spool.write_clusters(cluster_of, kept, members, c.clusters)
        index = MinHashIndex(c.index, self._index_params()) if c.index else None
        in_corpus = self._check_index(index, work, n) if index is not None else {}
        self.stats.update(records=n, clusters=len(kept), dropped=int(len(members) - len(kept)))
        self.stats.update(in_index=len(in_corpus))
        (work / "summary.json").write_bytes(
            orjson.dumps({**self.stats, "bands": self.bands, "rows": self.rows, "num_perm": self.config.num_perm})
        )
        outputs = spool.emit(
            cluster_of, kept, kept_ids, "near_dup_cluster", "near_duplicate_of", self.reason_text, in_corpus
        )
        new_rows, new_ids = [], []
        for i, item in enumerate(outputs):
            if c.update_index and isinstance(item, Record):
                new_rows.append(i)
                new_ids.append(item.id)
            yield item
        if index is not None and c.update_index and new_rows:
            sig = np.fromfile(work / "signatures.u32", dtype=np.uint32).reshape(n, c.num_perm)
            index.add(sig[np.asarray(new_rows)], new_ids)
            self.counters["added_to_index"] += len(new_rows)
        spool.cleanup("signatures.u32")

    def _index_params(self) -> dict:
        c = self.config
        return {
            "num_perm": c.num_perm,
            "bands": self.bands,
            "rows": self.rows,
            "ngram": c.ngram,
            "char_ngram": c.char_ngram,
            "cjk_ratio": c.cjk_ratio,
            "normalize": c.normalize,
            "hash_seed": c.hash_seed,
            "part": c.part,
        }

    def _check_index(self, index: MinHashIndex, work: Path, n: int) -> dict[int, str]:
        """Record number → id of the indexed record it near-duplicates, batch by batch."""
        if not n or not index.segments:
            return {}
        c = self.config
        need = math.ceil(c.threshold * c.num_perm - 1e-9)
        sig = np.memmap(work / "signatures.u32", dtype=np.uint32, mode="r", shape=(n, c.num_perm))
        found: dict[int, str] = {}
        for lo in range(0, n, c.batch_size):
            for j, hit in enumerate(index.query(np.asarray(sig[lo : lo + c.batch_size]), need)):
                if hit is not None:
                    found[lo + j] = hit
        self.counters["near_duplicates_of_index"] += len(found)
        return found
