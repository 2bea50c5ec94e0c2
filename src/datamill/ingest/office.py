"""Office documents → sections: DOCX (headings, lists, tables incl. nested ones, in body order),
PPTX (one section per slide: title, text frames, tables, notes), XLSX (one section per sheet, as a
table; long sheets cut into row ranges) and ODT (headings, paragraphs, lists, tables; read straight
from its XML, no extra package)."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from typing import Any
from xml.etree import ElementTree

from datamill.ingest.base import DocumentError, Section, SectionBuilder, Source, open_zip, table_markdown

SHEET_ROWS_PER_SECTION = 200


def _zip_guard(src: Source, kind: str) -> None:
    """A readable zip that is no decompression bomb, before the library reading it inflates anything."""
    open_zip(src, kind).close()


# ---------------------------------------------------------------------------------------------- DOCX

_HEADING_STYLE = re.compile(r"^(?:Heading|标题)\s*(\d)", re.I)


def read_docx(src: Source) -> Iterator[Section]:
    import docx
    from docx.table import Table

    _zip_guard(src, "DOCX")
    try:
        document = docx.Document(io.BytesIO(src.data))
    except Exception as e:  # python-docx raises KeyError / ValueError / PackageNotFoundError
        raise DocumentError(f"not a readable DOCX file: {type(e).__name__}: {e}") from None
    b = SectionBuilder()
    for item in document.iter_inner_content():
        if isinstance(item, Table):
            b.add(_docx_table(item))
            continue
        text = item.text.strip()
        if not text:
            continue
        style = item.style.name if item.style is not None else ""
        m = _HEADING_STYLE.match(style)
        if m or style == "Title":
            b.heading(int(m.group(1)) if m else 1, text)
        elif "List" in style or item._p.pPr is not None and item._p.pPr.numPr is not None:
            level = _list_level(item)
            b.add("  " * level + "- " + text)
        else:
            b.add(text)
    yield from _merge_lists(b.done())


def _list_level(par: Any) -> int:
    num = par._p.pPr.numPr if par._p.pPr is not None else None
    if num is not None and num.ilvl is not None:
        return int(num.ilvl.val)
    return 0


def _merge_lists(sections: list[Section]) -> Iterator[Section]:
    """List items were added as separate paragraphs; show them as one list (single newlines)."""
    for s in sections:
        s.text = re.sub(r"\n\n(?=\s*- )", "\n", s.text)
        yield s


def _docx_table(table: Any) -> str:
    rows = []
    nested: list[str] = []
    for row in table.rows:
        cells = []
        for cell in row.cells:
            cells.append(" ".join(p.text.strip() for p in cell.paragraphs if p.text.strip()))
            nested += [_docx_table(t) for t in cell.tables]
        rows.append(cells)
    return "\n\n".join([table_markdown(rows), *nested])


# ---------------------------------------------------------------------------------------------- PPTX


def read_pptx(src: Source) -> Iterator[Section]:
    import pptx

    _zip_guard(src, "PPTX")
    try:
        deck = pptx.Presentation(io.BytesIO(src.data))
    except Exception as e:
        raise DocumentError(f"not a readable PPTX file: {type(e).__name__}: {e}") from None
    for number, slide in enumerate(deck.slides, 1):
        title_shape = slide.shapes.title
        title = title_shape.text_frame.text.strip() if title_shape is not None else ""
        parts = [f"# {title}"] if title else []
        shapes = sorted(slide.shapes, key=lambda s: (s.top or 0, s.left or 0))
        for shape in shapes:
            if title_shape is not None and shape.shape_id == title_shape.shape_id:
                continue
            if shape.has_text_frame:
                lines = [p for p in (_pptx_par(par) for par in shape.text_frame.paragraphs) if p]
                if lines:
                    parts.append("\n".join(lines))
            elif getattr(shape, "has_table", False) and shape.has_table:
                parts.append(table_markdown([[c.text for c in r.cells] for r in shape.table.rows]))
        if slide.has_notes_slide:
            notes = slide.notes_slide.notes_text_frame.text.strip() if slide.notes_slide.notes_text_frame else ""
            if notes:
                parts.append(f"Notes: {notes}")
        body = [p for p in parts if not p.startswith("# ")]
        if body or title:
            meta: dict[str, Any] = {"slide": number}
            if title:
                meta["headings"] = [title]
            yield Section("\n\n".join(parts), meta)


def _pptx_par(par: Any) -> str:
    text = "".join(r.text for r in par.runs).strip() or par.text.strip()
    if not text:
        return ""
    return "  " * (par.level or 0) + "- " + text if par.level else text


# ---------------------------------------------------------------------------------------------- XLSX


def read_xlsx(src: Source) -> Iterator[Section]:
    import openpyxl

    _zip_guard(src, "XLSX")
    try:
        book = openpyxl.load_workbook(io.BytesIO(src.data), read_only=True, data_only=True)
    except Exception as e:
        raise DocumentError(f"not a readable XLSX file: {type(e).__name__}: {e}") from None
    try:
        for ws in book.worksheets:
            rows = [list(r) for r in ws.iter_rows(values_only=True)]
            rows = [r for r in rows if any(c is not None and str(c).strip() for c in r)]
            for start in range(0, len(rows), SHEET_ROWS_PER_SECTION):
                part = rows[start : start + SHEET_ROWS_PER_SECTION]
                text = _sheet_text(part)
                if text:
                    yield Section(f"# {ws.title}\n\n{text}", {"sheet": ws.title, "headings": [ws.title]})
    finally:
        book.close()


def _sheet_text(rows: list[list[Any]]) -> str:
    """Leading one-cell rows (titles above the table) as lines, the rest as a table."""
    lines = []
    while rows and sum(c is not None and str(c).strip() != "" for c in rows[0]) == 1:
        lines.append(next(" ".join(str(c).split()) for c in rows[0] if c is not None and str(c).strip()))
        rows = rows[1:]
    table = table_markdown(rows) if rows else ""
    return "\n\n".join([*lines, table] if table else lines)


# ----------------------------------------------------------------------------------------------- ODT

_NS = {
    "text": "urn:oasis:names:tc:opendocument:xmlns:text:1.0",
    "table": "urn:oasis:names:tc:opendocument:xmlns:table:1.0",
    "office": "urn:oasis:names:tc:opendocument:xmlns:office:1.0",
}
_T = "{" + _NS["text"] + "}"
_TB = "{" + _NS["table"] + "}"


def read_odt(src: Source) -> Iterator[Section]:
    try:
        with open_zip(src, "ODT") as z:
            root = ElementTree.fromstring(z.read("content.xml"))
    except (KeyError, zipfile.BadZipFile, ElementTree.ParseError) as e:
        raise DocumentError(f"not a readable ODT file: {e}") from None
    body = root.find("office:body/office:text", _NS)
    if body is None:
        raise DocumentError("not a text document (no office:text body)")
    b = SectionBuilder()
    _odt_walk(body, b, 0)
    yield from _merge_lists(b.done())


def _odt_walk(node: ElementTree.Element, b: SectionBuilder, depth: int) -> None:
    for el in node:
        if el.tag == _T + "h":
            b.heading(int(el.get(_T + "outline-level", "1")), _odt_text(el))
        elif el.tag == _T + "p":
            b.add(_odt_text(el))
        elif el.tag == _T + "list":
            for item in el.findall(_T + "list-item"):
                for child in item:
                    if child.tag == _T + "list":
                        _odt_walk(_wrap(child), b, depth + 1)
                    elif child.tag in (_T + "p", _T + "h") and _odt_text(child):
                        b.add("  " * depth + "- " + _odt_text(child))
        elif el.tag == _TB + "table":
            rows = [[_odt_text(c) for c in row.iter(_TB + "table-cell")] for row in el.iter(_TB + "table-row")]
            b.add(table_markdown(rows))
        elif el.tag == _T + "section":
            _odt_walk(el, b, depth)


def _wrap(el: ElementTree.Element) -> ElementTree.Element:
    holder = ElementTree.Element("holder")
    holder.append(el)
    return holder


def _odt_text(el: ElementTree.Element) -> str:
    parts: list[str] = []

    def walk(e: ElementTree.Element) -> None:
        if e.tag == _T + "s":
            parts.append(" " * int(e.get(_T + "c", "1")))
        elif e.tag == _T + "tab":
            parts.append("\t")
        elif e.tag == _T + "line-break":
            parts.append("\n")
        elif e.text:
            parts.append(e.text)
        for child in e:
            walk(child)
            if child.tail:
                parts.append(child.tail)

    walk(el)
    return " ".join("".join(parts).split())
