"""`datamill ablate` and a recipe's train:/eval: blocks (recipes/end-to-end.yaml) on test_train's tiny Llama
(2 layers, a BPE tokenizer trained there): two arms — raw data with defects vs the same data cleaned by a
recipe — trained a few steps and scored on one held-out set; a kill in the second arm resumes without
retraining the first; the end-to-end recipe at its smallest N."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_train import ALPACA, one_thread, tiny  # noqa: F401  (module fixtures: the tiny model, one thread)
from typer.testing import CliRunner

from datamill.cli import app
from datamill.errors import DatamillError

ROOT = Path(__file__).resolve().parents[1]
CLEAN = """
name: cleaned
inputs: [raw.json]
steps:
  - {op: empty_answer_filter}
  - {op: exact_dedup, part: all}
output: {path: cleaned, format: alpaca}
"""


def _ablation(folder: Path, model: str) -> Path:
    """raw.json: 24 demo records, half of them broken (8 exact duplicates, 4 empty answers); the cleaned arm
    is the recipe that drops them; held out: 6 other demo records."""
    rows = json.loads(ALPACA.read_text(encoding="utf-8"))
    raw = rows[:12] + rows[:8] + [{**r, "output": ""} for r in rows[12:16]]
    (folder / "raw.json").write_text(json.dumps(raw), encoding="utf-8")
    (folder / "heldout.json").write_text(json.dumps(rows[900:906]), encoding="utf-8")
    (folder / "clean.yaml").write_text(CLEAN, encoding="utf-8")
    config = {
        "name": "raw-vs-cleaned",
        "seed": 7,
        "train": {"model": model, "max_steps": 4, "save_steps": 2, "logging_steps": 1, "cutoff_len": 128, "lr": 5e-3},
        "eval": {"data": "heldout.json", "max_new_tokens": 4},
        "arms": [{"name": "raw", "data": "raw.json"}, {"name": "cleaned", "recipe": "clean.yaml"}],
        "output": "ablation",
    }
    path = folder / "ablate.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    return path


def test_ablate_two_arms_and_resume_after_a_kill(tiny, tmp_path, monkeypatch):  # noqa: F811
    from llm_fakes import FakeLLM
    from transformers import TrainerCallback

    from datamill.train.ablate import ablate, load

    class Crash(Exception):
        pass

    class CrashInCleaned(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if args.output_dir.endswith("cleaned") and state.global_step == 3:
                raise Crash

    config = _ablation(tmp_path, tiny)
    with pytest.raises(Crash):
        ablate(load(config), callbacks=[CrashInCleaned()], progress=False)
    out = tmp_path / "ablation"
    partial = json.loads((out / "ablate.json").read_text())
    assert not partial["finished"] and [a["name"] for a in partial["arms"]] == ["raw"]
    assert (out / "arms" / "cleaned" / "checkpoint-2" / "trainer_state.json").is_file()
    first = {p: (out / "arms" / "raw" / p).stat().st_mtime_ns for p in ("train.json", "eval.json")}

    monkeypatch.setenv("DATAMILL_CACHE", str(tmp_path / "cache"))
    settings = json.loads(config.read_text())
    with FakeLLM(reply=json.dumps({"winner": "A"})) as fake:  # judging settings do not change the evaluation
        settings["eval"] |= {"judge": fake.base_url, "judge_model": "judge"}
        config.write_text(json.dumps(settings), encoding="utf-8")
        result = CliRunner().invoke(app, ["ablate", str(config)])
    assert result.exit_code == 0, result.output
    assert "arm 2/2 cleaned" in result.output and "lowest held-out loss" in result.output
    report = json.loads((out / "ablate.json").read_text())
    raw, cleaned = report["arms"]
    assert raw["status"] == "up to date" and raw["evaluation"] == "reused"  # the finished arm: not retrained
    assert {p: (out / "arms" / "raw" / p).stat().st_mtime_ns for p in first} == first
    assert cleaned["status"] == "resumed from checkpoint-2" and cleaned["evaluation"] == "evaluated"
    assert report["finished"] and report["best"] in ("raw", "cleaned") and report["seed"] == 7
    assert report["train"]["seed"] == 7 and report["train"]["max_steps"] == 4
    assert (raw["data"]["rows"], cleaned["data"]["rows"]) == (24, 12)  # duplicates and empty answers gone
    assert cleaned["source"]["outdir"] == str(tmp_path / "cleaned")
    for arm in (raw, cleaned):
        trained = json.loads(Path(arm["run"], "train.json").read_text())
        assert arm["train"]["global_step"] == trained["global_step"] == 4 and trained["config"]["seed"] == 7
        assert arm["train"]["loss_last"] == trained["losses"][-1]["loss"]
        evaluated = json.loads(Path(arm["run"], "eval.json").read_text())
        assert arm["heldout_loss"]["mean"] == evaluated["loss"]["mean"] and arm["heldout_loss"]["items"] == 6
        assert arm["rouge_l"]["items"] == 6 and arm["heldout_overlap"] == 0
    assert raw["heldout_loss"]["tokens"] == cleaned["heldout_loss"]["tokens"]  # the same held-out set
    assert raw["heldout_loss"]["mean"] != cleaned["heldout_loss"]["mean"]  # different data, different model
    judged = cleaned["judge_vs"]  # an "A" every time flips with the order: a tie (identical answers are too)
    assert "judge_vs" not in raw and judged["baseline"] == "raw" and judged["pairs"] == judged["ties"] == 6
    page = (out / "ablate.html").read_text()
    assert 'data-arm="raw"' in page and 'data-arm="cleaned"' in page and page.count("<svg") == 4

    again = CliRunner().invoke(app, ["ablate", str(config)])
    assert again.exit_code == 0, again.output
    assert [a["status"] for a in json.loads((out / "ablate.json").read_text())["arms"]] == ["up to date"] * 2


def test_ablation_file_problems_are_named_at_once(tmp_path):
    from datamill.train.ablate import load

    bad = {"eval": {"max_new_tokens": "many"}, "train": {"max_step": 3}, "arms": [{"name": "a", "data": "x"}]}
    (tmp_path / "a.yaml").write_text(json.dumps(bad), encoding="utf-8")
    with pytest.raises(DatamillError) as e:
        load(tmp_path / "a.yaml")
    for problem in (
        "arms: List should have at least 2 items",
        "eval: Value error, give data: the held-out set",
        "train.max_step: Unexpected keyword argument",
        "eval.max_new_tokens: Input should be a valid integer",
    ):
        assert problem in str(e.value)
    for arm, problem in (
        ({"name": "b", "data": "y", "recipe": "z"}, "either data:"),
        ({"name": "a", "data": "y"}, "must differ"),
    ):
        bad = {"eval": {"data": "h"}, "arms": [{"name": "a", "data": "x"}, arm]}
        (tmp_path / "a.yaml").write_text(json.dumps(bad), encoding="utf-8")
        with pytest.raises(DatamillError, match=problem):
            load(tmp_path / "a.yaml")


def test_a_recipes_train_and_eval_blocks_are_checked_at_load(tmp_path):
    from datamill.pipeline import recipe as recipes

    text = (ROOT / "recipes" / "end-to-end.yaml").read_text(encoding="utf-8")
    text = text.replace('max_steps: "${TRAIN_STEPS:-10}"', "max_step: 10").replace(
        "max_new_tokens:", "adapter: x\n  max_new_tokens:"
    )
    (tmp_path / "r.yaml").write_text(text.replace("../tests", str(ROOT / "tests")), encoding="utf-8")
    with pytest.raises(recipes.RecipeError) as e:
        recipes.load(tmp_path / "r.yaml")
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "max_step: 10" in row)
    assert f"line {line}: train.max_step: Unexpected keyword argument" in str(e.value)
    assert "eval.adapter: set by the train: block" in str(e.value)


def test_end_to_end_recipe_at_its_smallest(tiny, tmp_path, monkeypatch):  # noqa: F811
    """Self-Instruct on the embedded Gemma (one new task), clean, dedup, select 24, hold 4 out, two LoRA steps
    on the tiny model, evaluated — the shipped recipe, only its variables changed."""
    pytest.importorskip("llama_cpp")
    env = {"SYNTH_N": "1", "SELECT_N": "24", "HELDOUT_N": "4", "TRAIN_STEPS": "2", "CUTOFF_LEN": "128"}
    env |= {"EVAL_NEW_TOKENS": "4", "TRAIN_MODEL": tiny, "DATAMILL_CACHE": str(tmp_path / "cache")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    out = tmp_path / "e2e"
    args = ["run", str(ROOT / "recipes" / "end-to-end.yaml"), "-o", str(out), "--workers", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    stats = json.loads((out / "stats.json").read_text())
    ops = [s["op"] for s in stats["steps"]]
    assert ops[0] == "self_instruct" and ops[-3:] == ["select", "split", "output"] and stats["kept"] == 24
    held = [json.loads(line) for line in next(out.glob("data-validation-*")).read_text().splitlines()]
    assert len(held) == 4 and len(list(out.glob("data-train-*"))) == 1
    trained = json.loads((out / "train" / "train.json").read_text())
    assert trained["finished"] and trained["global_step"] == 2 and trained["data"]["rows"] == 20
    assert trained["model"] == tiny and trained["config"]["seed"] == 42  # the recipe's seed
    evaluated = json.loads((out / "train" / "eval.json").read_text())
    assert evaluated["loss"]["items"] == 4 and evaluated["generation"]["max_new_tokens"] == 4
    assert evaluated["data"]["paths"] == [str(p) for p in sorted(out.glob("data-validation-*"))]
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and again.output.count("up to date") == 3, again.output  # pipeline, training, eval
    assert json.loads((out / "train" / "eval.json").read_text()) == evaluated  # not evaluated again
