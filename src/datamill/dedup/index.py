"""A persistent MinHash index: dedup a new batch against a corpus that was hashed before.

The index is a directory. ``params.json`` pins everything that changes a signature (num_perm, bands,
rows, shingle sizes, hash seed, part); each ``seg-NNNNNN/`` holds one batch of records that were
kept: their LSH band keys sorted (``keys.u64`` + ``rows.u32``, binary-searched), their signatures
(``signatures.u32``, checked to confirm a candidate) and ids (``ids.jsonl``). Adding a batch writes a
new segment (to a temporary name, then renamed), so the corpus is never re-hashed or rewritten, and a
killed run leaves no half segment behind.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from datamill.dedup import minhash as mh
from datamill.dedup.lookup import equal_keys
from datamill.errors import DatamillError

EMPTY = np.uint32(0xFFFFFFFF)  # the signature value of a record with no shingles


LATER_PARAMS = {"normalize": False}  # settings added after indexes were first written, at their old behaviour


class MinHashIndex:
    def __init__(self, path: str | Path, params: dict[str, Any]):
        self.path = Path(path)
        self.params = params
        spec = self.path / "params.json"
        if spec.exists():
            stored = {**LATER_PARAMS, **orjson.loads(spec.read_bytes())}  # an index from before a setting existed
            wrong = {k: (stored.get(k), v) for k, v in params.items() if stored.get(k) != v}
            if wrong:
                detail = ", ".join(f"{k}: index has {a!r}, step has {b!r}" for k, (a, b) in sorted(wrong.items()))
                raise DatamillError(f"{self.path}: this index was built with other settings ({detail})")
        self.segments = sorted(p for p in self.path.glob("seg-*") if p.is_dir()) if self.path.is_dir() else []

    @property
    def size(self) -> int:
        return sum(int(orjson.loads((s / "count.json").read_bytes())) for s in self.segments)

    def query(self, sig: np.ndarray, need: int) -> list[str | None]:
        """For each signature row, the id of one indexed record agreeing on ≥ ``need`` values, or None."""
        found: list[str | None] = [None] * len(sig)
        valid = np.flatnonzero(~(sig == EMPTY).all(axis=1))
        if not len(valid) or not self.segments:
            return found
        keys = mh.band_keys(sig[valid], self.params["bands"], self.params["rows"])
        for seg in self.segments:
            open_rows = np.flatnonzero([found[i] is None for i in valid])
            if not len(open_rows):
                break
            seg_keys = np.fromfile(seg / "keys.u64", dtype=np.uint64)
            seg_rows = np.fromfile(seg / "rows.u32", dtype=np.uint32)
            seg_sig = np.load(seg / "signatures.npy", mmap_mode="r")
            query, at = equal_keys(seg_keys, keys[open_rows].ravel())
            u = open_rows[query // keys.shape[1]]  # position in `valid`
            v = seg_rows[at].astype(np.int64)
            if not len(u):
                continue
            ok = (sig[valid[u]] == seg_sig[v]).sum(axis=1) >= need
            u, v = u[ok], v[ok]
            if not len(u):
                continue
            first = np.unique(u, return_index=True)[1]
            ids = _read_ids(seg / "ids.jsonl", set(v[first].tolist()))
            for i, j in zip(u[first], v[first], strict=True):
                found[int(valid[i])] = ids[int(j)]
        return found

    def add(self, sig: np.ndarray, ids: Sequence[str]) -> Path | None:
        """Append one segment with these records (those without shingles are left out)."""
        valid = np.flatnonzero(~(sig == EMPTY).all(axis=1))
        if not len(valid):
            return None
        self.path.mkdir(parents=True, exist_ok=True)
        spec = self.path / "params.json"
        if not spec.exists():
            spec.write_bytes(orjson.dumps(self.params, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
        number = 1 + max((int(s.name[4:]) for s in self.segments), default=0)
        final = self.path / f"seg-{number:06d}"
        tmp = self.path / f".tmp-seg-{number:06d}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        kept = np.ascontiguousarray(sig[valid])
        keys = mh.band_keys(kept, self.params["bands"], self.params["rows"])
        rows = np.repeat(np.arange(len(kept), dtype=np.uint32), keys.shape[1])
        order = np.argsort(keys.ravel(), kind="stable")
        keys.ravel()[order].tofile(tmp / "keys.u64")
        rows[order].tofile(tmp / "rows.u32")
        np.save(tmp / "signatures.npy", kept)
        with open(tmp / "ids.jsonl", "wb") as f:
            for i in valid:
                f.write(orjson.dumps(ids[int(i)]) + b"\n")
        (tmp / "count.json").write_bytes(orjson.dumps(len(kept)))
        tmp.rename(final)
        self.segments.append(final)
        return final


def _read_ids(path: Path, wanted: set[int]) -> dict[int, str]:
    out: dict[int, str] = {}
    with open(path, "rb") as f:
        for i, line in enumerate(f):
            if i in wanted:
                out[i] = orjson.loads(line)
    return out
