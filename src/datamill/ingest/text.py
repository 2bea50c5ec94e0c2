"""Plain text, Markdown and CSV/TSV → sections. Encodings are sniffed the way datamill reads every
text file (BOMs, UTF-16 without BOM, UTF-8, then charset-normalizer)."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator

from datamill.ingest.base import DocumentError, Section, Source, markdown_sections, table_markdown
from datamill.io.encoding import sniff_bytes

CSV_ROWS_PER_SECTION = 50  # a table is cut into sections of this many rows, each with the header


def decode(src: Source) -> str:
    enc = sniff_bytes(src.data[: 1 << 16])
    try:
        return src.data.decode(enc)
    except UnicodeDecodeError as e:
        raise DocumentError(f"cannot decode as {enc}: {e.reason} at byte {e.start}") from None


def read_text(src: Source) -> Iterator[Section]:
    text = decode(src)
    _refuse_truncated_json(text)
    paras = [p.strip() for p in re.split(r"\n\s*\n", text)]
    yield Section("\n\n".join(p for p in paras if p))


def _refuse_truncated_json(text: str) -> None:
    """A .txt that is really a JSON value cut short is a broken data file, not prose."""
    head = text.lstrip()[:1]
    if head not in ("{", "["):
        return
    try:
        json.loads(text)
    except json.JSONDecodeError as e:
        if e.pos >= len(text.rstrip()):  # the parser ran off the end: cut short
            raise DocumentError(
                f"truncated JSON: the text is a JSON value cut short ({e.msg} at line {e.lineno})"
            ) from None


def read_markdown(src: Source) -> Iterator[Section]:
    yield from markdown_sections(decode(src))


def read_csv(src: Source) -> Iterator[Section]:
    text = decode(src)
    delimiter = "\t" if src.name.lower().endswith(".tsv") else ","
    csv.field_size_limit(1 << 30)
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as e:
        raise DocumentError(f"broken CSV: {e}") from None
    if not rows:
        return
    header, body = rows[0], rows[1:]
    if not body:
        yield Section(table_markdown([header]), {"rows": [1, 1]})
        return
    for start in range(0, len(body), CSV_ROWS_PER_SECTION):
        part = body[start : start + CSV_ROWS_PER_SECTION]
        yield Section(table_markdown([header, *part]), {"rows": [start + 2, start + 1 + len(part)]})
