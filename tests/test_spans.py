"""Byte ranges of a JSON Lines file (io/spans.py): read back span by span, the rows are exactly the
reader's rows for the whole file — same lines, indexes, errors — whatever the cut size."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from datamill.io import spans
from datamill.io.readers import iter_rows


def rows_by_spans(path: Path, n: int, encoding: str = "utf-8") -> list[tuple]:
    planner, out, sizes = spans.Spans(path), [], []
    while (span := planner.take(n)) is not None:
        got = [(r.where, r.line, r.index, r.row, r.error, r.raw) for r in spans.span_rows(path, encoding, span)]
        assert len(got) == span.rows
        sizes.append(span.rows)
        out += got
    assert all(size == n for size in sizes[:-1])  # every span but the last holds exactly n rows
    return out


def whole(path: Path) -> list[tuple]:
    return [(r.where, r.line, r.index, r.row, r.error, r.raw) for r in iter_rows(path)]


LINES = [
    b'{"text": "one"}',
    b"",
    b'  {"text": "leading spaces"}',
    b"   ",
    b"\t\r",
    b'{"text": "crlf"}\r',
    b"not json",
    b"[1, 2]",
    b'{"text": "\xe4\xbd\xa0\xe5\xa5\xbd"}',
    b'{"text": "bad \xff utf-8"}',
    b'{"text": "' + b"x" * 300 + b'"}',
    b" " * 300,
]


@pytest.mark.parametrize("seed", range(6))
def test_spans_read_back_as_the_whole_file(tmp_path, monkeypatch, seed):
    monkeypatch.setenv("DATAMILL_MAX_RECORD_BYTES", "200")  # the long lines are over it
    rng = random.Random(seed)
    lines = [rng.choice(LINES) for _ in range(rng.randint(0, 400))]
    data = b"\n".join(lines) + rng.choice([b"", b"\n", b"\n\n", b"  "])
    if seed % 3 == 0:
        data = b"\xef\xbb\xbf" + data  # a BOM
    path = tmp_path / "in.jsonl"
    path.write_bytes(data)
    expected = whole(path)
    for n in (1, 2, 3, 7, 50, 10_000):
        assert rows_by_spans(path, n, "utf-8-sig" if seed % 3 == 0 else "utf-8") == expected, n


def test_a_clean_file_is_cut_exactly_and_quickly_planned(tmp_path, monkeypatch):
    monkeypatch.setattr(spans, "BLOCK", 4096)  # many blocks: cuts fall inside and across them
    path = tmp_path / "clean.jsonl"
    path.write_bytes(b"".join(b'{"i": %d, "pad": "%s"}\n' % (i, b"y" * (i % 97)) for i in range(5000)))
    assert rows_by_spans(path, 333) == whole(path)
    planner = spans.Spans(path)
    first = planner.take(333)
    assert (first.start, first.after_line, first.index, first.rows) == (0, 0, 0, 333)
    second = planner.take(333)
    assert second.start == first.end and second.after_line == 333 and second.index == 333


def test_only_plain_utf8_json_lines_are_spannable(tmp_path):
    assert spans.spannable(tmp_path / "a.jsonl", "utf-8")
    assert spans.spannable(tmp_path / "a.ndjson", "utf-8-sig")
    assert not spans.spannable(tmp_path / "a.jsonl.gz", "utf-8")
    assert not spans.spannable(tmp_path / "a.jsonl", "gb18030")
    assert not spans.spannable(tmp_path / "a.json", "utf-8")
