"""exact_dedup: drop records whose normalized text (or a meta value: ``field``) was already seen.
``keep: first`` streams in one pass; ``longest`` / ``score`` (best record of each group) spool the
stream and read it twice. The hashes live in SQLite in the step's work directory, not in RAM, so it
scales past memory."""

from __future__ import annotations

import hashlib
import re
import sqlite3
import string
import unicodedata
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

import orjson

from datamill.dedup.clusters import meta_number
from datamill.io.atomic import write_bytes_atomic
from datamill.ops import register
from datamill.ops.base import Global, OpConfig
from datamill.record import Record
from datamill.results import Drop

SPACES = re.compile(r"\s+")
PUNCT = str.maketrans("", "", string.punctuation + "，。！？；：、“”‘’（）《》【】…—·")


def normalize(text: str, lowercase: bool, whitespace: bool, punctuation: bool, width: bool) -> str:
    if width:
        text = unicodedata.normalize("NFKC", text)  # full-width → half-width, compatibility forms
    if lowercase:
        text = text.lower()
    if punctuation:
        text = text.translate(PUNCT)
    if whitespace:
        text = SPACES.sub(" ", text).strip()
    return text


@register
class ExactDedup(Global):
    """Keep one record (first, longest or best-scored) of each group whose text is identical after normalization."""

    name = "exact_dedup"

    class Config(OpConfig):
        part: Literal["all", "prompt", "answer", "text"] = "all"
        lowercase: bool = True
        whitespace: bool = True
        punctuation: bool = False
        width: bool = True
        keep: Literal["first", "longest", "score"] = "first"
        score_key: str = "quality_score"  # meta key read when keep = score (higher is better; dotted path ok)
        field: str | None = None  # compare this meta value instead (e.g. url_normalized); records without it by text

    def key(self, record: Record) -> bytes:
        c = self.config
        value = record.meta.get(c.field) if c.field else None
        if isinstance(value, str | int) and not isinstance(value, bool):
            return hashlib.blake2b(f"{c.field}\0{value}".encode(), digest_size=16).digest()
        text = normalize(record.part(c.part), c.lowercase, c.whitespace, c.punctuation, c.width)
        return hashlib.blake2b(text.encode(), digest_size=16).digest()

    def precompute(self, records: list[Record], path: Path) -> None:
        """A chunk's keys (16 bytes each, in order), computed by a worker of the stage before (see
        ``Global``): the normalizing and hashing run on every core, the lookups here."""
        write_bytes_atomic(path, b"".join(map(self.key, records)))

    def _keys(self, records: Iterable[Record]) -> Iterator[tuple[Record, bytes]]:
        """Each record with its key: the workers' when they computed them, else computed here."""
        if self.precomputed is None:
            for rec in records:
                yield rec, self.key(rec)
            return

        def stored() -> Iterator[bytes]:
            for path in self.precomputed or ():
                data = path.read_bytes()
                yield from (data[i : i + 16] for i in range(0, len(data), 16))

        yield from self.with_precomputed(records, stored(), "keys_from_workers")

    def _value(self, rec: Record) -> float:
        if self.config.keep == "longest":
            return float(len(rec.part(self.config.part)))
        return meta_number(rec.meta, self.config.score_key)

    def run(self, records: Iterable[Record]) -> Iterator[Record | Drop]:
        self.context.workdir.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.context.workdir / "seen.sqlite")
        try:
            db.execute("PRAGMA journal_mode=OFF")
            db.execute("PRAGMA synchronous=OFF")
            db.execute("DROP TABLE IF EXISTS seen")
            db.execute("CREATE TABLE seen (h BLOB PRIMARY KEY, id TEXT, i INTEGER, v REAL) WITHOUT ROWID")
            if self.config.keep == "first":
                yield from self._keep_first(db, records)
            else:
                yield from self._keep_best(db, records)
        finally:
            db.close()

    def _drop(self, rec: Record, kept_id: str) -> Drop:
        rec.meta["duplicate_of"] = kept_id
        field = self.config.field
        return Drop(rec, f"exact duplicate ({field if field and field in rec.meta else self.config.part})")

    def _keep_first(self, db: sqlite3.Connection, records: Iterable[Record]) -> Iterator[Record | Drop]:
        for rec, h in self._keys(records):
            cur = db.execute("INSERT OR IGNORE INTO seen VALUES (?, ?, 0, 0)", (h, rec.id))
            if cur.rowcount:
                yield rec
            else:
                (first,) = db.execute("SELECT id FROM seen WHERE h = ?", (h,)).fetchone()
                yield self._drop(rec, first)

    def _keep_best(self, db: sqlite3.Connection, records: Iterable[Record]) -> Iterator[Record | Drop]:
        """Pass 1 spools records and keeps the best (highest value, then earliest) index per hash;
        pass 2 yields every record once, in input order."""
        spool_path = self.context.workdir / "spool.jsonl"
        upsert = (
            "INSERT INTO seen VALUES (?, ?, ?, ?) ON CONFLICT(h) DO UPDATE SET id = excluded.id, i = excluded.i, "
            "v = excluded.v WHERE excluded.v > seen.v"
        )
        keys_path = self.context.workdir / "keys.bin"  # each record's key, for pass 2
        with open(spool_path, "wb") as spool, open(keys_path, "wb") as keys:
            for i, (rec, h) in enumerate(self._keys(records)):
                spool.write(orjson.dumps(rec.to_dict()) + b"\n")
                keys.write(h)
                db.execute(upsert, (h, rec.id, i, self._value(rec)))
        with open(spool_path, "rb") as spool, open(keys_path, "rb") as keys:
            for i, line in enumerate(spool):
                rec = Record.from_dict(orjson.loads(line))
                best_id, best = db.execute("SELECT id, i FROM seen WHERE h = ?", (keys.read(16),)).fetchone()
                yield rec if best == i else self._drop(rec, best_id)
        spool_path.unlink()
        keys_path.unlink()
