"""One embedding per record for a global step (``select``, ``semantic_dedup``), computed on every core.

Embedding is the costly part of those steps; only the choice (k-center, clustering) needs the whole
stream. So the workers of the chunk stage just before the step embed their chunk (``precompute``,
see ``datamill.ops.base.Global``) into a vectors file, and the step's ``run`` only copies those
files, in chunk order, into its own embeddings file. Without a chunk stage before it (a global step
right after another) the step embeds the stream itself, batch by batch, with the same texts.

A vectors file: ``n`` and ``dim`` (uint32 each), one byte per record (1 = it has a vector: its text
is not empty), then the vectors of those records (float32, L2-normalised, ``dim`` wide).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from datamill.errors import DatamillError
from datamill.io.atomic import open_atomic
from datamill.llm.embeddings import LOCAL_MODEL, EmbedConfig, get_embedder
from datamill.record import Record


def embed_rows(embedder, texts: list[str], dim: int = 0, who: str = "semantic_dedup") -> np.ndarray:
    """One L2-normalised float32 row per text (whatever the backend did), checked to be ``dim`` wide
    when ``dim`` is known: a misbehaving endpoint fails here, not as nonsense similarities."""
    vectors = np.asarray(embedder.embed(texts), dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) != len(texts) or (dim and vectors.shape[1] != dim):
        raise DatamillError(f"{who}: the embedder returned {vectors.shape} for {len(texts)} texts")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def write_vectors(path: Path, has: np.ndarray, vectors: np.ndarray) -> None:
    """A chunk's vectors file (see the module's docstring), written whole or not at all."""
    dim = vectors.shape[1] if vectors.ndim == 2 and len(vectors) else 0
    with open_atomic(path) as f:
        f.write(np.array([len(has), dim], dtype=np.uint32).tobytes())
        f.write(has.astype(np.uint8).tobytes())
        f.write(np.ascontiguousarray(vectors, dtype=np.float32).tobytes())


def read_vectors(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(has, vectors)`` of a chunk's vectors file."""
    data = path.read_bytes()
    n, dim = np.frombuffer(data[:8], dtype=np.uint32)
    has = np.frombuffer(data, dtype=np.uint8, count=int(n), offset=8).astype(bool)
    vectors = np.frombuffer(data, dtype=np.float32, offset=8 + int(n)).reshape(-1, int(dim) or 1)
    if len(vectors) != int(has.sum()) or (not dim and len(vectors)):
        raise DatamillError(f"{path}: {len(vectors)} vectors for {int(has.sum())} records with text")
    return has, vectors


class EmbedsRecords:
    """What a global step that embeds one text per record has in common: the text (``record_text``,
    empty = no vector), the embedder (``config.embed``, loaded once), the workers' ``precompute`` and
    ``embed_stream``, which hands the records on in order while their vectors go to a file."""

    name: str
    config: object  # with .embed (EmbedConfig) and .batch_size
    precomputed: list[Path] | None
    counters: dict[str, int]
    embedder = None
    dim = 0

    def record_text(self, rec: Record) -> str:
        raise NotImplementedError

    @property
    def embedder_name(self) -> str:
        embed: EmbedConfig = self.config.embed  # type: ignore[attr-defined]
        return LOCAL_MODEL if embed.backend == "local" else embed.model

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        if self.embedder is None:
            embed: EmbedConfig = self.config.embed  # type: ignore[attr-defined]
            self.embedder = get_embedder(embed)
        vectors = embed_rows(self.embedder, texts, self.dim, who=self.name)
        self.dim = vectors.shape[1]
        return vectors

    def _embed_nonempty(self, texts: list[str]) -> np.ndarray:
        texts = [t for t in texts if t]
        return self.embed_texts(texts) if texts else np.zeros((0, self.dim or 1), np.float32)

    def precompute(self, records: list[Record], path: Path) -> None:
        """A chunk's vectors, embedded by a worker of the stage before the step."""
        size: int = self.config.batch_size  # type: ignore[attr-defined]
        texts = [self.record_text(rec) for rec in records]
        parts = [self._embed_nonempty(texts[lo : lo + size]) for lo in range(0, len(texts), size)]
        vectors = np.concatenate(parts) if parts else np.zeros((0, 1), np.float32)
        write_vectors(path, np.array([bool(t) for t in texts], dtype=bool), vectors)

    def embed_stream(self, records: Iterable[Record], out: BinaryIO) -> Iterator[tuple[Record, bool]]:
        """Each record with whether it has a vector; the vectors are in ``out``, in the records' order,
        once the stream is through."""
        if self.precomputed is not None:
            yield from self._from_workers(records, out)
            return
        size: int = self.config.batch_size  # type: ignore[attr-defined]
        texts: list[str] = []
        for rec in records:
            text = self.record_text(rec)
            texts.append(text)
            if len(texts) >= size:
                out.write(self._embed_nonempty(texts).tobytes())
                texts.clear()
            yield rec, bool(text)
        out.write(self._embed_nonempty(texts).tobytes())

    def _from_workers(self, records: Iterable[Record], out: BinaryIO) -> Iterator[tuple[Record, bool]]:
        def flags() -> Iterator[bool]:  # a chunk's vectors go to ``out`` when its first record is reached
            for path in self.precomputed or ():
                has, vectors = read_vectors(path)
                if len(vectors):
                    if self.dim and vectors.shape[1] != self.dim:
                        raise DatamillError(f"{path}: vectors {vectors.shape[1]} wide, not {self.dim}")
                    self.dim = vectors.shape[1]
                    out.write(vectors.tobytes())
                yield from has.tolist()

        yield from self.with_precomputed(records, flags(), "embedded_by_workers")  # type: ignore[attr-defined]
