"""Read the records of a top-level JSON array in pieces, keeping every intact record when the file is
cut short or damaged: orjson parses the intact stretches, a bracket scanner delimits records where
that fails, and reading resynchronizes at the next record after the damage. ijson stops at the first
error, which loses every record after it — hence this reader."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from datamill.errors import FileError
from datamill.io.rows import UTF8, RawRow, stream_damage, too_large

# A string (escapes included) or one structural byte; a lone '"' is a string the buffer cuts short.
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|["\[\]{}]', re.S)
_SCALAR = re.compile(rb"[^,\]}\s]*")
SPACE = re.compile(rb"[ \t\r\n]*")
KEY_SAMPLE = 100  # records whose keys tell a record's start from a nested object when resynchronizing


class JsonArrayReader:
    """The records of a top-level JSON array, read in pieces of ``piece`` bytes (``head`` is the first).

    A whole file within the record size limit is parsed by orjson in one call; otherwise intact
    stretches are parsed many records at a time, and where that fails records are delimited one by
    one by matching brackets outside strings. A record that does not parse, is over the size
    limit, or is followed by bytes that are neither ',' nor ']' (damage between records is charged
    to the record before it) becomes one error row, and reading resumes at the next '{' that starts
    a record like those seen before (the same indentation, a key in common, followed by ',' or ']').
    A file that ends before its ']' charges the cut to its last record, complete or not. So the
    result does not depend on the piece size. Positions are absolute offsets into the stream:
    ``buf`` holds the bytes from ``base`` on, and ``keep`` arguments say what must stay in it."""

    def __init__(self, path: Path, stream: Any, head: bytes, limit: int, enc: str, piece: int):
        self.path, self.stream, self.limit, self.enc, self.piece = path, stream, limit, enc, piece
        self.buf, self.base, self.line0 = head, 0, 1  # line0: the line number of buf[0]
        self.eof = len(head) < piece
        self.index = 0
        self.keys: set[str] = set()
        self.seen = 0  # records whose keys are in ``keys``
        self.lead = b""  # the whitespace before a record's '{'
        self.gap: bytes | None = None  # the bytes between two records, once known

    # ---- the buffer --------------------------------------------------------------------------
    def _more(self, keep: int) -> bool:
        """Read the next piece, dropping what lies before ``keep``; False at the end of the stream."""
        if self.eof:
            return False
        piece = min(self.piece, 8 << 20)  # after the first, smaller pieces: less to copy per read
        data = self.stream.read(piece)
        self.eof = len(data) < piece
        if keep > self.base:
            self.line0 += self.buf.count(b"\n", 0, keep - self.base)
            self.buf = self.buf[keep - self.base :]
            self.base = keep
        self.buf += data
        return bool(data)

    def _end(self) -> int:
        return self.base + len(self.buf)

    def _space(self, pos: int, keep: int) -> int:
        """The first position at or after ``pos`` that is not whitespace (``_end()`` at the end)."""
        while True:
            pos = SPACE.match(self.buf, pos - self.base).end() + self.base
            if pos < self._end() or not self._more(keep):
                return pos

    def _byte(self, pos: int) -> bytes:
        return self.buf[pos - self.base : pos - self.base + 1]

    def _line(self, pos: int) -> int:
        return self.line0 + self.buf.count(b"\n", 0, max(pos - self.base, 0))

    # ---- one value ---------------------------------------------------------------------------
    def _value_end(self, start: int, keep: int, skip: bool = True) -> tuple[int | None, int]:
        """(end of the value at ``start``, or None if the stream ends first; its size). A value over
        the limit is skipped in pieces (its end is found, its bytes are not kept), or with ``skip``
        False given up on."""
        if self._byte(start) not in (b"{", b"[", b'"'):
            while True:
                end = max(_SCALAR.match(self.buf, start - self.base).end() + self.base, start + 1)
                if end < self._end() or not self._more(keep):
                    return end, end - start
        depth, pos = 0, start
        while True:
            for m in _TOKEN.finditer(self.buf, pos - self.base):
                token = m.group()
                if token == b'"':
                    pos = m.start() + self.base
                    break  # a string the buffer cuts short
                pos = m.end() + self.base
                if token in (b"{", b"["):
                    depth += 1
                elif token in (b"}", b"]"):
                    depth -= 1
                if depth <= 0:
                    return pos, pos - start
            else:
                pos = self._end()
            if pos - start > self.limit:
                if not skip:
                    return None, pos - start
                keep = pos  # too large: stop keeping its bytes
            if not self._more(keep):
                return None, self._end() - start

    def _parse(self, start: int, end: int) -> Any:
        return orjson.loads(self.buf[start - self.base : end - self.base])

    # ---- rows --------------------------------------------------------------------------------
    def rows(self) -> Iterator[RawRow]:
        if self.eof and len(self.buf) <= self.limit:
            try:
                values = orjson.loads(self.buf)
            except orjson.JSONDecodeError:
                pass  # damaged: record by record below
            else:
                yield from self._goods(values)
                return
        pos = self._space(0, 0) + 1  # just after '['
        first = self._space(pos, pos)
        self.lead = self.buf[pos - self.base : first - self.base]
        if self._byte(first) == b"]":
            yield from self._close(first, None)
            return
        pos: int | None = first
        while pos is not None:
            if self.gap is not None:
                found, pos = self._batch(pos)
                yield from found
            pos = yield from self._one(pos)

    def _batch(self, start: int) -> tuple[list[RawRow], int]:
        """The intact records already in the buffer, many per orjson call, in stretches within the size
        limit, and where the first record it leaves starts."""
        boundary, found = b"}" + self.gap + b"{", []
        while True:
            lo = start - self.base
            cut = self.buf.rfind(boundary, lo, lo + self.limit)
            try:
                values = orjson.loads(b"[" + self.buf[lo : cut + 1] + b"]") if cut >= 0 else None
            except orjson.JSONDecodeError as e:
                # the records wholly before the error are intact (e.pos counts characters: at most bytes)
                cut = self.buf.rfind(boundary, lo, lo + max(e.pos - 1, 0))
                try:
                    values = orjson.loads(b"[" + self.buf[lo : cut + 1] + b"]") if cut >= 0 else None
                except orjson.JSONDecodeError:
                    values = None
            if values is None:
                return found, start
            found += self._goods(values)
            start = self.base + cut + 1 + len(self.gap)

    def _goods(self, values: list[Any]) -> list[RawRow]:
        """Rows for intact values, in bulk (the hot loop of reading a large array)."""
        i, prefix = self.index, f"{self.path}[#"
        self.index += len(values)
        if self.seen < KEY_SAMPLE:
            for value in values[: KEY_SAMPLE - self.seen]:
                if isinstance(value, dict):
                    self.keys.update(value)
            self.seen += min(len(values), KEY_SAMPLE - self.seen)
        rows = [RawRow(f"{prefix}{n}]", None, n, v) for n, v in enumerate(values, i)]
        for row in rows:
            if not isinstance(row.row, dict):
                row.row, row.error, row.raw = None, f"expected a JSON object, got {type(row.row).__name__}", row.row
        return rows

    def _good(self, value: Any) -> RawRow:
        return self._goods([value])[0]

    def _bad(self, start: int, end: int, problem: str) -> RawRow:
        """An error row for the bytes from ``start`` to ``end`` (its text kept unless too large or gone)."""
        i, self.index = self.index, self.index + 1
        line = self._line(start)
        offset = f", byte {start:,}" if self.enc in UTF8 else ""
        damage = stream_damage(self.stream)
        if damage is not None and end >= self._end():
            problem = f"{problem}; {damage}"
        raw = None
        if start >= self.base and end - start <= self.limit:
            raw = self.buf[start - self.base : end - self.base].decode("utf-8", "replace")
        return RawRow(f"{self.path}[#{i}]", line, i, None, f"{problem} (record from line {line}{offset})", raw)

    def _one(self, start: int) -> Iterator[RawRow]:
        """The record at ``start`` and what follows it; returns where the next record starts, or None."""
        end, size = self._value_end(start, start)
        if end is None:
            return (yield from self._resync(start, start + 1, "the file ends inside this record (cut short?)"))
        if size > self.limit:
            yield self._bad(start, end, too_large(size, self.limit))
            return (yield from self._after(start, end, None))
        try:
            value = self._parse(start, end)
        except orjson.JSONDecodeError as e:
            problem = f"bytes that are not valid {self.enc}" if "UTF-8" in e.msg else f"invalid JSON: {e.msg}"
            return (yield from self._resync(start, start + 1, problem))
        return (yield from self._after(start, end, value))

    def _after(self, start: int, end: int, value: Any) -> Iterator[RawRow]:
        """Let the record out once what follows it is right; ``value`` None: it is reported already."""
        sep = self._space(end, start)
        byte = self._byte(sep)
        if byte == b",":
            nxt = self._space(sep + 1, start)
            following = self._byte(nxt)
            stray = self._stray(nxt, sep + 1, start) if value is not None and following not in (b"", b"]") else None
            if stray is not None:  # a few bytes damaged before the next record: charged to this one
                yield self._bad(start, stray, f"the record is followed by stray bytes {following!r}")
                return stray
            if following not in (b"", b"]"):
                if self.gap is None and value is not None:
                    self.gap = self.buf[end - self.base : nxt - self.base]
                    self.lead = self.buf[sep + 1 - self.base : nxt - self.base]
                if value is not None:
                    yield self._good(value)
                return nxt
            problem = "the record is followed by ',' and then the end of the array (damaged file?)"
            if not following:
                problem = "the file ends after this record, before the array is closed (cut short?)"
        elif byte == b"]":
            return (yield from self._close(sep, (start, end, value)))
        elif not byte:
            problem = "the file ends after this record, before the array is closed (cut short?)"
        else:
            problem = f"the record is followed by {byte!r}, not ',' or ']' (damaged file?)"
        if value is not None:
            yield self._bad(start, end, problem)
        return (yield from self._resync(sep, sep + 1, None)) if byte else None

    def _stray(self, pos: int, after: int, keep: int) -> int | None:
        """If the bytes from ``after`` (just past a ',') to ``pos`` (what follows) are not what comes
        before a record, and a record starts within a few bytes, where it does. Once the whitespace
        before records is known, a record behind it is taken as it is (nothing to parse twice)."""
        if self._byte(pos) == b"{" and (
            self.buf[after - self.base : pos - self.base] == self.lead or self._record_starts(pos, keep, False)
        ):
            return None
        at = self.buf.find(b"{", pos + 1 - self.base, pos + 1 - self.base + 16)
        if at < 0:
            return None
        at += self.base
        return at if self._record_starts(at, keep, False) else None

    def _close(self, bracket: int, last: tuple | None) -> Iterator[RawRow]:
        after = self._space(bracket + 1, bracket if last is None else last[0])
        trailing = after < self._end()
        if last is None:
            if trailing:
                raise FileError(f"{self.path}: unexpected data after the JSON array at line {self._line(after)}")
            return None
        start, end, value = last
        if value is not None and trailing:
            yield self._bad(start, end, "the array is followed by more data (damaged file?)")
        elif value is not None:
            yield self._good(value)
        return None

    def _resync(self, start: int, search: int, problem: str | None) -> Iterator[RawRow]:
        """After damage at ``start``: the bytes up to the next record's start become one error row
        (unless ``problem`` is None: reported already). Returns that start, or None at the end.
        A record start is looked for where records start (after the whitespace before them), then,
        if there is none, at any '{' (damage may have hit that whitespace too)."""
        first = search
        for pattern in (re.compile(re.escape(self.lead) + rb"\{"), re.compile(rb"\{")):
            strict, search, keep = pattern.pattern != rb"\{", first, start
            while True:
                base, buf = self.base, self.buf
                for m in pattern.finditer(buf, max(search - base, 0)):
                    candidate = base + m.end() - 1
                    if self._record_starts(candidate, keep, strict):
                        if problem is not None:
                            yield self._bad(start, candidate, problem)
                        return candidate
                search = max(search, base + len(buf) - len(self.lead))
                if self._end() > base + len(buf):
                    continue  # the buffer grew while a candidate was tried: look at the new part too
                if search - start > self.limit:
                    keep = search
                if not self._more(keep):
                    break
            if keep > start:
                break  # too far to look again
        if problem is not None:
            yield self._bad(start, self._end(), problem)
        return None

    def _record_starts(self, pos: int, keep: int, strict: bool = True) -> bool:
        """Whether a record like those seen so far starts at ``pos``, followed by ',' or ']' (or by the
        end of the file, which is then the cut's to report, not the damage's before it). In an indented
        file a '{' at a line start, as indented as records are, starts one even if it is damaged too
        (a line break is never inside a JSON string) — as long as it spans no boundary between records;
        ``strict`` False: ``pos`` is any '{', which must hold a record that parses."""
        end, size = self._value_end(pos, keep, skip=False)
        if size > self.limit:
            return False
        boundary = b"}" + self.gap + b"{" if self.gap else b"," + self.lead + b"{"
        indented = b"\n" in boundary
        if end is None:  # any '{' of a cut record would do: off the line start, only just after a '},'
            near = strict or b"}," in self.buf[max(pos - self.base - 8, 0) : pos - self.base]
            return indented and near and self.buf.find(boundary, pos - self.base) < 0
        after = self._byte(self._space(end, keep))
        if after not in (b",", b"]", b""):
            return False
        try:
            value = self._parse(pos, end)
        except orjson.JSONDecodeError:
            return strict and indented and self.buf.find(boundary, pos - self.base, end - self.base) < 0
        return isinstance(value, dict) and (not self.keys or bool(self.keys.intersection(value)))
