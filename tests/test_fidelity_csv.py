"""CSV outputs never load wrong in LLaMA-Factory (issue 16, item 2): a CSV cell is a plain string
there, so nested layouts are refused up front and records with a list/object column (history,
images) are quarantined with the column named; flat alpaca rows still go to CSV."""

from __future__ import annotations

import json

import pytest
from conftest import LF
from typer.testing import CliRunner

import datamill
from datamill.cli import app
from datamill.errors import FileError

NESTED = {
    "sharegpt": "conversations",
    "messages": "messages",
    "conversation": "conversation",
    "xtuner": "conversation",
    "trl": "prompt",
}


@pytest.mark.parametrize(("target", "column"), NESTED.items())
def test_nested_formats_are_refused_before_anything_is_written(target, column, tmp_path):
    out = tmp_path / "out" / "chat.csv"
    with pytest.raises(FileError, match=column) as e:
        datamill.convert(LF / "alpaca_en_demo.json", out, target)
    assert ".jsonl" in str(e.value) and ".parquet" in str(e.value)
    assert not out.parent.exists() or not [p for p in out.parent.iterdir() if not p.name.startswith(".")]


def test_cli_refuses_sharegpt_csv_with_exit_1(tmp_path):
    result = CliRunner().invoke(
        app, ["convert", str(LF / "dpo_en_demo.json"), str(tmp_path / "o.csv"), "-t", "sharegpt"]
    )
    assert result.exit_code == 1
    assert "conversations" in result.output and ".jsonl" in result.output
    assert not (tmp_path / "dataset_info.json").exists()


def test_alpaca_history_records_are_quarantined_by_column(tmp_path):
    out = tmp_path / "pairs.csv"
    summary = datamill.convert(LF / "dpo_en_demo.json", out, "alpaca")
    assert (summary.read, summary.written, summary.quarantined) == (300, 194, 106)  # 106 records have a history
    quarantined = [json.loads(line) for line in (tmp_path / "pairs.quarantine.jsonl").read_text().splitlines()]
    assert all("'history'" in q["error"] and ".jsonl" in q["error"] for q in quarantined)
    back = [r for r in datamill.read(out)]
    assert len(back) == 194 and all(len(r.messages) == 1 for r in back)  # no turn lost
    entry = json.loads((tmp_path / "dataset_info.json").read_text())["pairs"]
    assert "history" not in entry["columns"] and entry["columns"]["system"] == "system"


def test_alpaca_images_are_quarantined_not_written_as_one_path(tmp_path):
    summary = datamill.convert(LF / "mllm_demo.json", tmp_path / "mm.csv", "alpaca")
    assert (summary.written, summary.quarantined) == (0, 6)
    assert all("'images'" in e for e in summary.examples)
    assert not (tmp_path / "mm.csv").exists() and not (tmp_path / "dataset_info.json").exists()


@pytest.mark.parametrize("name", ["alpaca_en_demo.json", "alpaca_zh_demo.json", "identity.json"])
def test_flat_alpaca_still_goes_to_csv(name, tmp_path):
    import datasets

    out = tmp_path / "flat.csv"
    summary = datamill.convert(LF / name, out, "alpaca")
    assert summary.quarantined == 0
    original = [r.content_dict() for r in datamill.read(LF / name)]
    assert [r.content_dict() for r in datamill.read(out)] == original
    ds = datasets.load_dataset("csv", data_files=str(out), split="train", cache_dir=str(tmp_path / "c"))
    assert len(ds) == len(original)


def test_a_recipe_writing_sharegpt_as_csv_is_refused_when_it_loads(tmp_path):
    import yaml

    from datamill.pipeline import recipe as recipes

    body = {"inputs": [str(LF / "alpaca_en_demo.json")], "output": {"format": "sharegpt", "container": "csv"}}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(body), encoding="utf-8")
    with pytest.raises(recipes.RecipeError, match="conversations.*container jsonl"):
        recipes.load(tmp_path / "r.yaml")
