"""Hostile and unlucky documents (issue 15): zip decompression bombs (DOCX, PPTX, XLSX, ODT, EPUB) are
refused before they inflate, even when their zip entries lie about their size (item 10), and a directory
that cannot be listed is quarantined and reported like an unreadable file, not skipped in silence (5)."""

from __future__ import annotations

import json
import os
import random
import struct
import tracemalloc
import zipfile
from pathlib import Path

import docx  # noqa: F401 - the readers' libraries are imported before memory is measured
import openpyxl  # noqa: F401
import pptx  # noqa: F401
import pytest
from conftest import DOCS
from typer.testing import CliRunner

from datamill.dataset import Quarantined
from datamill.ingest import epub, office, read_documents, read_source  # noqa: F401
from datamill.ingest.base import Source
from datamill.ingest.command import ingest

DOCX = DOCS / "category-level.docx"

CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
    'content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
    'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName='
    '"/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.'
    'document.main+xml"/></Types>'
)
RELS = (
    '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/'
    '2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/'
    '2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>'
)
MIB = 1 << 20


def _bomb(path: Path, size: int, filler: bytes = b" " * MIB) -> Path:
    """A DOCX-shaped zip whose word/document.xml is ``size`` bytes of ``filler``, streamed into the zip
    so that the test never holds it."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", CONTENT_TYPES)
        z.writestr("_rels/.rels", RELS)
        with z.open("word/document.xml", "w") as f:
            f.write(b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>')
            for _ in range(size // len(filler)):
                f.write(filler)
            f.write(b"</w:body></w:document>")
    return path


def _read(path: Path, name: str | None = None) -> tuple[list, int]:
    """What ingest makes of the file, and the most memory Python held while reading it."""
    data = path.read_bytes()
    tracemalloc.start()
    try:
        items = list(read_source(Source(name or str(path), data)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return items, peak


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    path = _bomb(tmp_path_factory.mktemp("bomb") / "bomb.zip", 200 * MIB)  # ~200 KB on disk: 1000x
    assert path.stat().st_size < 2 * MIB
    return path


@pytest.mark.parametrize("name", ["bomb.docx", "bomb.pptx", "bomb.xlsx", "bomb.odt", "bomb.epub"])
def test_zip_bomb_is_quarantined_before_it_inflates(bomb, name):
    items, peak = _read(bomb, str(bomb.with_name(name)))
    assert len(items) == 1 and isinstance(items[0], Quarantined)
    assert "refused: word/document.xml inflates" in items[0].error and "DATAMILL_MAX_INFLATE_RATIO" in items[0].error
    assert peak < 8 * MIB


def test_inflated_size_limit_holds_for_ordinary_compression(tmp_path, monkeypatch):
    monkeypatch.setenv("DATAMILL_MAX_INFLATED_BYTES", str(2 * MIB))
    words = random.Random(0).choices([b"alpha ", b"beta ", b"gamma ", b"delta ", b"<w:p/>"], k=MIB // 5)
    path = _bomb(tmp_path / "big.docx", 3 * MIB, b"".join(words)[:MIB])
    items, _ = _read(path)
    assert "more than the limit of 2,097,152" in items[0].error and "DATAMILL_MAX_INFLATED_BYTES" in items[0].error
    monkeypatch.delenv("DATAMILL_MAX_INFLATED_BYTES")
    items, _ = _read(path)
    assert "refused" not in items[0].error  # under the default limit it is read (and found empty)


def _lie(path: Path, member: str, declared: int) -> None:
    """Rewrite the zip so that ``member``'s entries (local header and central directory) declare
    ``declared`` bytes: what a forged bomb does to get past a check of the declared sizes."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(member)
        start_dir = z.start_dir
    struct.pack_into("<I", data, info.header_offset + 22, declared)
    offset = start_dir
    while data[offset : offset + 4] == b"PK\x01\x02":
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", data, offset + 28)
        if data[offset + 46 : offset + 46 + name_len].decode() == member:
            struct.pack_into("<I", data, offset + 24, declared)
        offset += 46 + name_len + extra_len + comment_len
    path.write_bytes(bytes(data))


def test_zip_entry_that_lies_about_its_size_is_refused_without_inflating(tmp_path):
    """Declared 4 KB, really 64 MiB: ``zipfile`` (and so python-docx) would inflate all 64 MiB into
    memory before noticing."""
    path = _bomb(tmp_path / "liar.docx", 64 * MIB)
    _lie(path, "word/document.xml", 4096)
    items, peak = _read(path)
    assert len(items) == 1 and "more than the 4,096 bytes its zip entry declares" in items[0].error
    assert peak < 8 * MIB


def test_real_documents_still_read(tmp_path):
    items = list(read_documents([DOCX, DOCS / "fake-email-attachment.eml"]))
    assert items and not [i for i in items if isinstance(i, Quarantined)]


def _deny_listing(monkeypatch, denied: Path) -> None:
    """``denied`` cannot be listed, as for a user without permission (the tests run as root, for whom
    chmod 000 changes nothing)."""
    real = os.scandir

    def scandir(path="."):
        if isinstance(path, str | Path) and os.fspath(path) == os.fspath(denied):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)


@pytest.fixture
def folder(tmp_path) -> Path:
    d = tmp_path / "docs"
    (d / "locked").mkdir(parents=True)
    (d / "a.docx").write_bytes(DOCX.read_bytes())
    (d / "locked" / "b.docx").write_bytes(DOCX.read_bytes())
    return d


def test_unlistable_subdirectory_is_quarantined_and_counted(tmp_path, folder, monkeypatch):
    _deny_listing(monkeypatch, folder / "locked")
    s = ingest([folder], tmp_path / "out.jsonl")
    reason = f"{folder / 'locked'}: cannot list the directory: Permission denied"
    assert s.files_failed == {str(folder / "locked"): reason}
    assert [Path(f).name for f in s.files_ok] == ["a.docx"] and s.written > 0
    bad = [json.loads(line) for line in s.quarantine_path.read_text(encoding="utf-8").splitlines()]
    assert [(b["file"], b["error"], b["stage"]) for b in bad] == [(str(folder / "locked"), reason, "ingest")]


def test_ingest_command_reports_the_unlistable_directory(tmp_path, folder, monkeypatch):
    import typer

    from datamill.ingest.command import ingest_command

    _deny_listing(monkeypatch, folder / "locked")
    app = typer.Typer()
    app.command()(ingest_command)
    result = CliRunner().invoke(app, [str(folder), "-o", str(tmp_path / "out.jsonl")])
    assert result.exit_code == 0, result.output
    assert "failed: 1" in result.output and "1 directory unreadable" in result.output
    assert "locked: cannot list the directory: Permission denied" in " ".join(result.output.split())
