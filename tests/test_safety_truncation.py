"""Cut-short and damaged files keep every intact record (issue 15, item 3), non-JSON column values
never crash a write (item 6), and one huge record is refused without being parsed (item 10).

A cut costs one quarantined entry: the record it falls in, or, when it falls between records, the
last record before it (the file gives no proof that record was followed by nothing). The result is
the same at every file size (the pieces a large file is read in) and in every command."""

from __future__ import annotations

import datetime
import decimal
import gzip
import json
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

import datamill
import datamill.io.readers as readers
from datamill import Quarantined, Record
from datamill.io.readers import iter_rows
from datamill.pipeline import recipe as recipes
from datamill.pipeline.runner import Runner

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
ROWS = json.loads((EXAMPLES / "alpaca_en_sample.json").read_text(encoding="utf-8"))


def pretty(rows: list[dict]) -> bytes:
    return json.dumps(rows, indent=2, ensure_ascii=False).encode()


def summary_of(path: Path):
    return [(r.index, r.line, r.error is not None, r.row) for r in iter_rows(path)]


def run_recipe(tmp_path: Path, inputs: list[Path]) -> dict:
    body = {"name": "t", "inputs": [str(p) for p in inputs], "steps": [{"op": "exact_dedup", "part": "prompt"}],
            "output": {"path": str(tmp_path / "out"), "format": "alpaca"}, "workers": 1}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(body), encoding="utf-8")
    result = Runner(recipes.load(path)).run()
    return result.stats


def test_json_array_cut_inside_its_last_record_keeps_all_the_others(tmp_path):
    data = pretty(ROWS)
    src = tmp_path / "cut.json"
    src.write_bytes(data[: data.rindex(b'"output"')])  # inside the last record
    summary = datamill.convert(src, tmp_path / "out.jsonl", to="alpaca")
    assert (summary.read, summary.written, summary.quarantined) == (len(ROWS), len(ROWS) - 1, 1)
    (q,) = [json.loads(line) for line in Path(summary.quarantine_path).read_text().splitlines()]
    assert q["index"] == len(ROWS) - 1 and "cut short" in q["error"]
    assert q["line"] == data[: data.rindex(b"{")].count(b"\n") + 1
    written = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [w["output"] for w in written] == [r["output"] for r in ROWS[:-1]]


@pytest.mark.parametrize("cut", [0.1, 0.37, 0.5, 0.83, 0.999])
@pytest.mark.parametrize("piece", [1, 97, 4096])
def test_large_file_path_gives_the_same_result_as_the_small_one(tmp_path, monkeypatch, cut, piece):
    data = pretty(ROWS)
    src = tmp_path / "cut.json"
    src.write_bytes(data[: int(len(data) * cut)])
    small = summary_of(src)
    monkeypatch.setattr(readers, "SMALL_JSON", piece)
    assert summary_of(src) == small
    kept = [r for _, _, bad, r in small if not bad]
    assert kept == ROWS[: len(kept)] and len(small) == len(kept) + 1


def test_convert_and_run_agree_on_a_cut_file_read_in_pieces(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "SMALL_JSON", 512)
    data = pretty(ROWS)
    src = tmp_path / "cut.json"
    src.write_bytes(data[: len(data) * 2 // 3])
    summary = datamill.convert(src, tmp_path / "c.jsonl", to="alpaca")
    stats = run_recipe(tmp_path, [src])
    assert summary.written == stats["kept"] + stats["dropped"]
    assert summary.quarantined == stats["quarantined"] == 1
    assert summary.written > len(ROWS) // 2


def test_byte_flip_in_the_middle_costs_one_record(tmp_path):
    data = bytearray(pretty(ROWS))
    at = data.index(b'"instruction"', len(data) // 2)
    data[at] = ord("x")  # the key's opening quote
    src = tmp_path / "flip.json"
    src.write_bytes(bytes(data))
    rows = list(iter_rows(src))
    bad = [r for r in rows if r.error]
    assert len(rows) == len(ROWS) and len(bad) == 1
    assert [r.row for r in rows if not r.error] == [r for i, r in enumerate(ROWS) if i != bad[0].index]


@pytest.mark.parametrize("name", ["c4.jsonl.gz", "alpaca.json.gz"])
def test_truncated_gz_keeps_the_records_before_the_cut(tmp_path, name):
    if name.endswith(".jsonl.gz"):
        lines = (EXAMPLES / "c4_sample.jsonl").read_bytes().splitlines(keepends=True)
        plain = b"".join(lines)
    else:
        plain = pretty(ROWS)
    packed = gzip.compress(plain)
    src = tmp_path / name
    src.write_bytes(packed[: len(packed) * 2 // 3])
    rows = list(iter_rows(src))
    *good, last = rows
    assert good and all(r.error is None for r in good) and "cut short" in last.error and last.line
    if name.endswith(".jsonl.gz"):
        assert [r.row for r in good] == [orjson.loads(x) for x in lines[: len(good)]]
    else:
        assert [r.row for r in good] == ROWS[: len(good)]


def test_not_gzip_at_all_is_still_a_file_error(tmp_path):
    src = tmp_path / "plain.jsonl.gz"
    src.write_bytes(b'{"text": "never compressed"}\n')
    with pytest.raises(datamill.errors.FileError, match="gzip"):
        list(iter_rows(src))


# ------------------------------------------------------------------------------- huge records


def test_jsonl_line_over_the_limit_is_quarantined_without_parsing(tmp_path, monkeypatch):
    monkeypatch.setenv("DATAMILL_MAX_RECORD_BYTES", "10000")
    huge = json.dumps({"instruction": "q", "output": "x" * 50_000})
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join([json.dumps(ROWS[0]), huge, json.dumps(ROWS[1])]) + "\n", encoding="utf-8")
    parsed = []
    real = orjson.loads
    monkeypatch.setattr(readers.orjson, "loads", lambda b: parsed.append(len(b)) or real(b))
    rows = list(iter_rows(src))
    assert [r.row for r in rows if not r.error] == ROWS[:2]
    (bad,) = [r for r in rows if r.error]
    assert bad.line == 2 and f"{len(huge) + 1:,} bytes" in bad.error and "limit" in bad.error
    assert max(parsed) < 10000


@pytest.mark.parametrize("piece", [None, 300])
def test_json_array_item_over_the_limit_is_quarantined(tmp_path, monkeypatch, piece):
    monkeypatch.setenv("DATAMILL_MAX_RECORD_BYTES", "20000")
    if piece:
        monkeypatch.setattr(readers, "SMALL_JSON", piece)
    rows = [*ROWS[:5], {"instruction": "q", "output": "y" * 60_000}, *ROWS[5:10]]
    src = tmp_path / "in.json"
    src.write_bytes(pretty(rows))
    out = list(iter_rows(src))
    assert [r.row for r in out if not r.error] == ROWS[:10]
    (bad,) = [r for r in out if r.error]
    assert bad.index == 5 and "limit" in bad.error


def test_csv_row_over_the_limit_is_quarantined(tmp_path, monkeypatch):
    monkeypatch.setenv("DATAMILL_MAX_RECORD_BYTES", "5000")
    src = tmp_path / "in.csv"
    src.write_text('instruction,output\nq1,a1\nq2,"' + "z\n" * 10_000 + '"\nq3,a3\n', encoding="utf-8")
    out = list(iter_rows(src))
    assert [r.row for r in out if not r.error] == [{"instruction": "q1", "output": "a1"},
                                                   {"instruction": "q3", "output": "a3"}]
    (bad,) = [r for r in out if r.error]
    assert bad.index == 1 and "limit" in bad.error


# ----------------------------------------------------------------------- values JSON cannot hold


def parquet_with(tmp_path: Path, extra: dict[str, pa.Array], name: str = "odd.parquet") -> Path:
    n = len(next(iter(extra.values())))
    table = pa.table({"instruction": [f"q{i}" for i in range(n)], "output": [f"a{i}" for i in range(n)], **extra})
    path = tmp_path / name
    pq.write_table(table, path)
    return path


def test_binary_column_is_quarantined_not_a_crash(tmp_path):
    src = parquet_with(tmp_path, {"blob": pa.array([b"\x00\xff", None, b"ok"], pa.binary())})
    summary = datamill.convert(src, tmp_path / "out.jsonl", to="alpaca")
    assert (summary.read, summary.written, summary.quarantined) == (3, 1, 2)
    q = [json.loads(line) for line in Path(summary.quarantine_path).read_text().splitlines()]
    assert all("binary data" in e["error"] and "'blob'" in e["error"] for e in q)
    assert q[0]["raw"]["blob"] == {"base64": "AP8="}


def test_run_goes_on_past_a_parquet_file_with_bytes(tmp_path):
    odd = parquet_with(tmp_path, {"blob": pa.array([None, b"\x00\xff", b"x"], pa.binary())})
    good = tmp_path / "good.json"
    good.write_bytes(pretty(ROWS[:10]))
    stats = run_recipe(tmp_path, [odd, good])
    assert stats["quarantined"] == 2 and stats["kept"] == 11
    q = [json.loads(line) for line in (tmp_path / "out" / "quarantine.jsonl").read_text().splitlines()]
    assert [e["raw"]["blob"] for e in q] == [{"base64": "AP8="}, {"base64": "eA=="}]


def test_decimal_and_date_columns_are_read_as_json(tmp_path):
    src = parquet_with(tmp_path, {
        "price": pa.array([decimal.Decimal("15.50"), decimal.Decimal("0.1")], pa.decimal128(10, 2)),
        "day": pa.array([datetime.date(2024, 1, 2), None], pa.date32()),
    })
    rows = [r.row for r in iter_rows(src)]
    assert rows[0]["price"] == 15.5 and rows[0]["day"] == "2024-01-02" and rows[1]["price"] == 0.1
    summary = datamill.convert(src, tmp_path / "out.jsonl", to="alpaca", keep_meta=True)
    assert summary.written == 2


def test_writers_never_crash_on_non_json_values(tmp_path):
    rec = Record.from_dict({"id": "x", "meta": {"blob": b"\x01", "n": decimal.Decimal("1.25")}, "text": "doc"})
    for name in ("a.jsonl", "a.json"):
        datamill.write([rec], tmp_path / name, "datamill")
    written = json.loads((tmp_path / "a.json").read_text())[0]
    assert written["meta"] == {"blob": {"base64": "AQ=="}, "n": 1.25}
    q = Quarantined("w", "f", 1, 0, "e", {"b": b"\x02"})
    assert orjson.loads(orjson.dumps(q.to_dict(), default=readers.json_value))["raw"] == {"b": {"base64": "Ag=="}}
