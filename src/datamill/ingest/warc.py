"""Web archives — WARC, WET and ARC files, gzipped or not — streamed one record at a time.

Common Crawl compresses every record as a gzip member of its own. The members are split here (zlib,
never the whole file in memory) so that a truncated or corrupt member is one quarantined entry with
its file and byte offset, and the members after it are still read; each member's record is then
parsed by a maintained reader — FastWARC for WARC and WET, warcio for ARC (FastWARC reads no ARC).
An uncompressed file is split at its ``WARC/1.x`` header lines the same way.

What becomes a record: an HTTP ``response`` whose payload is HTML (by Content-Type, else by sniffing)
→ the page decoded to text by the declared charset (HTTP header, then ``<meta charset>``) or by
sniffing, as ``text`` for ``html_to_text`` (a recipe step, run in the workers) or extracted at once
(``extract=True``: the ``datamill ingest`` command); a WET ``conversion`` record → its text as is;
an ARC page the same as a response. Meta: ``url``, ``domain``, ``warc_date``, ``warc_record_id``,
``source`` (the file), ``offset`` (byte offset of the record's member), ``content_type``,
``charset``. Protocol records (warcinfo, request, metadata, revisit) and responses that are no
page (images, scripts, style sheets; a non-200 status) are counted in ``WarcStats``, not records.
"""

from __future__ import annotations

import io
import re
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from datamill.dataset import Quarantined
from datamill.record import Record

SUFFIXES = (".warc", ".warc.gz", ".wet", ".wet.gz", ".arc", ".arc.gz")
GZIP_MAGIC = b"\x1f\x8b\x08"
READ_SIZE = 1 << 20
_WARC_START = re.compile(rb"(?:^|\r?\n)(WARC/1\.[01]\r?\n)")
_CONTENT_LENGTH = re.compile(rb"(?im)^content-length:[ \t]*(\d+)")
_CHARSET = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9_.:-]+)", re.I)
_HTML_TYPES = ("text/html", "application/xhtml+xml")


def is_archive(path: str | Path) -> bool:
    name = str(path).lower()
    return name.endswith(SUFFIXES)


def _kind(path: str | Path) -> str:
    name = str(path).lower().removesuffix(".gz")
    return "arc" if name.endswith(".arc") else "warc"


@dataclass
class WarcStats:
    """What a file held besides its pages: records by type and the responses that were no page."""

    pages: int = 0
    skipped: Counter = field(default_factory=Counter)


@dataclass
class _Member:
    offset: int
    data: bytes | None  # the record's bytes, uncompressed; None when it could not be read
    error: str | None = None


def _gzip_members(f: io.BufferedReader) -> Iterator[_Member]:
    """Each gzip member's uncompressed bytes with its offset; a corrupt member is reported and the
    reading goes on at the next gzip header after it, a truncated last member is reported."""
    offset, buf = 0, b""
    while True:
        if not buf:
            buf = f.read(READ_SIZE)
            if not buf:
                return
        d = zlib.decompressobj(31)
        out: list[bytes] = []
        held: list[bytes] = []  # this member's compressed bytes so far, to look for the next one on error
        consumed = 0
        try:
            while not d.eof:
                if not buf:
                    buf = f.read(READ_SIZE)
                    if not buf:
                        break
                held.append(buf)
                out.append(d.decompress(buf))
                used = len(buf) - len(d.unused_data)
                consumed, buf = consumed + used, d.unused_data
        except zlib.error as e:
            rest = b"".join(held)
            yield _Member(offset, None, f"corrupt gzip member ({e})")
            nxt = rest.find(GZIP_MAGIC, 1)
            while nxt < 0:  # skip ahead to the next member's header
                more = f.read(READ_SIZE)
                if not more:
                    return
                offset, rest = offset + len(rest) - 2, rest[-2:] + more
                nxt = rest.find(GZIP_MAGIC, 1)
            offset, buf = offset + nxt, rest[nxt:]
            continue
        if not d.eof:
            yield _Member(offset, None, "truncated gzip member: the file ends inside it")
            return
        yield _Member(offset, b"".join(out))
        offset += consumed


def _plain_records(f: io.BufferedReader) -> Iterator[_Member]:
    """An uncompressed archive cut at its record header lines (``WARC/1.0``; ARC files have none,
    so one ARC file is one piece); anything before the first header is reported."""
    data = b""
    base = 0  # file offset of data[0]
    starts: list[int] = []
    while chunk := f.read(READ_SIZE):
        data += chunk
        starts = [m.start(1) for m in _WARC_START.finditer(data)]
        while len(starts) >= 2:  # every record but the last is complete
            yield from _piece(data[: starts[1]], base, starts[0])
            data, base = data[starts[1] :], base + starts[1]
            starts = [s - starts[1] for s in starts[1:]]
    if data.strip():
        yield from _piece(data, base, starts[0] if starts else 0)


def _piece(data: bytes, base: int, start: int) -> Iterator[_Member]:
    """One record of a plain file and, reported apart, bytes before or after it that are no record."""
    if data[:start].strip():
        yield _Member(base, None, "bytes that are no archive record before a record header")
    record = data[start:]
    end = _record_end(record)
    if end is not None and record[end:].strip():
        yield _Member(base + start, record[:end])
        yield _Member(base + start + end, None, "bytes that are no archive record after a record")
    else:
        yield _Member(base + start, record)


def _record_end(record: bytes) -> int | None:
    """Where a WARC record ends by its Content-Length (None when its header does not say)."""
    head_end = record.find(b"\r\n\r\n")
    m = _CONTENT_LENGTH.search(record, 0, head_end) if head_end > 0 else None
    return head_end + 4 + int(m.group(1)) + 4 if m else None


def members(path: str | Path) -> Iterator[_Member]:
    with open(path, "rb") as f:
        gz = f.read(3) == GZIP_MAGIC
        f.seek(0)
        yield from (_gzip_members(f) if gz else _plain_records(f))


@dataclass
class _Page:
    url: str
    date: str | None
    record_id: str | None
    content_type: str
    body: bytes
    status: int | None
    wet: bool = False


def _warc_pages(data: bytes, stats: WarcStats) -> Iterator[_Page]:
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    wanted = WarcRecordType.response | WarcRecordType.conversion | WarcRecordType.resource
    n = 0
    for rec in ArchiveIterator(io.BytesIO(data), record_types=WarcRecordType.any_type, parse_http=True):
        n += 1
        kind = rec.record_type
        if not kind & wanted:
            stats.skipped[f"{rec.headers.get('WARC-Type', 'unknown')} record"] += 1
            continue
        headers = rec.headers
        url = headers.get("WARC-Target-URI", "")
        date, rid = headers.get("WARC-Date"), headers.get("WARC-Record-ID")
        if kind == WarcRecordType.conversion:
            yield _Page(url, date, rid, "text/plain", rec.reader.read(), None, wet=True)
        elif rec.http_headers is not None:
            http = rec.http_headers
            status = int(http.status_code) if http.status_code else None
            yield _Page(url, date, rid, http.get("Content-Type", "") or "", rec.reader.read(), status)
        else:  # a resource record: the payload is the document itself
            yield _Page(url, date, rid, headers.get("Content-Type", ""), rec.reader.read(), None)
    if n == 0:
        raise ValueError("no WARC record in it (a malformed header)")


def _arc_pages(data: bytes, stats: WarcStats) -> Iterator[_Page]:
    from warcio.archiveiterator import ArchiveIterator

    for rec in ArchiveIterator(io.BytesIO(data), arc2warc=True):
        if rec.rec_type != "response":
            stats.skipped[f"{rec.rec_type} record"] += 1
            continue
        http = rec.http_headers
        status = int(http.get_statuscode()) if http and http.get_statuscode() else None
        ctype = (http.get_header("Content-Type") if http else None) or rec.rec_headers.get_header("Content-Type") or ""
        yield _Page(
            rec.rec_headers.get_header("WARC-Target-URI") or "",
            rec.rec_headers.get_header("WARC-Date"),
            None,  # ARC records have no id (warcio makes up a random one)
            ctype,
            rec.content_stream().read(),
            status,
        )


def _is_html(page: _Page) -> bool:
    ctype = page.content_type.split(";", 1)[0].strip().lower()
    if ctype in _HTML_TYPES:
        return True
    if ctype and ctype not in ("text/plain", "application/octet-stream", "unknown/unknown"):
        return False
    head = page.body[:2048].lower()
    return b"<html" in head or b"<!doctype html" in head


def decode_page(body: bytes, content_type: str) -> tuple[str, str]:
    """(text, charset): the HTTP header's charset when it decodes the page, else the page's own
    ``<meta charset>``, else sniffing (``decode_html``)."""
    from datamill.ingest.html import decode_html

    m = _CHARSET.search(content_type)
    if m:
        declared = m.group(1).lower()
        try:
            return body.decode(declared), declared
        except (LookupError, UnicodeDecodeError):
            pass
    return decode_html(body), "detected"


def read_archive(
    path: str | Path, extract: bool = False, stats: WarcStats | None = None
) -> Iterator[Record | Quarantined]:
    """The pages of one archive file as ``text`` records (HTML, or its main text when ``extract``),
    and one ``Quarantined`` per member that cannot be read — the rest of the file is still read."""
    stats = stats if stats is not None else WarcStats()
    source = str(path)
    parse = _arc_pages if _kind(path) == "arc" else _warc_pages
    for index, member in enumerate(members(path)):
        where = f"{source}@{member.offset}"
        if member.data is None:
            yield Quarantined(where, source, None, index, f"{where}: {member.error}", None, stage="read")
            continue
        pages: list[_Page] = []
        try:
            for page in parse(member.data, stats):
                pages.append(page)
        except Exception as e:  # a reader choking on a malformed record: the pages before it, then the error
            broken = f"{where}: malformed record{' after the first' * bool(pages)} ({e})"
        else:
            broken = None
        yield from _records(pages, source, member.offset, extract, stats)
        if broken:
            yield Quarantined(where, source, None, index, broken, None, stage="read")


def _records(pages: list[_Page], source: str, offset: int, extract: bool, stats: WarcStats) -> Iterator[Record]:
    from datamill.clean.html import html_page_to_text

    for page in pages:
        if page.status is not None and page.status != 200:
            stats.skipped[f"HTTP status {page.status}"] += 1
            continue
        if page.wet:
            text, charset = page.body.decode("utf-8", errors="replace"), "utf-8"
        elif _is_html(page):
            text, charset = decode_page(page.body, page.content_type)
            if extract:
                text = html_page_to_text(text)
        else:
            stats.skipped[f"{page.content_type.split(';', 1)[0].strip() or 'untyped'} response"] += 1
            continue
        stats.pages += 1
        meta = {
            "source": source,
            "doc_type": "wet" if page.wet else "html",
            "url": page.url,
            "domain": (urlsplit(page.url).hostname or "").lower(),
            "warc_date": page.date,
            "warc_record_id": page.record_id,
            "offset": offset,
            "content_type": page.content_type,
            "charset": charset,
        }
        rec = Record(text=text, meta=meta)
        rec.id = rec.compute_id()
        yield rec
