"""Split a document into chunks for document → QA: paragraph- and sentence-aware, a Markdown heading
starts a new chunk, and every chunk is an exact ``text[start:end]`` span so a generated pair can point
back at where its answer came from."""

from __future__ import annotations

import re
from dataclasses import dataclass

PARAGRAPH = re.compile(r"\n[ \t]*\n+")
SENTENCE_END = re.compile(r"(?<=[.!?。！？；;])[\"'”’)\]]*\s+|(?<=[。！？；])")
HEADING = re.compile(r"^#{1,6}\s")


@dataclass(frozen=True, slots=True)
class Chunk:
    index: int
    start: int
    end: int
    text: str


def _spans(text: str, pattern: re.Pattern, start: int, end: int) -> list[tuple[int, int]]:
    out, pos = [], start
    for m in pattern.finditer(text, start, end):
        if m.end() > pos and m.start() >= pos:
            out.append((pos, m.end()))
            pos = m.end()
    if pos < end:
        out.append((pos, end))
    return [(a, b) for a, b in out if text[a:b].strip()]


def _pieces(text: str, max_chars: int) -> list[tuple[int, int, bool]]:
    """(start, end, starts_section) pieces no longer than max_chars: paragraphs, else sentences, else cuts."""
    out = []
    for a, b in _spans(text, PARAGRAPH, 0, len(text)):
        heading = bool(HEADING.match(text[a:b].lstrip()))
        if b - a <= max_chars:
            out.append((a, b, heading))
            continue
        for i, (s, e) in enumerate(_spans(text, SENTENCE_END, a, b)):
            while e - s > max_chars:
                out.append((s, s + max_chars, heading and i == 0))
                s += max_chars
                i = 1
            out.append((s, e, heading and i == 0))
    return out


def chunk_text(text: str, max_chars: int = 1500, min_chars: int = 40) -> list[Chunk]:
    """Greedy packing of pieces into chunks of at most ``max_chars`` characters; a heading closes the
    chunk before it. Chunks shorter than ``min_chars`` (stray lines) are left out."""
    if max_chars < 1:
        raise ValueError("max_chars must be positive")
    spans: list[tuple[int, int]] = []
    cur: tuple[int, int] | None = None
    for a, b, heading in _pieces(text, max_chars):
        if cur is not None and (heading or b - cur[0] > max_chars):
            spans.append(cur)
            cur = None
        cur = (a, b) if cur is None else (cur[0], b)
    if cur is not None:
        spans.append(cur)
    out = []
    for a, b in spans:
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if b - a >= min_chars:
            out.append(Chunk(len(out), a, b, text[a:b]))
    return out
