"""``datamill ingest``: the docs folder → a pretrain file + a quarantine file + a summary that
lists every bad file with its reason; ``read = written`` is checked by reading the output back."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from conftest import DOCS
from typer.testing import CliRunner

import datamill
from datamill.ingest.command import ingest, ingest_command
from datamill.record import Record

SMALL = ["fake-memo.pdf", "password.pdf", "category-level.docx", "empty.txt", "fake-email-attachment.eml"]


def test_ingest_writes_records_and_quarantines_bad_files(tmp_path):
    out = tmp_path / "docs.jsonl"
    s = ingest([DOCS / n for n in SMALL], out)
    assert sorted(Path(f).name for f in s.files_ok) == [
        "category-level.docx",
        "fake-email-attachment.eml",
        "fake-memo.pdf",
    ]
    assert sorted(Path(f).name for f in s.files_failed) == ["empty.txt", "password.pdf"]
    assert s.sections == 1 + 4 + 2 and s.written == 7 and s.quarantined == 2
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 7 and all(set(r) == {"text", "id", "meta"} for r in rows)
    assert rows[0]["meta"]["doc_type"] == "pdf" and rows[0]["meta"]["page"] == 1
    bad = [json.loads(line) for line in s.quarantine_path.read_text(encoding="utf-8").splitlines()]
    assert [Path(b["file"]).name for b in bad] == ["password.pdf", "empty.txt"]
    assert all(b["stage"] == "ingest" and b["file"] in b["error"] for b in bad)
    info = json.loads((tmp_path / "dataset_info.json").read_text(encoding="utf-8"))
    assert info["docs"] == {"file_name": "docs.jsonl", "columns": {"prompt": "text"}}
    assert sum(isinstance(r, Record) for r in datamill.read(out)) == 7


def test_ingest_with_chunking(tmp_path):
    out = tmp_path / "chunks.jsonl"
    s = ingest([DOCS / "layout-parser-paper-fast.pdf"], out, chunk_size=128, overlap=16)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert s.sections == 2 and s.written == len(rows) > 6 and s.quarantine_path is None
    assert {r["meta"]["page"] for r in rows} == {1, 2}
    assert all(r["meta"]["chunk"]["size"] <= 128 for r in rows)


def test_cli_summary_names_bad_files(tmp_path):
    app = typer.Typer()
    app.command("ingest")(ingest_command)
    app.command("noop")(lambda: None)  # two commands, so "ingest" is parsed as a sub-command
    out = tmp_path / "o.jsonl"
    result = CliRunner().invoke(
        app, ["ingest", str(DOCS / "fake-memo.pdf"), str(DOCS / "copy-protected.pdf"), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "files ok: 1 failed: 1" in text and "records written: 1" in text
    assert "copy-protected.pdf: pdf: copy-protected" in text
    bad = CliRunner().invoke(app, ["ingest", str(DOCS / "fake-memo.pdf"), "-o", str(out), "--unit", "words"])
    assert bad.exit_code == 2
