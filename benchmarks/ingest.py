"""PDF text extraction: PyMuPDF (datamill's choice) vs pypdf (vs pymupdf4llm when installed) on the
real PDFs in ../shared/data/docs — pages/s and text-quality checks side by side.

    python benchmarks/ingest.py [--repeat N]

Speed: every engine reads the same readable PDFs (the encrypted and copy-protected ones are refused
before any page is read, so they are left out), ``--repeat`` times, one core; pages/s is
pages read / seconds. The "datamill" rows run the real reader (``datamill.ingest.pdf.read``: blocks
in reading order, joined lines, and for pymupdf table detection); "raw" rows are each library's
plain one-call page text, for reference.

Quality: snippets whose presence shows what an engine gets right — the paper title with its ``fi``
ligature unfolded, a table cell as a table row, words split by end-of-line hyphens joined, the
two-column reading order (the left column's abstract before the right column's text).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT.parent / "shared" / "data" / "docs"
sys.path.insert(0, str(ROOT / "src"))

from datamill.ingest import pdf  # noqa: E402
from datamill.ingest.base import Source, nonempty  # noqa: E402

PDFS = ["a1977-backus-p21.pdf", "fake-memo.pdf", "embedded-images-tables.pdf", "layout-parser-paper-fast.pdf"]
PDFS += ["multi-column-2p.pdf"]
CHECKS = {
    "title, ligature unfolded": ("layout-parser-paper-fast.pdf", "A Unified Toolkit for Deep Learning"),
    "table cell in a table row": ("embedded-images-tables.pdf", "|0|0.0335|0.0409|"),
    "table cell present at all": ("embedded-images-tables.pdf", "0.0335"),
    "hyphenated word joined": ("multi-column-2p.pdf", "relies on efficient passage retrieval"),
    "no control characters": ("layout-parser-paper-fast.pdf", None),
}


def datamill_reader(engine: str, tables: bool = True):
    def run(name: str, data: bytes) -> list[str]:
        return [s.text for s in nonempty(pdf.read(Source(name, data), engine=engine, tables=tables))]

    return run


def raw_pymupdf(name: str, data: bytes) -> list[str]:
    import pymupdf

    with pymupdf.open(stream=data, filetype="pdf") as doc:
        return [page.get_text() for page in doc]


def raw_pypdf(name: str, data: bytes) -> list[str]:
    import pypdf

    return [p.extract_text() or "" for p in pypdf.PdfReader(io.BytesIO(data)).pages]


def pymupdf4llm_reader(name: str, data: bytes) -> list[str]:
    import pymupdf
    import pymupdf4llm

    quiet = contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO())
    with pymupdf.open(stream=data, filetype="pdf") as doc, quiet[0], quiet[1]:
        return [c["text"] for c in pymupdf4llm.to_markdown(doc, page_chunks=True, show_progress=False)]


def engines() -> dict:
    out = {
        "datamill pymupdf (tables)": datamill_reader("pymupdf", True),
        "datamill pymupdf (no tables)": datamill_reader("pymupdf", False),
        "datamill pypdf": datamill_reader("pypdf"),
        "raw pymupdf get_text": raw_pymupdf,
        "raw pypdf extract_text": raw_pypdf,
    }
    if importlib.util.find_spec("pymupdf4llm"):
        out["pymupdf4llm to_markdown"] = pymupdf4llm_reader
    return out


def reading_order_ok(text: str) -> bool:
    a, b = text.find("Abstract"), text.find("Retrieval in open-domain QA is usually")
    return -1 < a < b


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    files = {n: (DOCS / n).read_bytes() for n in PDFS}
    print(f"{len(files)} PDFs, repeat {args.repeat}\n")
    print("| engine | pages | seconds | pages/s | " + " | ".join(CHECKS) + " | 2-column order |")
    print("|---|---:|---:|---:|" + "---|" * (len(CHECKS) + 1))
    for label, fn in engines().items():
        texts: dict[str, str] = {}
        pages = 0
        start = time.perf_counter()
        for _ in range(args.repeat):
            for name, data in files.items():
                out = fn(name, data)
                pages += len(out)
                texts[name] = "\n".join(out)
        seconds = time.perf_counter() - start
        marks = []
        for name, snippet in CHECKS.values():
            ok = snippet in texts[name] if snippet else not any(ord(c) < 9 for c in texts[name])
            marks.append("yes" if ok else "no")
        marks.append("yes" if reading_order_ok(texts["multi-column-2p.pdf"]) else "no")
        print(f"| {label} | {pages} | {seconds:.2f} | {pages / seconds:.1f} | " + " | ".join(marks) + " |")


if __name__ == "__main__":
    main()
