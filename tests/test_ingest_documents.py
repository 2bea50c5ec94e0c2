"""Every file in tests/data/docs read by ``datamill.ingest``: expected text present, boilerplate
absent, provenance right, and each bad file reported with a message naming it."""

from __future__ import annotations

import importlib.util
import zipfile
from pathlib import Path

import pytest
from conftest import DOCS

from datamill.dataset import Quarantined
from datamill.ingest import read_documents, read_source
from datamill.ingest.base import Source
from datamill.record import Record

HAS_OCR = importlib.util.find_spec("rapidocr_onnxruntime") is not None

# file → (doc_type, snippets that must be in the text, snippets that must not)
EXPECT: dict[str, tuple[str, list[str], list[str]]] = {
    "a1977-backus-p21.pdf": ("pdf", ["recursive functions without a definition", "controlling function"], []),
    "fake-memo.pdf": ("pdf", ["20,000 bottles of water, 10,000 blankets, and 200 laptops", "Mallori"], []),
    "embedded-images-tables.pdf": (
        "pdf",
        ["Potentiodynamic polarization data", "|0|0.0335|0.0409|", "|10|0.0382|", "Langmuir adsorption isotherm"],
        ["\n4\n", "C/θ"],
    ),
    "layout-parser-paper-fast.pdf": (
        "pdf",
        [
            "LayoutParser: A Unified Toolkit for Deep Learning Based Document Image Analysis",
            "Abstract. Recent advances",
        ],
        ["\x00", "ﬁ"],
    ),
    "multi-column-2p.pdf": (
        "pdf",
        ["Dense Passage Retrieval for Open-Domain Question Answering", "relies on efficient passage retrieval"],
        ["ef- ficient"],
    ),
    "category-level.docx": ("docx", ["Call me Ishmael", "- A top level list item", "  - Next level"], []),
    "docx-tables.docx": ("docx", ["| Header Col 1 | Header Col 2 |", "| Lorem ipsum | A link example |", ">b<"], []),
    "duplicate-paragraphs.docx": ("docx", ["# This document contains duplicates", "some text"], []),
    "fake-power-point.pptx": ("pptx", ["# Adding a Bullet Slide", "Here is some text in a text box!"], []),
    "2023-half-year-analyses-by-segment.xlsx": (
        "xlsx",
        ["| Zone NA | 12553 |", "Zone EUR", "Zone AOA", "Zone LATAM", "Nestlé Health Science", "Nespresso"],
        ["None"],
    ),
    "emoji.xlsx": ("xlsx", ["🤠😅"], []),
    "example-10k-1p.html": ("html", ["Galaxy Gaming, Inc.", "Commission file number: 000-30653"], ["<td", "<div"]),
    "example-steelJIS-datasheet-utf-16.html": ("html", ["SNB22-3", "Chromium molybdenum steel"], ["\x00", "<table"]),
    "example-with-scripts.html": (
        "html",
        ["Russian Offensive Campaign Assessment, December 13", "Belarusian forces"],
        ["function(", "<script", "var ", "googletag", "{display"],
    ),
    "fake-html-cp1252.html": (
        "html",
        ["# My First Heading", "Die schöne Frau", "15,50 €", "L'été était très chaud", "El niño comió"],
        ["Ã", "\ufffd", "<p>"],
    ),
    "codeblock.md": ("markdown", ["## HTML Example", "<h1>Hello, World!</h1>", "<from>Jani</from>"], []),
    "simple-table.md": ("markdown", ["Juicy Apples | 1.99 | 739"], []),
    "book-war-and-peace-1p.txt": ("text", ["CHAPTER I", "Anna Pavlovna"], []),
    "csv-with-long-lines.csv": ("csv", ["| SpearmanCorrelationCoefficient |"], []),
    "eng_spa_mult.epub": ("epub", ["All human beings are born free and equal in dignity and rights"], ["<span"]),
    "fake.odt": ("odt", ["Lorem ipsum dolor sit amet.", "| Color | Blue | Red | Green |"], []),
    "fake-doc.rtf": ("rtf", ["My First Heading", "My first paragraph.", "Row 1, Cell 2"], ["\\par", "\\cell"]),
    "fake-email.eml": (
        "eml",
        ["Subject: Test Email", "This is a test email to use for unit tests.", "Roses are red"],
        [],
    ),
    "fake-email-attachment.eml": ("eml", ["Here's the attachments!"], ["SGV5IHRoaXMg"]),
    "chi_sim_image.jpeg": ("image", ["清道夫"], []),
}
# bad file → words its error must contain
BAD = {
    "password.pdf": "encrypted",
    "copy-protected.pdf": "copy-protected",
    "empty.txt": "empty file",
    "empty.xlsx": "no text found",
    "fake-incomplete-json.txt": "truncated JSON",
    "LICENSE": "unknown document type",
}


@pytest.fixture(scope="module")
def results() -> dict[str, list[Record | Quarantined]]:
    by_file: dict[str, list[Record | Quarantined]] = {}
    for item in read_documents([DOCS]):
        name = item.file if isinstance(item, Quarantined) else item.meta["source"]
        by_file.setdefault(Path(name.split("#")[0]).name, []).append(item)
    return by_file


def test_every_file_is_covered(results):
    on_disk = {p.name for p in DOCS.iterdir()}
    assert on_disk == set(EXPECT) | set(BAD), "a new file in tests/data/docs needs an expectation here"
    assert set(results) == on_disk  # every file came out as records or as an error


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_document_text_and_provenance(results, name):
    kind, present, absent = EXPECT[name]
    if kind == "image" and not HAS_OCR:
        pytest.skip("rapidocr-onnxruntime is not installed")
    items = results[name]
    errors = [i.error for i in items if isinstance(i, Quarantined)]
    assert not errors, errors
    own = [r for r in items if "#" not in r.meta["source"]]
    text = "\n\n".join(r.text for r in own)
    for snippet in present:
        assert snippet in text, f"{name}: missing {snippet!r}"
    for snippet in absent:
        assert snippet not in text, f"{name}: should not contain {snippet!r}"
    for n, rec in enumerate(own):
        assert rec.meta["source"] == str(DOCS / name)
        assert rec.meta["doc_type"] == kind
        assert rec.meta["section"] == n
        assert rec.kind == "pretrain" and rec.id == rec.compute_id()
        assert rec.text.strip() == rec.text and rec.text


def test_page_slide_sheet_and_heading_provenance(results):
    pages = [r.meta["page"] for r in results["layout-parser-paper-fast.pdf"]]
    assert pages == [1, 2]
    assert all(r.meta["pages"] == 2 for r in results["multi-column-2p.pdf"])
    assert [r.meta["slide"] for r in results["fake-power-point.pptx"]] == [1]
    sheets = [r.meta["sheet"] for r in results["2023-half-year-analyses-by-segment.xlsx"]]
    assert sheets[0] == "OS-Rev.and results 30 06 2023" and len(set(sheets)) == 5
    heads = [r.meta.get("headings") for r in results["category-level.docx"]]
    assert heads == [None, ["A Heading 1"], ["A Heading 1", "A Heading 2"], ["Another Heading 1"]]
    assert [r.meta["headings"] for r in results["codeblock.md"]] == [["HTML Example"], ["XML Example"]]
    assert results["eng_spa_mult.epub"][0].meta["chapter"].endswith("Untitleddocument.xhtml")
    mail = results["fake-email.eml"][0]
    assert mail.meta["subject"] == "Test Email" and "mrobinson@unstructured.io" in mail.meta["from"]


def test_multi_column_reading_order(results):
    text = results["multi-column-2p.pdf"][0].text
    # the left column (abstract, start of the introduction) comes before the right column's text
    order = [
        "Abstract",
        "Open-domain question answering relies on efficient passage retrieval",
        "1 Introduction",
        "Retrieval in open-domain QA is usually implemented",
    ]
    positions = [text.find(s) for s in order]
    assert -1 not in positions and positions == sorted(positions)


def test_email_attachment_is_read_recursively(results):
    items = results["fake-email-attachment.eml"]
    attached = [r for r in items if r.meta["source"].endswith("#fake-attachment.txt")]
    assert len(attached) == 1 and attached[0].text == "Hey this is a fake attachment!"
    assert attached[0].meta["doc_type"] == "text"


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_file_reported_by_name(results, name):
    (item,) = results[name]
    assert isinstance(item, Quarantined)
    assert item.file == str(DOCS / name) and item.stage == "ingest"
    assert str(DOCS / name) in item.error and BAD[name] in item.error


def test_pypdf_engine_reads_and_refuses_the_same_files():
    recs = list(read_documents([DOCS / "fake-memo.pdf", DOCS / "password.pdf"], pdf_engine="pypdf"))
    assert isinstance(recs[0], Record) and "200 laptops" in recs[0].text and recs[0].meta["page"] == 1
    assert isinstance(recs[1], Quarantined) and "encrypted" in recs[1].error


def test_truncated_and_unknown_files(tmp_path):
    docx = tmp_path / "cut.docx"
    docx.write_bytes((DOCS / "docx-tables.docx").read_bytes()[:4000])
    pdf = tmp_path / "cut.pdf"
    pdf.write_bytes(b"%PDF-1.4\n%garbage only")
    odd = tmp_path / "notes.xyz"
    odd.write_text("hello")
    old = tmp_path / "report.doc"
    old.write_bytes(b"\xd0\xcf\x11\xe0")
    out = list(read_documents([docx, pdf, odd, old, tmp_path / "missing.pdf"]))
    assert all(isinstance(q, Quarantined) for q in out), out
    errors = {Path(q.file).name: q.error for q in out}
    assert "DOCX" in errors["cut.docx"] and str(docx) in errors["cut.docx"]
    assert "pdf:" in errors["cut.pdf"]
    assert "unknown document type '.xyz'" in errors["notes.xyz"]
    assert "old binary DOC" in errors["report.doc"]
    assert "no such file" in errors["missing.pdf"]


def test_type_sniffed_without_extension(tmp_path):
    blob = tmp_path / "memo"
    blob.write_bytes((DOCS / "fake-memo.pdf").read_bytes())
    (rec,) = read_documents([blob])
    assert rec.meta["doc_type"] == "pdf" and "Mallori" in rec.text


def test_zip_attachment_of_unknown_type_is_reported_with_its_parent_name(tmp_path):
    z = tmp_path / "x.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("a.txt", "x")
    (item,) = read_source(Source("mail.eml#x.zip", z.read_bytes()))
    assert isinstance(item, Quarantined) and item.error.startswith("mail.eml#x.zip: unknown document type")


def test_pipeline_rows_are_native_records_or_errors():
    from datamill import formats
    from datamill.ingest import is_pipeline_document, raw_rows

    assert is_pipeline_document(DOCS / "fake.odt") and is_pipeline_document("a.txt", "document")
    assert not is_pipeline_document("a.jsonl") and not is_pipeline_document(DOCS / "book-war-and-peace-1p.txt")
    native = formats.get("datamill")
    rows = list(raw_rows(DOCS / "category-level.docx"))
    assert [r.index for r in rows] == [0, 1, 2, 3] and rows[1].where.endswith("category-level.docx[#1]")
    rec = native.to_record(rows[2].row)
    assert rec.meta["headings"] == ["A Heading 1", "A Heading 2"] and rec.id == rows[2].row["id"]
    (bad,) = raw_rows(DOCS / "password.pdf")
    assert bad.row is None and "password.pdf: pdf: encrypted" in bad.error
