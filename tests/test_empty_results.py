"""Issue 16 item 4: a run or conversion that produces nothing usable says so and exits non-zero, and
registers no empty dataset for LLaMA-Factory to fail on later."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from datamill.cli import app

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run_cli(*args):
    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "300", "NO_COLOR": "1"})
    return result.exit_code, ANSI.sub("", result.output), result


@pytest.mark.parametrize(
    "source, steps, fmt",
    [
        ("alpaca_en_sample.json", [{"op": "length_filter", "part": "answer", "min": 10**9}], "sharegpt"),  # all dropped
        ("c4_sample.jsonl", [], "alpaca"),  # pretraining text: the output format cannot hold any of it
    ],
    ids=["every-record-dropped", "output-cannot-hold-any"],
)
def test_a_run_that_keeps_nothing_fails_and_registers_nothing(tmp_path, source, steps, fmt):
    out = tmp_path / "out"
    recipe = tmp_path / "r.yaml"
    body = {"inputs": [str(EXAMPLES / source)], "steps": steps, "output": {"path": str(out), "format": fmt}}
    recipe.write_text(yaml.safe_dump(body), encoding="utf-8")
    code, text, result = run_cli("run", recipe)
    assert code == 1 and "kept no record" in text, text
    assert re.search(r"kept no record \(at (length_filter|output): \d+ × ", " ".join(text.split())), text
    assert "Traceback" not in text
    assert not list(out.glob("data-*")) and not (out / "dataset_info.json").exists()
    stats = json.loads((out / "stats.json").read_text(encoding="utf-8"))
    assert stats["kept"] == 0 and stats["balanced"] and stats["dropped"] == stats["input"] > 0


def test_convert_of_an_empty_file_fails_with_the_reason(tmp_path):
    src = tmp_path / "empty.jsonl"
    src.write_bytes(b"")
    code, text, _ = run_cli("convert", src, tmp_path / "o" / "x.json", "--to", "alpaca")
    assert code == 1 and "holds no records" in text, text
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())
