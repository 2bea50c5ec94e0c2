"""Byte ranges of a JSON Lines file holding a given number of rows, so each worker of a run reads and
parses its own part of the input and the planning process only counts line breaks.

``Spans(path).take(n)`` returns the next ``Span``: where it starts and ends, how many lines and rows come
before it (a row is a non-blank line, as the reader counts them), and how many rows it holds.
``span_rows`` reads one back as the reader's own rows, numbered as if the whole file had been read.
Only a plain (not compressed) UTF-8 file can be read this way (``spannable``). The planner moves at
``bytes.count`` speed over blocks where every line opens with ``{`` (so none is blank) and goes line by
line only through a block with some other line, and up to the cut inside the block where a span ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from datamill.io.readers import _jsonl_parse, container_of
from datamill.io.rows import UTF8, RawRow, max_record_bytes

BLOCK = 8 << 20
SPACE = b" \t\n\r\x0b\x0c"  # what bytes.strip() removes: a line of only these is blank


@dataclass(frozen=True, slots=True)
class Span:
    start: int  # byte offset of its first line
    end: int  # byte offset just past its last line
    after_line: int  # lines of the file before it
    index: int  # rows of the file before it
    rows: int


def spannable(path: Path, encoding: str) -> bool:
    """Whether ``path`` can be read in byte ranges: uncompressed JSON Lines in a UTF-8 encoding."""
    return container_of(path) == "jsonl" and path.suffix.lower() != ".gz" and encoding in UTF8


class Spans:
    """Consecutive spans of a file, each cut after the requested number of rows (fewer at its end)."""

    def __init__(self, path: Path, encoding: str = "utf-8"):
        self.encoding = encoding  # the file's (one of UTF8): what its spans are read back in
        self.f: IO[bytes] = open(path, "rb")  # noqa: SIM115 - closed by take() at the end of the file
        self.limit = max_record_bytes()
        self.buf, self.off = b"", 0  # unread bytes start at buf[off], at the start of a line
        self.pos = self.line = self.index = 0

    def take(self, n: int) -> Span | None:
        start, after_line, index = self.pos, self.line, self.index
        while self.index - index < n and self._fill():
            buf, off = self.buf, self.off
            end = buf.rfind(b"\n", off) + 1 or len(buf)  # whole lines (the file's last may lack its break)
            want = n - (self.index - index)
            stop, breaks = self._after_line(off, end, want)  # the lines that can hold the rows still wanted
            lines = breaks + (buf[stop - 1] != 10)
            if (buf[off] == 123) + buf.count(b"\n{", off, stop) == lines:  # every line opens with "{": a row
                taken, rows = stop - off, lines
            else:
                taken, lines, rows = self._cut(off, end, want)
            self.off += taken
            self.pos, self.line, self.index = self.pos + taken, self.line + lines, self.index + rows
        if self.index == index:
            self.f.close()
            return None
        return Span(start, self.pos, after_line, index, self.index - index)

    def _fill(self) -> bool:
        """Make the unread bytes hold a whole line (or the file's last one); False at the end of the file."""
        if self.buf.find(b"\n", self.off) >= 0:
            return True
        parts = [self.buf[self.off :]]
        while b"\n" not in parts[-1] and (block := self.f.read(BLOCK)):
            parts.append(block)
        self.buf, self.off = b"".join(parts), 0
        return bool(self.buf)

    def _after_line(self, off: int, end: int, k: int) -> tuple[int, int]:
        """The offset just past the ``k``-th line break from ``off`` and ``k`` — or ``end`` and the breaks
        before it when fewer come: a window that doubles until it holds ``k``, then bisection; each byte is
        counted about twice (``bytes.count``, memchr speed)."""
        count = self.buf.count
        lo, hi, below = off, min(end, off + 64 * k), 0  # below: breaks in [off, lo)
        while (here := count(b"\n", lo, hi)) + below < k:
            if hi >= end:
                return end, below + here
            lo, below, hi = hi, below + here, min(end, off + 2 * (hi - off))
        while hi - lo > 1:  # below < k <= below + breaks in [lo, hi)
            mid = (lo + hi) // 2
            here = count(b"\n", lo, mid)
            if below + here < k:
                lo, below = mid, below + here
            else:
                hi = mid
        return hi, k

    def _cut(self, off: int, end: int, want: int) -> tuple[int, int, int]:
        """Bytes, lines and rows from ``off`` up to and including the ``want``-th row before ``end`` (all of
        it if it holds fewer), line by line: a line of only whitespace is no row unless it is over the size
        limit (the reader quarantines those)."""
        buf, p, lines, rows = self.buf, off, 0, 0
        while p < end and rows < want:
            e = buf.find(b"\n", p, end)
            e = end if e < 0 else e + 1
            lines += 1
            if buf[p:e].strip(SPACE) or e - p - (buf[e - 1] == 10) > self.limit:
                rows += 1
            p = e
        return p - off, lines, rows


def span_rows(path: Path, encoding: str, span: Span) -> Iterator[RawRow]:
    """The rows of one span, as ``iter_rows`` yields them for the whole file."""
    with open(path, "rb") as f:
        f.seek(span.start)
        yield from _jsonl_parse(
            str(path),
            _Bounded(f, span.end - span.start),
            encoding,
            max_record_bytes(),
            False,
            span.after_line,
            span.index,
        )


class _Bounded:
    """The next ``size`` bytes of ``f`` as a stream of their own."""

    def __init__(self, f: IO[bytes], size: int):
        self.f, self.left = f, size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        data = self.f.read(n) if n else b""
        self.left -= len(data)
        return data
