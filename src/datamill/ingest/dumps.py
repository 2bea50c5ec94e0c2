"""What the dump readers (Stack Exchange, Reddit) share: their options checked by name, a quarantine
entry naming the file and line, and a throwaway SQLite file to join rows that a dump keeps apart
(answers from their questions, comments from their submissions) — memory stays flat whatever the
dump's size, as in ``datamill.dedup``."""

from __future__ import annotations

import dataclasses
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from datamill.dataset import Quarantined
from datamill.io.rows import max_record_bytes, too_large
from datamill.record import Record

T = TypeVar("T")


def line_where(rec: Record) -> str:
    """Where a dump's record came from, ``file:line`` (the Stack Exchange and Reddit readers' ``where``)."""
    return f"{rec.meta['source']}:{rec.meta['line']}"


def options(cls: type[T], given: dict[str, Any], reader: str) -> T:
    """``cls(**given)``, with an unknown name reported with the names there are (not as a TypeError)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(given) - set(fields))
    if unknown:
        raise ValueError(f"{reader} reader: unknown option(s) {', '.join(unknown)}; it takes {', '.join(fields)}")
    made = cls(**given)
    for name, value in given.items():  # a value of the default's type (an int is no bool, a bool no int)
        default = getattr(cls(), name)
        kind = type(default)
        if default is not None and (not isinstance(value, kind) or isinstance(value, bool) != (kind is bool)):
            article = "an" if kind.__name__[0] in "aeiou" else "a"
            raise ValueError(f"{reader} reader: option {name} takes {article} {kind.__name__}, not {value!r}")
    return made


def bad_row(
    file: str, line: int | None, index: int, error: str, raw: Any = None, offset: int | None = None
) -> Quarantined:
    """A row (or the rest of a file) that cannot be read, at ``file:line`` (or ``file@offset``)."""
    where = f"{file}:{line}" if line is not None else f"{file}@{offset or 0}"
    return Quarantined(where, file, line, index, f"{where}: {error}", raw, stage="read")


@dataclass
class Line:
    number: int  # 1-based
    offset: int  # byte offset of the line in the (uncompressed) stream
    data: bytes | None  # None: longer than DATAMILL_MAX_RECORD_BYTES, not kept
    error: str | None = None


def lines(chunks: Iterable[bytes], first: int = 1, offset: int = 0) -> Iterator[Line]:
    """The lines of a stream of byte chunks, without their newlines, numbered from ``first``; a line past
    the record size limit is skipped (reported as such), never held whole."""
    limit = max_record_bytes()
    buf, pos, number, skipping = b"", 0, first, False
    for chunk in chunks:
        buf, offset, pos = buf[pos:] + chunk, offset + pos, 0
        while (nl := buf.find(b"\n", pos)) >= 0:
            if skipping:
                skipping = False
            else:
                yield Line(number, offset + pos, buf[pos:nl])
            number, pos = number + 1, nl + 1
        if len(buf) - pos > limit:
            if not skipping:
                yield Line(number, offset + pos, None, too_large(len(buf) - pos, limit))
            skipping = True
            offset, buf, pos = offset + len(buf), b"", 0
    if buf[pos:].strip() and not skipping:
        yield Line(number, offset + pos, buf[pos:])


@contextmanager
def spill(workdir: str | Path | None = None) -> Iterator[sqlite3.Connection]:
    """A SQLite database in a temporary folder (under ``workdir``, else the system's), gone afterwards."""
    with tempfile.TemporaryDirectory(prefix="datamill-dump-", dir=workdir) as d:
        db = sqlite3.connect(Path(d) / "spill.sqlite")
        try:
            db.execute("PRAGMA journal_mode=OFF")
            db.execute("PRAGMA synchronous=OFF")
            yield db
        finally:
            db.close()
