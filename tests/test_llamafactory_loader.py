"""Every LLaMA-Factory demo file → alpaca and sharegpt as .json, .jsonl and .parquet, loaded back by
LLaMA-Factory's own parser → loader → converter (``lf_align``): prompts, responses, system prompts
and tools identical to the original file loaded the same way through LLaMA-Factory's own
dataset_info.json, every image path it resolves opening; impossible targets refused with nothing
registered (issue 16, "must show")."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import LF
from PIL import Image
from typer.testing import CliRunner

import datamill
from datamill.cli import app

DEMOS = {  # the demo's entry in LLaMA-Factory's own dataset_info.json → its file
    "alpaca_en_demo": "alpaca_en_demo.json",
    "alpaca_zh_demo": "alpaca_zh_demo.json",
    "glaive_toolcall_en_demo": "glaive_toolcall_en_demo.json",
    "glaive_toolcall_zh_demo": "glaive_toolcall_zh_demo.json",
    "identity": "identity.json",
    "mllm_demo": "mllm_demo.json",
    "dpo_en_demo": "dpo_en_demo.json",
    "dpo_zh_demo": "dpo_zh_demo.json",
    "kto_en_demo": "kto_en_demo.json",
}


@pytest.fixture(scope="module")
def originals(tmp_path_factory) -> dict:
    """Each demo as LLaMA-Factory loads it from a copy of its own folder (its cache stays out of the repo)."""
    import lf_align

    folder = tmp_path_factory.mktemp("lf")
    for file in [*DEMOS.values(), "dataset_info.json"]:
        shutil.copy(LF / file, folder / file)
    (folder / "mllm_demo_data").symlink_to(LF / "mllm_demo_data")
    return {name: lf_align.load(folder, name) for name in DEMOS}


def comparable(rows: list[dict]) -> list[tuple]:
    return [
        (
            json.dumps(r["prompt"], ensure_ascii=False, sort_keys=True),
            json.dumps(r["response"], ensure_ascii=False, sort_keys=True),
            r["system"],
            json.dumps(json.loads(r["tools"]), sort_keys=True) if r["tools"] else "",
        )
        for r in rows
    ]


@pytest.mark.parametrize("container", ["json", "jsonl", "parquet"])
@pytest.mark.parametrize("target", ["alpaca", "sharegpt"])
@pytest.mark.parametrize("name", DEMOS)
def test_demo_output_loads_in_llamafactory_as_the_original(name, target, container, originals, tmp_path):
    import lf_align

    out = tmp_path / "out" / f"out.{container}"
    summary = datamill.convert(LF / DEMOS[name], out, target)
    got = lf_align.load(out.parent, "out")
    quarantine = out.with_name("out.quarantine.jsonl")
    aside = {json.loads(line)["index"] for line in quarantine.open()} if quarantine.exists() else set()
    expected = [row for i, row in enumerate(originals[name]) if i not in aside]
    assert comparable(got) == comparable(expected)
    assert len(got) == summary.written == summary.read - len(aside)
    if aside:  # the only records a target may set aside: tool turns, which alpaca cannot hold
        assert target == "alpaca" and "toolcall" in name and len(aside) == summary.quarantined
    for row in got:
        for path in row["images"] or []:
            with Image.open(path) as im:  # resolved by LLaMA-Factory from the output's folder
                im.verify()
    assert sum(len(row["images"] or []) for row in got) == sum(len(row["images"] or []) for row in expected)


@pytest.mark.parametrize(
    ("src", "target", "out"),
    [
        ("c4_demo.jsonl", "alpaca", "c4.json"),  # pretraining text cannot be alpaca
        ("glaive_toolcall_en_demo.json", "sharegpt", "g.csv"),  # conversations in a CSV cell
        ("mllm_demo.json", "alpaca", "m.csv"),  # an image list in a CSV cell
    ],
)
def test_impossible_targets_are_refused_with_nothing_registered(src, target, out, tmp_path):
    result = CliRunner().invoke(app, ["convert", str(LF / src), str(tmp_path / out), "--to", target])
    assert result.exit_code == 1, result.output
    assert not (tmp_path / "dataset_info.json").exists()
    assert not (tmp_path / out).exists()
