"""``chunk_text``: cut each ``text`` document into chunks (one record in, N out) at headings,
paragraphs and sentence ends — see ``datamill.ingest.chunking``. A global op because it makes
records: the first chunk takes the document's place, the others count as generated."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Literal

from pydantic import Field, model_validator

from datamill.ingest.chunking import chunk_record
from datamill.ops import register
from datamill.ops.base import Global, OpConfig
from datamill.record import Record
from datamill.results import Drop, Generated


@register
class ChunkText(Global):
    """Split pretraining documents into chunks of ``size`` tokens (CJK-aware estimate) or chars.

    Chunks break at headings and paragraphs first, then at sentence ends (zh and en); ``overlap``
    repeats whole trailing sentences. Each chunk keeps the document's meta plus ``chunk`` (index,
    count, offsets) and ``parent_id``. Conversations pass through unchanged."""

    name = "chunk_text"

    class Config(OpConfig):
        size: int = Field(default=512, ge=16)
        overlap: int = Field(default=0, ge=0)
        unit: Literal["tokens", "chars"] = "tokens"

        @model_validator(mode="after")
        def _check(self) -> ChunkText.Config:
            if self.overlap >= self.size:
                raise ValueError("overlap must be smaller than size")
            return self

    def run(self, records: Iterable[Record]) -> Iterator[Record | Drop | Generated]:
        cfg = self.config
        for rec in records:
            if rec.text is None:
                yield rec
                continue
            parts = chunk_record(rec, cfg.size, cfg.overlap, cfg.unit)
            if not parts:
                yield Drop(rec, "no text to chunk")
                continue
            self.counters["documents_chunked"] += 1
            yield parts[0]
            for p in parts[1:]:
                yield Generated(p)
