"""Media paths open from where the output is written (issue 16, item 3): LLaMA-Factory resolves
them against its dataset_dir (the output's folder), so paths relative to the input file break as
soon as the output lies elsewhere. Also: copying media beside the output, and `validate` flagging
a media file that does not exist."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from conftest import LF
from PIL import Image
from typer.testing import CliRunner

import datamill
from datamill.cli import app
from datamill.errors import DatamillError

SRC = LF / "mllm_demo.json"
CASES = [
    ("sharegpt", ".json"),
    ("messages", ".jsonl"),
    ("alpaca", ".parquet"),
    ("trl", ".jsonl"),
    ("datamill", ".jsonl"),
]


def image_paths(out):
    recs = list(datamill.read(out))
    assert recs and not [r for r in recs if isinstance(r, datamill.Quarantined)]
    return [p for r in recs for p in (r.images or [])]


def opens(folder, path):
    with Image.open(os.path.join(folder, path)) as im:
        im.verify()
    return True


@pytest.mark.parametrize(("target", "ext"), CASES)
def test_default_paths_open_from_the_output_folder(target, ext, tmp_path):
    out = tmp_path / "elsewhere" / "deep" / f"mm{ext}"
    assert datamill.convert(SRC, out, target).written == 6
    paths = image_paths(out)
    assert len(paths) == 8  # mllm_demo names 8 images
    assert all(not os.path.isabs(p) and opens(out.parent, p) for p in paths)


def test_relative_input_path_from_another_working_folder(tmp_path, monkeypatch):
    work = tmp_path / "work"
    shutil.copytree(LF / "mllm_demo_data", work / "in" / "mllm_demo_data")
    shutil.copy(SRC, work / "in" / "mllm_demo.json")
    monkeypatch.chdir(work)
    datamill.convert("in/mllm_demo.json", "out/mm.jsonl", "sharegpt")
    paths = image_paths(work / "out" / "mm.jsonl")
    assert set(paths) == {"../in/mllm_demo_data/1.jpg", "../in/mllm_demo_data/2.jpg", "../in/mllm_demo_data/3.jpg"}


def test_absolute_option(tmp_path):
    out = tmp_path / "o" / "mm.jsonl"
    datamill.convert(SRC, out, "messages", media_paths="absolute")
    paths = image_paths(out)
    assert all(os.path.isabs(p) and opens("/", p) for p in paths)
    assert {os.path.basename(p) for p in paths} == {"1.jpg", "2.jpg", "3.jpg"}


def test_keep_option_leaves_paths_as_read(tmp_path):
    out = tmp_path / "o" / "mm.jsonl"
    datamill.convert(SRC, out, "messages", media_paths="keep")
    original = [p for r in datamill.read(SRC) for p in r.images]
    assert image_paths(out) == original and original[0] == "mllm_demo_data/1.jpg"


def test_unknown_mode_and_keep_with_copy_are_refused(tmp_path):
    with pytest.raises(DatamillError, match="relative, absolute, keep"):
        datamill.convert(SRC, tmp_path / "a.jsonl", "messages", media_paths="nearby")
    with pytest.raises(DatamillError, match="copying media"):
        datamill.convert(SRC, tmp_path / "b.jsonl", "messages", media_paths="keep", copy_media=True)


def test_copy_media_makes_the_output_folder_self_contained(tmp_path):
    out = tmp_path / "o" / "mm.jsonl"
    summary = datamill.convert(SRC, out, "sharegpt", copy_media=True)
    assert summary.written == 6
    assert sorted(p.name for p in (out.parent / "mm_media" / "mllm_demo_data").iterdir()) == ["1.jpg", "2.jpg", "3.jpg"]
    assert set(image_paths(out)) == {f"mm_media/mllm_demo_data/{i}.jpg" for i in (1, 2, 3)}
    moved = tmp_path / "moved"
    shutil.copytree(out.parent, moved)  # the folder travels with its images
    assert all(opens(moved, p) for p in image_paths(moved / "mm.jsonl"))
    entry = json.loads((out.parent / "dataset_info.json").read_text())["mm"]
    assert entry["columns"]["images"] == "images"
    # the copies are datamill's output: converting again replaces them without --overwrite
    assert datamill.convert(SRC, out, "sharegpt", copy_media=True).written == 6


def test_copy_media_refuses_a_folder_it_did_not_write(tmp_path):
    (tmp_path / "mm_media").mkdir()
    (tmp_path / "mm_media" / "mine.txt").write_text("keep me")
    with pytest.raises(DatamillError, match="mm_media"):
        datamill.convert(SRC, tmp_path / "mm.jsonl", "sharegpt", copy_media=True)
    assert (tmp_path / "mm_media" / "mine.txt").read_text() == "keep me"


def test_copy_media_quarantines_a_record_whose_image_is_missing(tmp_path):
    src_dir = tmp_path / "in"
    shutil.copytree(LF / "mllm_demo_data", src_dir / "mllm_demo_data")
    shutil.copy(SRC, src_dir / "mllm_demo.json")
    (src_dir / "mllm_demo_data" / "2.jpg").unlink()
    users = [r for r in datamill.read(src_dir / "mllm_demo.json") if "mllm_demo_data/2.jpg" in r.images]
    summary = datamill.convert(src_dir / "mllm_demo.json", tmp_path / "o" / "mm.jsonl", "sharegpt", copy_media=True)
    assert summary.quarantined == len(users) > 0 and summary.written == 6 - len(users)
    assert all("2.jpg" in e for e in summary.examples)


def test_cli_media_options(tmp_path):
    runner = CliRunner()
    out = tmp_path / "o" / "mm.json"
    args = ["convert", str(SRC), str(out), "-t", "sharegpt", "--media-paths", "absolute", "--copy-media"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert all(p.startswith(str(out.parent / "mm_media")) for p in image_paths(out))


def test_validate_reports_a_missing_image_with_file_and_line(tmp_path):
    src_dir = tmp_path / "in"
    shutil.copytree(LF / "mllm_demo_data", src_dir / "mllm_demo_data")
    rows = json.loads(SRC.read_text(encoding="utf-8"))
    src = src_dir / "mm.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    runner = CliRunner()
    ok = runner.invoke(app, ["validate", str(src)])
    assert ok.exit_code == 0, ok.output
    (src_dir / "mllm_demo_data" / "3.jpg").unlink()
    bad = runner.invoke(app, ["validate", str(src), "--json"])
    assert bad.exit_code == 1
    problems = [json.loads(line) for line in bad.output.splitlines()]
    lines = [i + 1 for i, r in enumerate(rows) if "mllm_demo_data/3.jpg" in r["images"]]
    assert [p["where"] for p in problems] == [f"{src}:{n}" for n in lines]
    assert all(p["severity"] == "error" and "mllm_demo_data/3.jpg" in p["problem"] for p in problems)
    # --media-dir names another folder the paths start from
    elsewhere = tmp_path / "media"
    shutil.copytree(LF / "mllm_demo_data", elsewhere / "mllm_demo_data")
    assert runner.invoke(app, ["validate", str(src), "--media-dir", str(elsewhere)]).exit_code == 0


@pytest.mark.parametrize("mode", ["relative", "absolute"])
def test_a_runs_media_paths_open_from_its_output_folder(tmp_path, mode):
    import yaml

    from datamill.pipeline import recipe as recipes
    from datamill.pipeline.runner import Runner

    out = tmp_path / "run"
    body = {"inputs": [str(SRC)], "output": {"path": str(out), "format": "sharegpt", "media_paths": mode}}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(body), encoding="utf-8")
    Runner(recipes.load(tmp_path / "r.yaml")).run()
    paths = image_paths(out / "data-00000.jsonl")
    assert paths and all(opens(out, p) for p in paths)
    assert all(os.path.isabs(p) == (mode == "absolute") for p in paths)
