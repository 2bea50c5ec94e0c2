"""What every document reader shares: a ``Section`` (text + where it sits), ``DocumentError`` for a
file that cannot be read, heading paths, markdown-style sectioning and table rendering.

Readers take the file's bytes (so an e-mail attachment is read the same way as a file on disk) and
yield sections; ``datamill.ingest.read_documents`` turns them into records with provenance.
"""

from __future__ import annotations

import io
import os
import re
import struct
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from datamill.clean.text import CJK
from datamill.errors import DatamillError


class DocumentError(DatamillError):
    """The whole document cannot be read (encrypted, empty, truncated …); the message names no path,
    the caller adds it."""


# Decompression bombs: DOCX, PPTX, XLSX, ODT and EPUB are zip files, and a 1 MB one can inflate to GBs.
MAX_INFLATED_BYTES = 256 << 20  # all members together; env DATAMILL_MAX_INFLATED_BYTES overrides
MAX_INFLATE_RATIO = 200  # per member past 1 MiB (XML compresses 5-50x, zeros 1000x); env DATAMILL_MAX_INFLATE_RATIO
_RATIO_GRACE = 1 << 20
_CHUNK = 1 << 20


def _limit(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def open_zip(src: Source, kind: str) -> zipfile.ZipFile:
    """The document's zip container, once it is shown to inflate to no more than the limits: the
    declared sizes are checked first (nothing inflated), then every member is inflated once, a chunk
    at a time, and must stop at its declared size — ``zipfile`` trusts that size only after inflating
    the whole member into memory, and the libraries reading DOCX/PPTX/XLSX rely on ``zipfile``."""
    try:
        z = zipfile.ZipFile(io.BytesIO(src.data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError):
        raise DocumentError(f"not a readable {kind} file (damaged, truncated or not a zip container)") from None
    budget = _limit("DATAMILL_MAX_INFLATED_BYTES", MAX_INFLATED_BYTES)
    ratio = _limit("DATAMILL_MAX_INFLATE_RATIO", MAX_INFLATE_RATIO)
    members = z.infolist()
    declared = sum(m.file_size for m in members)
    if declared > budget:
        z.close()
        raise DocumentError(
            f"refused: inflates to {declared:,} bytes, more than the limit of {budget:,} "
            "(a decompression bomb? raise DATAMILL_MAX_INFLATED_BYTES to read it)"
        )
    for m in members:
        if m.file_size > _RATIO_GRACE and m.file_size > ratio * max(m.compress_size, 1):
            z.close()
            raise DocumentError(
                f"refused: {m.filename} inflates {m.file_size // max(m.compress_size, 1):,}x "
                f"({m.compress_size:,} → {m.file_size:,} bytes), past the limit of {ratio}x "
                "(a decompression bomb? raise DATAMILL_MAX_INFLATE_RATIO to read it)"
            )
    try:
        for m in members:
            if _inflated_size(src.data, m) > m.file_size:
                raise DocumentError(
                    f"refused: {m.filename} inflates to more than the {m.file_size:,} bytes its zip entry "
                    "declares (a forged or damaged zip)"
                )
    except BaseException:
        z.close()
        raise
    return z


def _inflated_size(data: bytes, m: zipfile.ZipInfo) -> int:
    """What the member really inflates to, counted a chunk at a time and only up to one chunk past
    its declared size."""
    if m.flag_bits & 0x1:
        raise DocumentError(f"{m.filename} is encrypted (password-protected)")
    header = data[m.header_offset : m.header_offset + 30]
    if len(header) < 30 or header[:4] != b"PK\x03\x04":
        raise DocumentError(f"not a readable zip container (no local header for {m.filename})")
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    start = m.header_offset + 30 + name_len + extra_len
    body = memoryview(data)[start : start + m.compress_size]
    if m.compress_type == zipfile.ZIP_STORED:
        return len(body)
    if m.compress_type != zipfile.ZIP_DEFLATED:
        raise DocumentError(f"{m.filename} uses zip compression method {m.compress_type}; documents use deflate")
    inflater, size = zlib.decompressobj(-zlib.MAX_WBITS), 0
    pending: bytes | memoryview = body
    try:
        while pending and not inflater.eof and size <= m.file_size:
            size += len(inflater.decompress(pending, _CHUNK))
            pending = inflater.unconsumed_tail
        if size <= m.file_size:
            size += len(inflater.flush())
    except zlib.error:
        raise DocumentError(f"not a readable zip container ({m.filename} is damaged)") from None
    return size


@dataclass(slots=True)
class Source:
    name: str  # path on disk, or ``mail.eml#attachment.pdf`` for a part inside another document
    data: bytes


@dataclass(slots=True)
class Section:
    text: str
    meta: dict[str, Any] = field(default_factory=dict)  # page / slide / sheet / headings


class Headings:
    """The heading path at the current point of a document: ``["Intro", "Scope"]``."""

    def __init__(self) -> None:
        self.stack: list[tuple[int, str]] = []

    def push(self, level: int, title: str) -> None:
        while self.stack and self.stack[-1][0] >= level:
            self.stack.pop()
        self.stack.append((level, title.strip()))

    @property
    def path(self) -> list[str]:
        return [t for _, t in self.stack]


class SectionBuilder:
    """Collects paragraphs under the current heading path and cuts a section at every heading."""

    def __init__(self, base: dict[str, Any] | None = None):
        self.base = base or {}
        self.headings = Headings()
        self.parts: list[str] = []
        self.sections: list[Section] = []

    def heading(self, level: int, title: str) -> None:
        title = " ".join(title.split())
        if not title:
            return
        self.flush()
        self.headings.push(level, title)
        self.parts.append("#" * min(level, 6) + " " + title)

    def add(self, text: str) -> None:
        if text.strip():
            self.parts.append(text.strip("\n"))

    def flush(self) -> None:
        body = [p for p in self.parts if not p.startswith("#")]
        if body:
            meta = dict(self.base)
            if self.headings.path:
                meta["headings"] = self.headings.path
            self.sections.append(Section("\n\n".join(self.parts), meta))
        self.parts = []

    def done(self) -> list[Section]:
        self.flush()
        return self.sections


_MD_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


def markdown_sections(text: str, base: dict[str, Any] | None = None) -> list[Section]:
    """Split markdown at ATX headings (``#`` lines inside code fences are code, not headings)."""
    b = SectionBuilder(base)
    para: list[str] = []
    fenced = False

    def end_para() -> None:
        if para:
            b.add("\n".join(para))
            para.clear()

    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            para.append(line)
            continue
        m = None if fenced else _MD_HEADING.match(line)
        if m:
            end_para()
            b.heading(len(m.group(1)), m.group(2))
        elif not fenced and not line.strip():
            end_para()
        else:
            para.append(line)
    end_para()
    return b.done()


def cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return " ".join(str(value).split()).replace("|", "\\|")


def table_markdown(rows: Sequence[Sequence[Any]]) -> str:
    """Rows as a markdown pipe table (first row as header); empty rows and columns are dropped."""
    grid = [[cell_text(c) for c in r] for r in rows]
    grid = [r for r in grid if any(r)]
    if not grid:
        return ""
    width = max(len(r) for r in grid)
    grid = [r + [""] * (width - len(r)) for r in grid]
    keep = [j for j in range(width) if any(r[j] for r in grid)]
    grid = [[r[j] for j in keep] for r in grid]
    lines = ["| " + " | ".join(grid[0]) + " |", "|" + "---|" * len(keep)]
    lines += ["| " + " | ".join(r) + " |" for r in grid[1:]]
    return "\n".join(lines)


_CJK_END = re.compile(f"[{CJK}]$")
_CJK_START = re.compile(f"^[{CJK}]")


def join_lines(lines: Iterable[str]) -> str:
    """Lines of one visual paragraph (a PDF block) → one line: words joined by a space, CJK joined
    directly, a hyphen at a line end joined to the next word."""
    out = ""
    for line in (ln.strip() for ln in lines):
        if not line:
            continue
        if not out:
            out = line
        elif out.endswith("-") and line[:1].islower():
            out = out[:-1] + line
        elif _CJK_END.search(out) and _CJK_START.search(line):
            out += line
        else:
            out += " " + line
    return out


def letters(s: str) -> int:
    return sum(ch.isalpha() for ch in s)


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def nonempty(sections: Iterable[Section]) -> Iterator[Section]:
    """Sections with text; control characters (PDF font garbage) and zero-width spaces removed,
    no-break spaces made plain spaces."""
    for s in sections:
        s.text = _CONTROL.sub("", s.text).replace("\xa0", " ").replace("\u200b", "").strip()
        if s.text:
            yield s
