"""Hostile and unlucky recipes (issue 15): YAML alias bombs are refused before they expand (items 10),
unreadable sub-directories and files are reported instead of silently skipped or crashing the run (5),
and nothing that came from ``${VAR}`` reaches the lock file, the console or an error message (9)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
import yaml
from conftest import LF, ROOT

from datamill.pipeline import recipe as recipes
from datamill.pipeline.runner import LOCK, Runner

INPUT = LF / "identity.json"


def _bomb(levels: int, width: int) -> str:
    """The "billion laughs": each level a list of ``width`` aliases of the one before."""
    lines = [f"a0: &a0 [{', '.join(['x'] * width)}]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    return f"inputs: [{INPUT}]\nllm:\n" + "".join(f"  {line}\n" for line in lines)


# ---------------------------------------------------------------------------------------- item 10


def test_alias_bomb_is_refused_with_its_line(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb(levels=6, width=10), encoding="utf-8")  # 10**6 nodes once expanded
    with pytest.raises(recipes.RecipeError, match=r"line 7: .*alias") as e:
        recipes.load(path)
    assert len(e.value.problems) == 1


def test_billion_laughs_costs_almost_nothing(tmp_path):
    """9 levels of 9 (~400 bytes) would be 387 million nodes: refused before any of them is built."""
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb(levels=9, width=9), encoding="utf-8")
    tracemalloc.start()
    try:
        with pytest.raises(recipes.RecipeError, match="alias"):
            recipes.load(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 << 20


def test_recursive_alias_is_refused(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text(f"inputs: [{INPUT}]\nllm:\n  extra: &loop [1, *loop]\n", encoding="utf-8")
    with pytest.raises(recipes.RecipeError, match=r"line 3: an alias .* refers to the structure it sits in"):
        recipes.load(path)


def test_ordinary_anchors_and_merge_keys_still_work(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text(
        f"inputs: [{INPUT}]\n"
        "llm: &llm {backend: openai, model: m1, temperature: 0.5}\n"
        "steps:\n"
        "  - {op: paraphrase, llm: {<<: *llm, model: m2}}\n"
        "  - {op: paraphrase, llm: *llm}\n",
        encoding="utf-8",
    )
    r = recipes.load(path)
    assert [s.config.llm.model for s in r.steps] == ["m2", "m1"]
    assert r.steps[0].config.llm.temperature == 0.5


# ---------------------------------------------------------------------------------------- item 5


def _deny(monkeypatch, *denied: Path) -> None:
    """Make ``denied`` fail as they would for a user without read permission (the tests run as root,
    for whom chmod 000 changes nothing): listing a directory, opening a file → PermissionError."""
    names = {os.fspath(p) for p in denied}
    real_scandir, real_open = os.scandir, io.open

    def scandir(path="."):
        if isinstance(path, str | Path) and os.fspath(path) in names:
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    def open_(file, *args, **kwargs):
        if isinstance(file, str | Path) and os.fspath(file) in names:
            raise PermissionError(13, "Permission denied", os.fspath(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(io, "open", open_)
    monkeypatch.setattr("builtins.open", open_)


@pytest.fixture
def tree(tmp_path) -> Path:
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    (d / "a.json").write_bytes(INPUT.read_bytes())
    (d / "sub" / "b.json").write_bytes(INPUT.read_bytes())
    (d / "c.json").write_bytes(INPUT.read_bytes())
    return d


def _recipe(tmp_path: Path, inputs: list[str], **extra) -> Path:
    body = {"inputs": inputs, "output": {"path": str(tmp_path / "out"), "format": "alpaca"}, **extra}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(body), encoding="utf-8")
    return path


def test_unreadable_subdirectory_is_reported_not_skipped(tmp_path, tree, monkeypatch):
    _deny(monkeypatch, tree / "sub")
    r = recipes.load(_recipe(tmp_path, [str(tree)]))
    assert [f.path.name for f in r.inputs] == ["a.json", "c.json"]
    assert r.unreadable == [{"file": str(tree / "sub"), "error": "cannot list the directory: Permission denied"}]


def test_unreadable_directory_under_a_glob_is_reported(tmp_path, tree, monkeypatch):
    _deny(monkeypatch, tree / "sub")
    r = recipes.load(_recipe(tmp_path, [f"{tree}/**/*.json"]))
    assert [f.path.name for f in r.inputs] == ["a.json", "c.json"]
    assert [u["file"] for u in r.unreadable] == [str(tree / "sub")]


def test_unreadable_file_is_reported_and_the_run_goes_on(tmp_path, tree, monkeypatch):
    _deny(monkeypatch, tree / "c.json")
    r = recipes.load(_recipe(tmp_path, [str(tree), str(tree / "c.json")]))
    assert [f.path.name for f in r.inputs] == ["a.json", "b.json"]
    assert r.unreadable == [{"file": str(tree / "c.json"), "error": "cannot read: Permission denied"}]
    result = Runner(r).run()  # before: PermissionError from fingerprinting the inputs
    assert result.stats["input"] == 2 * len(json.loads(INPUT.read_text(encoding="utf-8")))


def test_broken_symlink_in_a_directory_is_reported(tmp_path, tree):
    (tree / "gone.json").symlink_to(tree / "nowhere.json")
    r = recipes.load(_recipe(tmp_path, [str(tree)]))
    assert len(r.inputs) == 3
    assert r.unreadable == [{"file": str(tree / "gone.json"), "error": "broken symbolic link (its target is missing)"}]


def test_nothing_readable_is_an_error_naming_why(tmp_path, tree, monkeypatch):
    _deny(monkeypatch, tree / "sub")
    with pytest.raises(recipes.RecipeError, match=r"no readable file.*sub: cannot list the directory"):
        recipes.load(_recipe(tmp_path, [str(tree / "sub")]))


# ---------------------------------------------------------------------------------------- item 9

SECRETS = {
    "DM_T_KEY": "sk-top-level-header-0001",
    "DM_T_EXTRA": "sk-top-level-extra-0002",
    "DM_T_LISTED": "sk-nested-in-a-list-0003",
    "DM_T_STEP": "sk-step-level-0004",
}


def test_no_env_value_reaches_the_lock(tmp_path, monkeypatch):
    data = (tmp_path / "private-data-dir").resolve()
    data.mkdir()
    (data / "identity.json").write_bytes(INPUT.read_bytes())
    for name, value in {**SECRETS, "DM_T_DATA": str(data)}.items():
        monkeypatch.setenv(name, value)
    body = {
        "inputs": ["${DM_T_DATA}/identity.json"],
        "llm": {
            "backend": "openai",
            "headers": {"X-Api-Key": "${DM_T_KEY}"},
            "extra": {"auth": {"token": "Bearer ${DM_T_EXTRA}"}, "keys": ["plain", "${DM_T_LISTED}"]},
        },
        "steps": [
            {"op": "paraphrase"},
            {"op": "paraphrase", "llm": {"headers": {"Authorization": "Bearer ${DM_T_STEP}"}}},  # replaces headers
        ],
        "output": {"path": str(tmp_path / "out"), "format": "alpaca"},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(body), encoding="utf-8")
    r = recipes.load(path)
    top, own = (s.config.llm for s in r.steps)
    assert top.headers == {"X-Api-Key": SECRETS["DM_T_KEY"]} and top.extra["keys"] == ["plain", SECRETS["DM_T_LISTED"]]
    assert own.headers == {"Authorization": f"Bearer {SECRETS['DM_T_STEP']}"}
    runner = Runner(r)
    runner.outdir.mkdir()
    runner._write_lock([])
    text = (runner.outdir / LOCK).read_text(encoding="utf-8")
    leaked = [name for name, value in {**SECRETS, "DM_T_DATA": str(data)}.items() if value in text]
    assert leaked == []
    lock = yaml.safe_load(text)
    top, own = (s["llm"] for s in lock["resolved"]["steps"])
    assert top["headers"] == {"X-Api-Key": "${DM_T_KEY}"} and own["headers"] == {"Authorization": "Bearer ${DM_T_STEP}"}
    assert (
        top["extra"] == own["extra"] == {"auth": {"token": "Bearer ${DM_T_EXTRA}"}, "keys": ["plain", "${DM_T_LISTED}"]}
    )
    assert top["backend"] == own["backend"] == "openai" and top["timeout"] == 60.0  # resolved: defaults filled in
    assert lock["resolved"]["inputs"][0]["path"] == "${DM_T_DATA}/identity.json"
    assert lock["input_fingerprints"][0]["path"] == "${DM_T_DATA}/identity.json"


def test_short_env_values_do_not_rewrite_the_lock(tmp_path, monkeypatch):
    """``${WORKERS}`` = "1" must not turn every 1 in a path into ``${WORKERS}``."""
    monkeypatch.setenv("DM_T_N", "1")
    d = tmp_path / "in1"
    d.mkdir()
    (d / "file1.json").write_bytes(INPUT.read_bytes())
    r = recipes.load(_recipe(tmp_path, [str(d)], steps=[{"op": "limit", "n": "${DM_T_N}"}]))
    runner = Runner(r)
    runner.outdir.mkdir()
    runner._write_lock([])
    lock = yaml.safe_load((runner.outdir / LOCK).read_text(encoding="utf-8"))
    assert lock["resolved"]["inputs"][0]["path"] == str(d / "file1.json")
    assert lock["resolved"]["steps"][0]["n"] == "${DM_T_N}"


def test_recipe_errors_do_not_print_env_values(tmp_path, monkeypatch):
    monkeypatch.setenv("DM_T_DIR", str(tmp_path / "secret-location"))
    monkeypatch.setenv("DM_T_FMT", "sk-format-0005")
    path = _recipe(tmp_path, ["${DM_T_DIR}/missing.jsonl", {"path": str(INPUT), "format": "${DM_T_FMT}"}])
    with pytest.raises(recipes.RecipeError) as e:
        recipes.load(path)
    message = str(e.value)
    assert "${DM_T_DIR}/missing.jsonl" in message and "${DM_T_FMT}" in message
    assert "secret-location" not in message and "sk-format-0005" not in message


def test_run_console_does_not_print_env_values(tmp_path):
    body = {
        "inputs": [str(INPUT), {"path": "${DM_T_OPT}/absent.json", "optional": True}],
        "steps": [{"op": "fill_placeholders", "values": {"name": "${DM_T_NAME}", "author": "x"}}],
        "output": {"path": str(tmp_path / "out"), "format": "alpaca"},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(body), encoding="utf-8")
    env = {**os.environ, "DM_T_OPT": str(tmp_path / "hidden-place"), "DM_T_NAME": "sk-name-0006"}
    proc = subprocess.run(
        [sys.executable, "-m", "datamill", "run", str(path)], capture_output=True, text=True, env=env, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr
    console = proc.stdout + proc.stderr
    assert "${DM_T_OPT}/absent.json" in console
    assert "hidden-place" not in console and "sk-name-0006" not in console
