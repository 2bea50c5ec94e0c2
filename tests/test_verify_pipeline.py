"""recipes/reasoning-distill.yaml end to end against a scripted teacher (a local OpenAI-compatible server
whose answers to real GSM8K training questions are right for a known number of samples per question): the
kept answers, pass@k, drops and counters are exact, and a run in which no answer is right fails, saying so."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import DATA, ROOT
from llm_fakes import FakeLLM
from typer.testing import CliRunner

from datamill.cli import app
from datamill.pipeline import recipe as recipes
from datamill.pipeline.runner import Runner

RECIPE = ROOT / "recipes" / "reasoning-distill.yaml"
RIGHT = [4, 2, 1, 0, 3, 0]  # correct samples (of 4) for the first six training questions
SEED = 42  # the recipe's: sample i is asked with seed 42 + i


@pytest.fixture(autouse=True)
def qa(monkeypatch, tmp_path):
    monkeypatch.setenv("DATAMILL_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(ROOT)  # the recipe's benchmark path is relative to where datamill runs


def train(n: int) -> list[dict]:
    lines = (DATA / "gsm8k" / "train.jsonl").read_text(encoding="utf-8").splitlines()[:n]
    return [json.loads(x) for x in lines]


def teacher(right: list[int]) -> FakeLLM:
    """Answers question q with seed s rightly when s - 42 < right[q] (each answer worded apart, so none is
    a duplicate sample), wrongly otherwise."""
    gold = {row["question"]: int(row["answer"].rsplit("####", 1)[1].replace(",", "")) for row in train(len(right))}
    order = list(gold)

    def route(body: dict):
        question = body["messages"][-1]["content"]
        i = body["seed"] - SEED
        value = gold[question] if i < right[order.index(question)] else gold[question] + 100 + i
        return ("text", f"Working, try {i}: step by step it comes to {value}.\nThe answer is {value}.")

    return FakeLLM(route=route)


def use(monkeypatch, fake: FakeLLM, **env: str) -> None:
    monkeypatch.setenv("TEACHER_BACKEND", "openai")
    monkeypatch.setenv("TEACHER_BASE_URL", fake.base_url)
    for k, v in env.items():
        monkeypatch.setenv(k, v)


def test_recipe_keeps_exactly_the_right_answers(tmp_path, monkeypatch):
    with teacher(RIGHT) as fake:
        use(monkeypatch, fake, LIMIT="6", N="4")
        r = recipes.load(RECIPE, output=str(tmp_path / "o"))
        assert [s.op for s in r.steps] == [
            "limit",
            "set_system",
            "sample_answers",
            "verify_answers",
            "set_system",
            "decontaminate",
        ]
        r.workers = 1
        stats = Runner(r).run().stats
        assert fake.count == 24
    assert stats["balanced"] and stats["input"] == 200
    step = {s["op"]: s for s in stats["steps"]}
    c = step["verify_answers"]["counters"]
    assert c["candidates"] == 24 and c["correct"] == sum(RIGHT) == 10 and c["wrong"] == 14
    assert c["kept"] == 10 and "correct_not_kept" not in c
    assert c["prompts_solved"] == 4 and c["prompts_unsolved"] == 2 and c["prompts_always_solved"] == 1
    assert step["verify_answers"]["generated"] == 10 and step["decontaminate"]["out"] == 10
    assert stats["kept"] == 10
    rows = [json.loads(x) for x in (tmp_path / "o" / "data-00000.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 10
    assert all([m["from"] for m in row["conversations"]] == ["human", "gpt"] for row in rows)  # no system prompt
    assert all(row["conversations"][1]["value"].endswith(".") for row in rows)
    dropped = [json.loads(x) for x in (tmp_path / "o" / "dropped.jsonl").read_text(encoding="utf-8").splitlines()]
    verified = [d for d in dropped if d["op"] == "verify_answers"]
    assert sorted(d["reason"] for d in verified) == sorted(
        ["no correct answer among 4"] * 2 + [f"expanded into {n} verified answer{'s' * (n > 1)}" for n in RIGHT if n]
    )
    by_question = {d["record"]["messages"][-1]["content"]: d["record"]["meta"] for d in verified}
    for row, right in zip(train(6), RIGHT, strict=True):
        meta = by_question[row["question"]]
        assert [x["correct"] for x in meta["candidates"]] == [True] * right + [False] * (4 - right)
        assert meta["pass_at_k"]["pass@1"] == right / 4 and meta["pass_at_k"]["pass@4"] == (1.0 if right else 0.0)
        assert meta["difficulty"] == 1 - right / 4


def test_most_diverse_policy_from_the_command_line_environment(tmp_path, monkeypatch):
    with teacher(RIGHT) as fake:
        use(monkeypatch, fake, LIMIT="6", N="4", KEEP="most_diverse")
        r = recipes.load(RECIPE, output=str(tmp_path / "o"))
        r.workers = 1
        stats = Runner(r).run().stats
    c = next(s for s in stats["steps"] if s["op"] == "verify_answers")["counters"]
    assert c["kept"] == sum(min(2, n) for n in RIGHT) == 7 and c["correct_not_kept"] == 3


def test_a_run_where_no_answer_is_right_fails_and_says_why(tmp_path, monkeypatch):
    with teacher([0, 0]) as fake:
        use(monkeypatch, fake, LIMIT="2", N="4")
        out = tmp_path / "o"
        result = CliRunner().invoke(app, ["run", str(RECIPE), "-o", str(out), "--workers", "1"], env={"COLUMNS": "300"})
    text = " ".join(re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", result.output).split())
    assert result.exit_code == 1, text
    assert "kept no record (at verify_answers: 2 × no correct answer among 4)" in text
    assert not list(Path(out).glob("data-*"))
