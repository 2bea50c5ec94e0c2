"""Parquet and saved-dataset outputs keep every column any record has, not only the first rows'
(issue 16, item 1): a system prompt or history that first appears late must survive, or
LLaMA-Factory fails on the column dataset_info.json names (KeyError: 'history')."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from conftest import LF

import datamill
from datamill.io.writers import BATCH, ParquetWriter

DEMOS = ["dpo_en_demo.json", "dpo_zh_demo.json", "kto_en_demo.json"]
OPTIONAL = ("system", "history", "kto_tag")


def reference(tmp_path, name):
    """The alpaca rows as .jsonl writes them (one object per record, no schema to lose)."""
    ref = tmp_path / "ref" / "ref.jsonl"
    datamill.convert(LF / name, ref, "alpaca")
    return [json.loads(line) for line in ref.read_text(encoding="utf-8").splitlines()]


def present(rows, key):
    return [(i, r[key]) for i, r in enumerate(rows) if r.get(key) is not None]


@pytest.mark.parametrize("name", DEMOS)
def test_alpaca_parquet_keeps_every_system_and_history(name, tmp_path):
    expected = reference(tmp_path, name)
    out = tmp_path / "out" / "pairs.parquet"
    summary = datamill.convert(LF / name, out, "alpaca")
    assert summary.written == len(expected) == 300
    table = pq.read_table(out)
    rows = table.to_pylist()
    for key in OPTIONAL:
        assert present(rows, key) == present(expected, key), key
    assert sum(r.get("system") is not None for r in expected) + sum(r.get("history") is not None for r in expected)
    info = json.loads((out.parent / "dataset_info.json").read_text(encoding="utf-8"))["pairs"]
    assert set(info["columns"].values()) <= set(table.column_names)  # every named column is there
    original = [r.content_dict() for r in datamill.read(LF / name)]
    assert [r.content_dict() for r in datamill.read(out)] == original


@pytest.mark.parametrize("name", DEMOS)
def test_alpaca_parquet_loads_with_datasets(name, tmp_path):
    import datasets

    expected = reference(tmp_path, name)
    out = tmp_path / "out" / "pairs.parquet"
    datamill.convert(LF / name, out, "alpaca")
    ds = datasets.load_dataset("parquet", data_files=str(out), split="train", cache_dir=str(tmp_path / "c"))
    rows = ds.to_list()
    for key in OPTIONAL:
        assert present(rows, key) == present(expected, key), key


@pytest.mark.parametrize("name", DEMOS)
def test_saved_dataset_keeps_every_column(name, tmp_path):
    import datasets

    expected = reference(tmp_path, name)
    out = tmp_path / "out" / "pairs_ds"
    datamill.convert(LF / name, out, "alpaca")
    rows = datasets.load_from_disk(str(out)).to_list()
    for key in OPTIONAL:
        assert present(rows, key) == present(expected, key), key


def test_a_column_first_seen_after_the_first_batch_is_kept(tmp_path):
    """The schema is the union over the whole spooled output, past one batch, with nulls elsewhere."""
    path = tmp_path / "late.parquet"
    w = ParquetWriter(path)
    for i in range(BATCH + 5):
        w.write({"a": str(i), "late": [i]} if i == BATCH + 3 else {"a": str(i)})
    w.write({"a": "last", "only_last": "x"})
    w.commit()
    table = pq.read_table(path)
    assert table.column_names == ["a", "late", "only_last"]
    late = table.column("late").to_pylist()
    assert late[BATCH + 3] == [BATCH + 3] and late.count(None) == BATCH + 5
    assert table.column("only_last").to_pylist()[-1] == "x"
