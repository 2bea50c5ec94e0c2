"""Ingest raw documents into pretraining ``text`` records with provenance.

``read_documents(paths)`` walks files and directories and yields, per file, either ``Record``s (one
per page / slide / sheet / heading section, ``meta`` = source, doc_type, page|slide|sheet|chapter,
headings, section) or one ``Quarantined`` naming the file and saying why it cannot be read
(encrypted, copy-protected, empty, truncated, unknown type). A bad file never stops the others.

Owns the document readers (one module per type), structured sources (``tables``, ``database``,
``kg``, ``dialogue``), web archives (``warc``: WARC/WET/ARC, streamed), code trees (``code``), dumps
and papers (``stackexchange``, ``latex`` + ``latex_macros``, ``reddit``, with ``dumps`` shared; picked by
``source_reader``), chunking (``chunking``, and the ``chunk_text`` operator) and the ``datamill
ingest`` command (``command``). May import: ``datamill.record``, ``datamill.results``,
``datamill.dataset``, ``datamill.io``, ``datamill.clean.html``, and the operator kinds and registry.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from datamill.dataset import Quarantined
from datamill.ingest import warc
from datamill.ingest.base import DocumentError, Section, Source, nonempty
from datamill.io.readers import RawRow
from datamill.record import Record

Reader = Callable[..., Iterable[Any]]


def _pdf(src: Source, **opts: Any) -> Iterable[Any]:
    from datamill.ingest import pdf

    return pdf.read(src, engine=opts.get("pdf_engine"), tables=opts.get("pdf_tables", True))


def _lazy(module: str, fn: str = "read") -> Reader:
    def read(src: Source, **_: Any) -> Iterable[Any]:
        import importlib

        return getattr(importlib.import_module(f"datamill.ingest.{module}"), fn)(src)

    return read


READERS: dict[str, Reader] = {
    "pdf": _pdf,
    "docx": _lazy("office", "read_docx"),
    "pptx": _lazy("office", "read_pptx"),
    "xlsx": _lazy("office", "read_xlsx"),
    "odt": _lazy("office", "read_odt"),
    "html": _lazy("html"),
    "epub": _lazy("epub"),
    "rtf": _lazy("rtf"),
    "eml": _lazy("eml"),
    "markdown": _lazy("text", "read_markdown"),
    "text": _lazy("text", "read_text"),
    "csv": _lazy("text", "read_csv"),
    "image": _lazy("image"),
}
EXTENSIONS = {
    ".pdf": "pdf",
    ".docx": "docx",
    ".pptx": "pptx",
    ".xlsx": "xlsx",
    ".xlsm": "xlsx",
    ".odt": "odt",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".epub": "epub",
    ".rtf": "rtf",
    ".eml": "eml",
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".text": "text",
    ".csv": "csv",
    ".tsv": "csv",
    ".jpg": "image",
    ".jpeg": "image",
    ".png": "image",
}
# extensions of files people keep next to documents but which are no documents
OLD_BINARY = {".doc": "DOC", ".ppt": "PPT", ".xls": "XLS"}


def doc_type(name: str, data: bytes | None = None) -> str | None:
    """The document family from the extension, else from the first bytes; None when unknown."""
    ext = os.path.splitext(name.lower())[1]
    if ext in EXTENSIONS:
        return EXTENSIONS[ext]
    if data is None:
        return None
    head = data[:2048]
    if head.startswith(b"%PDF"):
        return "pdf"
    if head.lstrip().startswith(b"{\\rtf"):
        return "rtf"
    if head[:4] == b"PK\x03\x04":
        if b"word/" in head:
            return "docx"
        if b"ppt/" in head:
            return "pptx"
        if b"xl/" in head:
            return "xlsx"
        if b"application/epub+zip" in head:
            return "epub"
        if b"opendocument.text" in head:
            return "odt"
    lower = head.lower()
    if b"<html" in lower or b"<!doctype html" in lower:
        return "html"
    return None


def is_document(path: str | Path) -> bool:
    return doc_type(str(path)) is not None


def walk(root: str | Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Every file under ``root`` (sorted; links to directories are not followed) and, apart, each
    entry that could not be looked at with the reason — a directory that cannot be listed, a broken
    link — which ``Path.rglob`` would skip without a word."""
    files: list[Path] = []
    problems: list[tuple[Path, str]] = []

    def unlisted(e: OSError) -> None:
        problems.append((Path(e.filename), f"cannot list the directory: {e.strerror or e}"))

    for top, _, names in os.walk(root, onerror=unlisted):
        for name in names:
            path = Path(top, name)
            if path.is_file():
                files.append(path)
            elif path.is_symlink() and not path.exists():
                problems.append((path, "broken symbolic link (its target is missing)"))
    return sorted(files), sorted(problems)


def expand(paths: Iterable[str | Path]) -> Iterator[tuple[Path, str | None]]:
    """``(path, None)`` for each file as given and each file under a directory (sorted, hidden ones
    skipped); ``(path, reason)`` for what under a directory cannot be read, so it is reported."""
    for p in map(Path, paths):
        if not p.is_dir():
            yield p, None
            continue
        files, problems = walk(p)
        listing = [(f, None) for f in files] + problems
        for f, why in sorted(listing, key=lambda item: item[0]):
            if not any(part.startswith(".") for part in f.relative_to(p).parts):
                yield f, why


def read_documents(
    paths: Iterable[str | Path],
    source_format: str | None = None,
    source_options: dict[str, Any] | None = None,
    **options: Any,
) -> Iterator[Record | Quarantined]:
    """Records of every readable document, one ``Quarantined`` per file (or directory) that cannot be read.

    Options: ``pdf_engine`` (``pymupdf`` | ``pypdf``), ``pdf_tables`` (find tables on PDF pages);
    ``source_format`` declares the inputs' format (one of ``SOURCE_FORMATS``; a folder declared ``latex``
    is one paper) and ``source_options`` go to its reader (``source_reader``)."""
    fmt = source_format
    for index, (path, problem) in enumerate(_expand_sources(paths, fmt)):
        if problem is not None:
            yield _error(str(path), index, problem)
            continue
        if not path.exists():
            yield _error(str(path), index, "no such file or directory")
            continue
        if (source := source_reader(path, fmt)) is not None:  # dumps and papers: their own readers, streamed
            yield from source.read(path, **(source_options or {}))
            continue
        if warc.is_archive(path):  # streamed: archives are gigabytes
            yield from warc.read_archive(path, extract=True)
            continue
        try:
            data = path.read_bytes()
        except OSError as e:
            yield _error(str(path), index, f"cannot read: {e.strerror}")
            continue
        yield from read_source(Source(str(path), data), index, **options)


def read_source(src: Source, index: int = 0, **options: Any) -> Iterator[Record | Quarantined]:
    """One document (file or attachment) → its records, or a ``Quarantined`` naming it."""
    kind = doc_type(src.name, src.data)
    ext = os.path.splitext(src.name.lower())[1]
    if kind is None:
        if ext in OLD_BINARY:
            yield _error(src.name, index, f"old binary {OLD_BINARY[ext]} format is not read; save it as {ext}x")
        else:
            known = ", ".join(sorted(EXTENSIONS))
            yield _error(src.name, index, f"unknown document type '{ext or '(no extension)'}'; ingest reads {known}")
        return
    if not src.data.strip():
        yield _error(src.name, index, f"empty file: no {kind} content")
        return
    try:
        items = list(READERS[kind](src, **options))
    except DocumentError as e:
        yield _error(src.name, index, f"{kind}: {e}")
        return
    except ImportError as e:
        yield _error(src.name, index, f"{kind}: the reader needs a package that is not installed ({e.name})")
        return
    except Exception as e:  # a reader library choking on a malformed file: report it, go on
        yield _error(src.name, index, f"{kind}: cannot read ({type(e).__name__}: {e})")
        return
    sections = list(nonempty(it for it in items if isinstance(it, Section)))
    nested = [it for it in items if isinstance(it, Source)]
    if not sections and not nested:
        yield _error(src.name, index, f"{kind}: no text found (empty document, or scanned pages without OCR)")
        return
    for n, section in enumerate(sections):
        meta = {"source": src.name, "doc_type": kind, "section": n, **section.meta}
        rec = Record(text=section.text, meta=meta)
        rec.id = rec.compute_id()
        yield rec
    for inner in nested:
        yield from read_source(inner, index, **options)


SOURCE_FORMATS = ("stackexchange", "latex", "reddit", "review")  # declared input formats read by their own modules


def source_reader(path: str | Path, fmt: str | None = None) -> ModuleType | None:
    """The reader module of a Stack Exchange dump, a LaTeX source or a Reddit dump — by the declared
    format, else by the file name (``Posts.xml``, ``.tex``, ``RS_*.zst`` / ``RC_*.zst``); None otherwise."""
    if fmt is not None and fmt not in SOURCE_FORMATS:
        return None
    from datamill.ingest import latex, reddit, stackexchange
    from datamill.review import recipe_input  # a review project (datamill.review.recipe_input)

    return next((m for m in (stackexchange, latex, reddit, recipe_input) if m.claims(path, fmt)), None)


def source_option_problems(paths: Iterable[str | Path], fmt: str | None, given: dict[str, Any]) -> list[str]:
    """What is wrong with a recipe input's ``options`` for the readers of its files (unknown names, bad
    values, files no source reader reads), at most one message per problem."""
    from datamill.ingest.dumps import options

    problems: list[str] = []
    for path in paths:
        source = source_reader(path, fmt)
        try:
            if source is None:
                raise ValueError(f"options are for stackexchange, latex and reddit inputs, not {Path(path).name}")
            options(source.Options, given, source.FORMAT)
        except (TypeError, ValueError) as e:
            if str(e) not in problems:
                problems.append(str(e))
    return problems


def quarantines_rows(path: str | Path, fmt: str | None = None) -> bool:
    """Is a bad row of this input (a dump's malformed line) one quarantined row, the rest still read,
    rather than a failure of the whole file?"""
    source = source_reader(path, fmt)
    return source is not None and source.PER_ROW and Path(path).is_file()


def _expand_sources(paths: Iterable[str | Path], fmt: str | None) -> Iterator[tuple[Path, str | None]]:
    for p in paths:
        if fmt == "latex" and Path(p).is_dir():  # a paper's folder is one source
            yield Path(p), None
        else:
            yield from expand([p])


# extensions that are documents only (.txt/.csv/.json are dataset files to the pipeline's readers)
PIPELINE_DOCUMENTS = {ext for ext, kind in EXTENSIONS.items() if kind not in ("text", "csv")}


def is_pipeline_document(path: str | Path, fmt: str | None = None) -> bool:
    """Should a recipe input be read by ingest rather than as a dataset file? Yes for document-only
    extensions (.pdf, .docx, .html, .md …), for any file declared ``format: document``, for a folder or
    tarball declared ``format: code`` (``datamill.ingest.code``), and for dumps and papers
    (``source_reader``: Stack Exchange, LaTeX, Reddit)."""
    if fmt is None and warc.is_archive(path):
        return True
    if source_reader(path, fmt) is not None:
        return True
    return fmt in ("document", "code") or (fmt is None and Path(path).suffix.lower() in PIPELINE_DOCUMENTS)


def raw_rows(path: str | Path, fmt: str | None = None, **options: Any) -> Iterator[RawRow]:
    """One document as the pipeline's input rows: each record as a ``datamill``-format row (lossless,
    with its provenance meta), an unreadable file as one error row that the run quarantines. A web
    archive's pages come as HTML (its ``html_to_text`` step extracts them in the workers); a member
    that cannot be read is one quarantined row naming the file and byte offset. ``fmt="code"``: a
    code tree, one row per source file."""
    if fmt == "code":
        from datamill.ingest import code

        yield from code.raw_rows(path)
        return
    if (source := source_reader(path, fmt)) is not None:
        for i, item in enumerate(source.read(path, **(options.get("source_options") or {}))):
            if isinstance(item, Quarantined):
                yield RawRow(item.where, item.line, i, None, item.error, item.raw)
            else:
                yield RawRow(source.where(item), item.meta.get("line"), i, item.to_dict())
        return
    if warc.is_archive(path) and Path(path).is_file():
        for i, item in enumerate(warc.read_archive(path)):
            if isinstance(item, Quarantined):
                yield RawRow(item.where, None, i, None, item.error, None)
            else:
                yield RawRow(f"{item.meta['source']}@{item.meta['offset']}", None, i, item.to_dict())
        return
    for i, item in enumerate(read_documents([path], **options)):
        if isinstance(item, Quarantined):
            yield RawRow(f"{item.file}", None, i, None, item.error, None)
        else:
            where = f"{item.meta['source']}[#{item.meta['section']}]"
            yield RawRow(where, None, i, item.to_dict())


def _error(name: str, index: int, message: str) -> Quarantined:
    return Quarantined(name, name, None, index, f"{name}: {message}", None, stage="ingest")


__all__ = [
    "DocumentError",
    "Section",
    "Source",
    "doc_type",
    "expand",
    "is_document",
    "is_pipeline_document",
    "quarantines_rows",
    "raw_rows",
    "read_documents",
    "read_source",
    "source_reader",
    "walk",
]
