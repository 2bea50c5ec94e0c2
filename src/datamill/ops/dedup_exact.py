"""exact_dedup: drop records whose normalized text was already seen (the first one is kept).
The seen-hashes live in SQLite in the step's work directory, not in RAM, so it scales past memory."""

from __future__ import annotations

import hashlib
import re
import sqlite3
import string
import unicodedata
from collections.abc import Iterable, Iterator
from typing import Literal

from datamill.ops import register
from datamill.ops.base import Drop, Global, OpConfig
from datamill.record import Record

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
    """Keep the first record of each group whose ``part`` is identical after normalization."""

    name = "exact_dedup"

    class Config(OpConfig):
        part: Literal["all", "prompt", "answer", "text"] = "all"
        lowercase: bool = True
        whitespace: bool = True
        punctuation: bool = False
        width: bool = True

    def key(self, record: Record) -> bytes:
        c = self.config
        text = normalize(record.part(c.part), c.lowercase, c.whitespace, c.punctuation, c.width)
        return hashlib.blake2b(text.encode(), digest_size=16).digest()

    def run(self, records: Iterable[Record]) -> Iterator[Record | Drop]:
        self.context.workdir.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.context.workdir / "seen.sqlite")
        try:
            db.execute("PRAGMA journal_mode=OFF")
            db.execute("PRAGMA synchronous=OFF")
            db.execute("DROP TABLE IF EXISTS seen")
            db.execute("CREATE TABLE seen (h BLOB PRIMARY KEY, id TEXT) WITHOUT ROWID")
            for rec in records:
                h = self.key(rec)
                cur = db.execute("INSERT OR IGNORE INTO seen VALUES (?, ?)", (h, rec.id))
                if cur.rowcount:
                    yield rec
                else:
                    (first,) = db.execute("SELECT id FROM seen WHERE h = ?", (h,)).fetchone()
                    rec.meta["duplicate_of"] = first
                    yield Drop(rec, f"exact duplicate ({self.config.part})")
        finally:
            db.close()
