"""PDF → one section per page, in reading order (two-column pages read column by column), tables
as markdown, line-broken paragraphs joined. PyMuPDF is the engine (measured in
``benchmarks/ingest.py``: several times faster than pypdf, with table detection and block positions
for column order); pypdf is the fallback when PyMuPDF is not installed or is asked for.

Encrypted PDFs (a password is needed) and copy-protected ones (permissions forbid extracting text)
are refused with a ``DocumentError``: datamill does not strip protections from documents.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

from datamill.ingest.base import DocumentError, Section, Source, join_lines, letters

ENGINES = ("pymupdf", "pypdf")


def engine_available(engine: str) -> bool:
    try:
        __import__("pymupdf" if engine == "pymupdf" else "pypdf")
    except ImportError:
        return False
    return True


def read(src: Source, engine: str | None = None, tables: bool = True) -> Iterator[Section]:
    engine = engine or ("pymupdf" if engine_available("pymupdf") else "pypdf")
    if engine == "pymupdf":
        yield from _pymupdf(src, tables)
    else:
        yield from _pypdf(src)


# ------------------------------------------------------------------------------------------- PyMuPDF


def _pymupdf(src: Source, tables: bool) -> Iterator[Section]:
    import pymupdf

    pymupdf.TOOLS.mupdf_display_errors(False)
    try:
        doc = pymupdf.open(stream=src.data, filetype="pdf")
    except Exception as e:  # pymupdf raises its own FileDataError / RuntimeError for damaged files
        raise DocumentError(f"not a readable PDF (damaged or truncated): {e}") from None
    with doc:
        if doc.needs_pass:
            raise DocumentError("encrypted: the PDF needs a password to open")
        if not doc.permissions & pymupdf.PDF_PERM_COPY:
            raise DocumentError("copy-protected: the PDF's permissions forbid copying its text")
        flags = (pymupdf.TEXTFLAGS_BLOCKS | pymupdf.TEXT_DEHYPHENATE) & ~pymupdf.TEXT_PRESERVE_LIGATURES
        for number, page in enumerate(doc, 1):
            text = _page_text(page, flags, tables)
            if text:
                yield Section(text, {"page": number, "pages": doc.page_count})


def _page_text(page: Any, flags: int, tables: bool) -> str:
    # find_tables costs ~0.5-1 s a page; only pages with ruling lines are searched (tables without
    # rules still come out as text blocks)
    found = page.find_tables().tables if tables and _ruled(page) else []
    boxes = [t.bbox for t in found]
    items: list[tuple[tuple[float, float, float, float], str]] = []
    for x0, y0, x1, y1, text, _no, kind in page.get_text("blocks", flags=flags, sort=False):
        if kind != 0 or any(_inside((x0, y0, x1, y1), b) for b in boxes):
            continue
        para = join_lines(text.splitlines())
        if para and (letters(para) >= 2 or len(para) >= 40):  # axis ticks and stray labels of figures
            items.append(((x0, y0, x1, y1), para))
    for t, box in zip(found, boxes, strict=True):
        md = t.to_markdown(clean=False).strip()  # extract() splits numbers at kerned decimal points
        if md:
            items.append((box, md))
    return "\n\n".join(text for _, text in reading_order(items, page.rect.width))


def _ruled(page: Any, minimum: int = 4) -> bool:
    """At least ``minimum`` straight horizontal/vertical strokes or thin rectangles: table rules."""
    n = 0
    for d in page.get_drawings():
        for item in d.get("items", ()):
            n += _is_rule(item)
        if n >= minimum:
            return True
    return False


def _is_rule(item: Any) -> bool:
    if item[0] == "l":
        return abs(item[1].x - item[2].x) < 1 or abs(item[1].y - item[2].y) < 1
    return item[0] == "re" and min(item[1].width, item[1].height) < 2


def _inside(block: tuple[float, ...], box: tuple[float, ...], slack: float = 2.0) -> bool:
    x0, y0, x1, y1 = block
    return x0 >= box[0] - slack and y0 >= box[1] - slack and x1 <= box[2] + slack and y1 <= box[3] + slack


def reading_order(items: list[tuple[tuple[float, float, float, float], str]], width: float) -> list:
    """Top to bottom; between full-width blocks (titles, wide figures), the left column before the
    right one. Single-column pages come out top to bottom."""
    items = sorted(items, key=lambda it: (it[0][1], it[0][0]))
    out: list = []
    band: list = []

    def flush() -> None:
        left = [it for it in band if (it[0][0] + it[0][2]) / 2 < width / 2]
        right = [it for it in band if (it[0][0] + it[0][2]) / 2 >= width / 2]
        out.extend(left + right)
        band.clear()

    for it in items:
        x0, _, x1, _ = it[0]
        if x1 - x0 > 0.55 * width:
            flush()
            out.append(it)
        else:
            band.append(it)
    flush()
    return out


# --------------------------------------------------------------------------------------------- pypdf


def _pypdf(src: Source) -> Iterator[Section]:
    import logging

    import pypdf
    from pypdf.errors import PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = pypdf.PdfReader(io.BytesIO(src.data))
        if reader.is_encrypted:
            try:
                ok = reader.decrypt("")
            except Exception:
                ok = 0
            if not ok:
                raise DocumentError("encrypted: the PDF needs a password to open")
            perms = reader.user_access_permissions
            if perms is not None and not perms & pypdf.constants.UserAccessPermissions.EXTRACT:
                raise DocumentError("copy-protected: the PDF's permissions forbid copying its text")
        pages = len(reader.pages)
        for number, page in enumerate(reader.pages, 1):
            raw = page.extract_text() or ""
            paras = [join_lines(p.splitlines()) for p in raw.split("\n\n")]
            text = "\n\n".join(p for p in paras if p)
            if text:
                yield Section(text, {"page": number, "pages": pages})
    except PdfReadError as e:
        raise DocumentError(f"not a readable PDF (damaged or truncated): {e}") from None
