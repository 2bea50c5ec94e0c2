"""Every synthesis recipe runs end to end through the pipeline (generator steps in worker chunks)
against the scripted local server: the funnel balances and the output is valid alpaca / sharegpt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from test_synth_fakes import llm_config, routed

from datamill.pipeline.recipe import load
from datamill.pipeline.runner import Runner

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def answer(prompt: str) -> str:
    if "Rewrite the prompt below" in prompt or "brand-new prompt" in prompt:
        current = prompt.split("Prompt:\n", 1)[1].split("\n\n", 1)[0]
        return f"{current} Explain each step and give one concrete example."
    if "Are these two instructions equal" in prompt:
        return "No"
    if "question-answer pairs that it answers" in prompt:
        doc = prompt.split('"""')[1].strip()
        return json.dumps({"pairs": [{"question": "What is the text about?", "answer": doc.split(".")[0]}]})
    if "fully supported by the document" in prompt:
        return '{"supported": true}'
    if "Write the user instruction" in prompt:
        return "Write a short article about the topic of this text."
    if "5-point scale" in prompt:
        return '{"score": 5}'
    if "用户的下一句话" in prompt or "Write the user's next message" in prompt:
        return "能再详细说说吗？" if "用户" in prompt else "Can you say more?"
    return "<<answer>>\na helpful answer about it in plain words"


@pytest.mark.parametrize(
    "name, op, fmt",
    [
        ("evol-instruct", "evol_instruct", "alpaca"),
        ("doc-qa", "doc_qa", "sharegpt"),
        ("backtranslate", "backtranslate_instruction", "alpaca"),
        ("multiturn", "multi_turn", "alpaca"),
        ("constraints", "add_constraints", "alpaca"),
        ("flan", "flan_templates", "alpaca"),
    ],
)
def test_recipe_runs_end_to_end(name, op, fmt, tmp_path):
    raw = yaml.safe_load((RECIPES / f"{name}.yaml").read_text(encoding="utf-8"))
    with routed(answer) as fake:
        for step in raw["steps"]:
            if step["op"] == op and op != "flan_templates":
                step["llm"] = llm_config(fake).model_dump(mode="json")
        raw["inputs"] = [
            str((RECIPES / p).resolve()) if isinstance(p, str) else {**p, "path": str((RECIPES / p["path"]).resolve())}
            for p in raw["inputs"]
        ]
        raw["output"]["path"] = str(tmp_path / "out")
        raw["workers"] = 1
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
        stats = Runner(load(path)).run().stats
    assert stats["balanced"] and raw["output"]["format"] == fmt
    step = next(s for s in stats["steps"] if s["op"] == op)
    assert step["in"] + step["generated"] == step["out"] + sum(step["dropped"].values())
    assert step["generated"] > 0
    assert step["counters"].get("llm_requests", 0) > 0 if op != "flan_templates" else fake.count == 0
    rows = [json.loads(x) for x in (tmp_path / "out" / "data-00000.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == stats["kept"] and rows
    if fmt == "alpaca":
        assert all(r["instruction"] and r["output"] for r in rows)
    else:
        assert all(r["conversations"][0]["from"] == "human" for r in rows)
    info = json.loads((tmp_path / "out" / "dataset_info.json").read_text(encoding="utf-8"))
    assert info  # LLaMA-Factory can load it
