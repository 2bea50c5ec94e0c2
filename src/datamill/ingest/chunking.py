"""Cut a document into chunks for pretraining or doc→QA: at headings and paragraphs first, then at
sentence ends (Chinese 。！？; and English . ! ? with abbreviations and decimals respected), never
inside a sentence unless one sentence alone is larger than the chunk. Sizes are in estimated
tokens (CJK-aware: one CJK character ≈ 1 token, an English word ≈ 1.3) or in characters.

Every chunk is a contiguous slice ``text[start:end]`` of the input, so its provenance is exact;
``overlap`` repeats whole trailing sentences of the previous chunk (never across a heading).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Literal

from datamill.clean.text import CJK
from datamill.record import Record

Unit = Literal["tokens", "chars"]

_TOKEN = re.compile(f"[{CJK}]|[A-Za-z]+|[0-9]+|[^\\s{CJK}A-Za-z0-9]")


def estimate_tokens(text: str) -> int:
    """A tokenizer-free estimate close to BPE counts of Qwen/Llama-class tokenizers: one per CJK
    character, one per 4 letters of an English word (at least one), one per 3 digits, one per symbol."""
    n = 0
    for m in _TOKEN.finditer(text):
        s = m.group(0)
        if s[0].isascii() and s[0].isalpha():
            n += max(1, math.ceil(len(s) / 4))
        elif s[0].isdigit():
            n += math.ceil(len(s) / 3)
        else:
            n += 1
    return n


def measure(text: str, unit: Unit) -> int:
    return len(text) if unit == "chars" else estimate_tokens(text)


# ------------------------------------------------------------------------------------------ sentences

_ZH_END = "。！？；…"
_CLOSERS = "”’」』）)》】\"'"
_ABBREV = re.compile(
    r"(?:\b(?:Mr|Mrs|Ms|Dr|Prof|Sr|Jr|St|vs|etc|Fig|Figs|Eq|Eqs|No|Vol|pp|al|Inc|Ltd|Co|Corp|Jan|Feb|Mar|Apr|"
    r"Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec|e\.g|i\.e|cf|approx|Sec|Ch)|\b[A-Z])\.$"
)
_SENT_END = re.compile(f"(?:[{_ZH_END}]+[{_CLOSERS}]*)|(?:[.!?]+[{_CLOSERS}]*(?=\\s+[^a-z\\s]|\\s*$|[{CJK}]))")


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """[start, end) spans of the sentences of ``text[start:end]`` (whitespace between sentences is
    left out)."""
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    pos = start
    for m in _SENT_END.finditer(text, start, end):
        stop = m.end()
        piece = text[pos:stop]
        if m.group(0)[0] == "." and (_ABBREV.search(piece) or _decimal(text, m.start())):
            continue
        if piece.strip():
            spans.append(_strip(text, pos, stop))
        pos = stop
    if text[pos:end].strip():
        spans.append(_strip(text, pos, end))
    return spans


def _decimal(text: str, i: int) -> bool:
    return i + 1 < len(text) and text[i + 1].isdigit()


def _strip(text: str, a: int, b: int) -> tuple[int, int]:
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return a, b


# ------------------------------------------------------------------------------------------- blocks

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_LINE_ITEM = re.compile(r"^\s*(?:[-*+•]\s|\d+[.)]\s|\|)")


@dataclass(slots=True)
class Piece:
    start: int
    end: int
    heading: tuple[int, str] | None = None  # (level, title) when the piece is a heading line
    breakable: bool = True  # False inside a table or code block: no overlap starts there


def pieces(text: str) -> list[Piece]:
    """Headings, then sentences of prose paragraphs, lines of lists/tables/code — in text order."""
    out: list[Piece] = []
    lines = _lines(text)
    i = 0
    while i < len(lines):
        a, b = lines[i]
        line = text[a:b]
        if _FENCE.match(line):  # a code block: keep it whole as lines, up to its closing fence
            j = i + 1
            while j < len(lines) and not _FENCE.match(text[lines[j][0] : lines[j][1]]):
                j += 1
            j = min(j, len(lines) - 1)
            out += [Piece(*lines[k], breakable=k == i) for k in range(i, j + 1) if text[slice(*lines[k])].strip()]
            i = j + 1
            continue
        m = _HEADING.match(line)
        if m:
            out.append(Piece(a, b, heading=(len(m.group(1)), m.group(2))))
            i += 1
            continue
        if not line.strip():
            i += 1
            continue
        j = i  # a paragraph: consecutive non-blank, non-heading, non-fence lines
        while j + 1 < len(lines):
            nxt = text[lines[j + 1][0] : lines[j + 1][1]]
            if not nxt.strip() or _HEADING.match(nxt) or _FENCE.match(nxt):
                break
            j += 1
        para = lines[i : j + 1]
        if any(_LINE_ITEM.match(text[s:e]) for s, e in para):
            out += [Piece(s, e, breakable=not text[s:e].lstrip().startswith("|")) for s, e in para]
        else:
            out += [Piece(s, e) for s, e in sentence_spans(text, para[0][0], para[-1][1])]
        i = j + 1
    return out


def _lines(text: str) -> list[tuple[int, int]]:
    spans, pos = [], 0
    for line in text.splitlines(keepends=True):
        spans.append((pos, pos + len(line.rstrip("\r\n"))))
        pos += len(line)
    return spans


# ------------------------------------------------------------------------------------------- chunks


@dataclass(slots=True)
class Chunk:
    text: str
    start: int
    end: int
    size: int
    headings: list[str] = field(default_factory=list)
    split_sentence: bool = False  # one sentence was longer than the chunk size and had to be cut


def chunk(text: str, size: int = 512, overlap: int = 0, unit: Unit = "tokens") -> list[Chunk]:
    """Chunks of at most ``size`` (tokens or chars; a single over-long sentence is cut at word
    boundaries and flagged), each starting at a heading when the previous one is at least half full."""
    if size < 1 or overlap < 0 or overlap >= size:
        raise ValueError(f"need size >= 1 and 0 <= overlap < size, got size={size} overlap={overlap}")
    units = _fit(text, pieces(text), size, unit)
    chunks: list[Chunk] = []
    path: list[tuple[int, str]] = []
    cur: list[tuple[Piece, list[str]]] = []  # piece, heading path in force at it

    def total(items: list) -> int:
        return measure(text[items[0][0].start : items[-1][0].end], unit) if items else 0

    def emit() -> list:
        """Write the current chunk; trailing headings move on to the next one."""
        carry: list = []
        while cur and cur[-1][0].heading:
            carry.insert(0, cur.pop())
        if cur:
            a, b = cur[0][0].start, cur[-1][0].end
            split = any(isinstance(p, _Split) for p, _ in cur)
            chunks.append(Chunk(text[a:b], a, b, measure(text[a:b], unit), cur[0][1], split))
        return carry

    for piece, _n in units:
        if piece.heading:
            level = piece.heading[0]
            path = [h for h in path if h[0] < level] + [piece.heading]
        item = (piece, [t for _, t in path])
        if piece.heading and cur and total(cur) >= size / 2:
            cur = emit()
        if cur and total([*cur, item]) > size:
            tail = [] if piece.heading else _overlap_tail(cur, overlap, text, unit)
            cur = emit() or tail
            while cur and total([*cur, item]) > size:
                cur = cur[1:]
        cur.append(item)
    emit()
    return chunks


def _overlap_tail(cur: list, overlap: int, text: str, unit: Unit) -> list:
    """The trailing pieces of ``cur`` that fit in ``overlap`` (whole sentences; never a heading, never
    the whole chunk, never starting inside a table or code block)."""
    if overlap <= 0:
        return []
    tail: list = []
    for item in reversed(cur[1:]):
        piece = item[0]
        if piece.heading:
            break
        candidate = [item, *tail]
        if measure(text[candidate[0][0].start : candidate[-1][0].end], unit) > overlap:
            break
        tail = candidate
    while tail and not tail[0][0].breakable:
        tail = tail[1:]
    return tail


class _Split(Piece):
    """Part of a sentence longer than a whole chunk."""


def _fit(text: str, items: list[Piece], size: int, unit: Unit) -> list[tuple[Piece, int]]:
    """Pieces with their sizes; a piece larger than ``size`` is cut at word boundaries (CJK: at
    any character) — the one case where a sentence is split."""
    out: list[tuple[Piece, int]] = []
    for p in items:
        n = measure(text[p.start : p.end], unit)
        if n <= size or p.heading:
            out.append((p, n))
            continue
        a = p.start
        while a < p.end:
            b = _cut(text, a, p.end, size, unit)
            out.append((_Split(a, b), measure(text[a:b], unit)))
            a, _ = _strip(text, b, p.end)
    return out


def _cut(text: str, a: int, end: int, size: int, unit: Unit) -> int:
    lo, hi = a + 1, end  # the largest b with measure(text[a:b]) <= size (binary search)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if measure(text[a:mid], unit) <= size:
            lo = mid
        else:
            hi = mid - 1
    b = lo
    if b < end:
        space = text.rfind(" ", a + 1, b + 1)
        if space > a and not re.match(f"[{CJK}]", text[b - 1 : b]):
            b = space
    return max(b, a + 1)


def chunk_record(rec: Record, size: int = 512, overlap: int = 0, unit: Unit = "tokens") -> list[Record]:
    """A ``text`` record → one record per chunk, each with the parent's meta plus ``chunk`` (index,
    count, start/end offsets in the parent text, size, unit), ``parent_id`` and its heading path."""
    if rec.text is None:
        return [rec]
    parts = chunk(rec.text, size, overlap, unit)
    parent = rec.id or rec.compute_id()
    out = []
    for i, c in enumerate(parts):
        meta = dict(rec.meta)
        meta["parent_id"] = parent
        meta["chunk"] = {"index": i, "count": len(parts), "start": c.start, "end": c.end, "size": c.size, "unit": unit}
        if c.headings:
            meta["headings"] = [*_outer(rec.meta.get("headings"), c.headings), *c.headings]
        if c.split_sentence:
            meta["chunk"]["split_sentence"] = True
        new = Record(text=c.text, meta=meta)
        new.id = new.compute_id()
        out.append(new)
    return out


def _outer(doc_path: list[str] | None, inner: list[str]) -> list[str]:
    """The document's own heading path (e.g. a DOCX section's parents) above the in-text headings."""
    if not doc_path:
        return []
    if inner and inner[0] in doc_path:
        return doc_path[: doc_path.index(inner[0])]
    return list(doc_path)
