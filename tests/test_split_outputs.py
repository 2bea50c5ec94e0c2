"""The runner writes one output per split (data-<split>-NNNNN) with a dataset_info.json entry each, and
the report + dataset card at the end of a run when the recipe asks."""

from __future__ import annotations

import json

import yaml
from conftest import LF
from test_pipeline import run, write_recipe

from datamill.report import write_handoff


def test_one_output_per_split_with_entries_and_report(tmp_path):
    recipe = {
        "name": "sft",
        "seed": 3,
        "inputs": [str(LF / "alpaca_en_demo.json")],
        "steps": [{"op": "split", "fractions": {"train": 0.9, "test": 0.1}}],
        "output": {"path": str(tmp_path / "out"), "format": "sharegpt", "shard_size": 500, "report": True},
    }
    runner = run(write_recipe(tmp_path, recipe))
    out = tmp_path / "out"
    stats = runner.result.stats
    assert stats["splits"] == {"test": 100, "train": 899} and stats["kept"] == 999
    names = sorted(p.name for p in out.glob("data-*"))
    assert names == ["data-test-00000.jsonl", "data-train-00000.jsonl", "data-train-00001.jsonl"]
    lines = {n: len((out / n).read_text(encoding="utf-8").splitlines()) for n in names}
    assert lines == {"data-test-00000.jsonl": 100, "data-train-00000.jsonl": 500, "data-train-00001.jsonl": 399}
    info = json.loads((out / "dataset_info.json").read_text(encoding="utf-8"))
    assert set(info) == {"sft_test", "sft_train-00000", "sft_train-00001"}
    assert info["sft_test"]["formatting"] == "sharegpt"
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "999" in html and "<script src=" not in html  # self-contained
    assert (out / "README.md").read_text(encoding="utf-8").startswith("---")  # HF dataset card front matter
    rerun = run(write_recipe(tmp_path, recipe))
    assert rerun.result.up_to_date  # the report files count as outputs of a finished run
    cfg = yaml.safe_load(write_handoff(out, dataset="sft_train-00000", eval_dataset="sft_test")[0].read_text("utf-8"))
    assert cfg["dataset"] == "sft_train-00000" and cfg["eval_dataset"] == "sft_test" and cfg["stage"] == "sft"
