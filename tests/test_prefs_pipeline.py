"""Preference data end to end through `datamill run`: the four Self-Instruct prediction files grouped by
prompt, judged by scripted judge servers (real HTTP on 127.0.0.1), turned into pairs / KTO examples and
written in TRL / alpaca / sharegpt formats that `datasets` and LLaMA-Factory load."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from conftest import DATA, ROOT
from llm_fakes import FakeLLM, _Handler

from datamill import formats
from datamill.formats import predictions
from datamill.pipeline import recipe as recipes
from datamill.pipeline.runner import Runner
from datamill.prefs import judge
from datamill.prefs.candidates import clip

SI = DATA / "self_instruct"
FILES = sorted(SI.glob("predictions_*.jsonl"))
RAMBLE = re.compile(r"\n\s*(Input|Output|Instruction|Task)\s*:")  # a base model running on into new examples
PAIR = re.compile(r'Answer A:\n"""\n(.*?)\n"""\n\nAnswer B:\n"""\n(.*)\n"""\s*$', re.S)
SINGLE = re.compile(r'Answer:\n"""\n(.*)\n"""\s*$', re.S)


@pytest.fixture(autouse=True)
def predictions_format(tmp_path, monkeypatch):
    """``predictions`` is registered in formats/__init__.py by the lead; until then the tests do it. The
    LLM cache goes to a temporary folder so answers of the scripted servers never leak into real runs."""
    monkeypatch.setitem(formats.FORMATS, "predictions", predictions.FORMAT)  # until the lead registers it
    monkeypatch.setenv("DATAMILL_CACHE", str(tmp_path / "cache"))


class _ScriptedJudge(_Handler):
    """Answers every chat request with ``fake.decide(last user message)``."""

    def do_POST(self) -> None:
        fake = self.server.fake
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        with fake.lock:
            fake.requests.append({"path": self.path, "body": body})
        user = [m for m in body["messages"] if m.get("role") == "user"][-1]["content"]
        choice = {"index": 0, "message": {"role": "assistant", "content": fake.decide(user)}, "finish_reason": "stop"}
        usage = {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16}
        self._json(
            200,
            {"id": "j", "object": "chat.completion", "model": body.get("model"), "choices": [choice], "usage": usage},
        )


def scripted_judge(decide: Callable[[str], str]) -> FakeLLM:
    fake = FakeLLM()
    fake.decide = decide
    fake.httpd.RequestHandlerClass = _ScriptedJudge
    return fake


def content_judge(user: str) -> str:
    """Position-blind: prefers the answer that does not run on into new made-up examples."""
    a, b = PAIR.search(user).groups()
    ra, rb = bool(RAMBLE.search(a)), bool(RAMBLE.search(b))
    winner = "tie" if ra == rb else ("B" if ra else "A")
    return json.dumps({"winner": winner, "reason": "stays on task" if winner != "tie" else "same quality"})


def content_scorer(user: str) -> str:
    (answer,) = SINGLE.search(user).groups()
    return json.dumps({"score": 2 if RAMBLE.search(answer) else 8, "reason": "scripted"})


def llm(fake: FakeLLM, **kw) -> dict:
    return {"backend": "openai", "base_url": fake.base_url, "model": "judge", "cache": False, "max_retries": 0, **kw}


def run(tmp_path: Path, steps: list[dict], output: dict, inputs=None, name="r") -> Runner:
    body = {
        "name": name,
        "seed": 3,
        "workers": 1,
        "chunk_size": 100,
        "inputs": inputs or [{"path": str(p), "format": "predictions"} for p in FILES],
        "steps": steps,
        "output": {"path": str(tmp_path / name), **output},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False, allow_unicode=True), encoding="utf-8")
    runner = Runner(recipes.load(path))
    runner.result = runner.run()
    assert runner.result.stats["balanced"]
    return runner


def step(runner: Runner, op: str) -> dict:
    return next(s for s in runner.result.stats["steps"] if s["op"] == op)


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def expected_davinci_pairs(max_chars: int = 1500) -> tuple[int, int]:
    """From the data alone: prompts where davinci rambles and text-davinci-003 does not (and the reverse),
    within the first ``max_chars`` the judge is shown."""

    def answers(model: str) -> list[str]:
        path = SI / f"predictions_{model}.jsonl"
        return [clip(json.loads(x)["response"].strip(), max_chars) for x in path.open(encoding="utf-8")]

    good, base = answers("text-davinci-003"), answers("davinci")
    pro = sum(bool(RAMBLE.search(b.strip())) and not RAMBLE.search(g.strip()) for g, b in zip(good, base, strict=True))
    con = sum(bool(RAMBLE.search(g.strip())) and not RAMBLE.search(b.strip()) for g, b in zip(good, base, strict=True))
    return pro, con


def test_group_answers_joins_the_four_files_and_accounts_for_every_part(tmp_path):
    runner = run(tmp_path, [{"op": "group_answers"}], {"format": "datamill"})
    st = step(runner, "group_answers")
    assert (st["in"], st["generated"], st["out"], st["dropped"]) == (1008, 252, 252, {"grouped": 1008})
    merged = lines(tmp_path / "r" / "data-00000.jsonl")
    models = {"davinci", "davinci-self-instruct", "text-davinci-001", "text-davinci-003"}
    assert all({c["model"] for c in m["meta"]["candidates"]} == models for m in merged)
    ids = {m["id"] for m in merged}
    dropped = lines(tmp_path / "r" / "dropped.jsonl")
    assert len(dropped) == 1008 and all(d["record"]["meta"]["grouped_into"] in ids for d in dropped)
    by_id = {m["id"]: m for m in merged}
    d0 = dropped[0]["record"]
    cand = next(c for c in by_id[d0["meta"]["grouped_into"]]["meta"]["candidates"] if c["id"] == d0["id"])
    assert cand["text"] == d0["messages"][-1]["content"]


def test_judge_that_always_prefers_the_first_answer_yields_only_ties(tmp_path):
    """Position bias: a judge answering "A" whatever it sees flips with the order, so every pair is a
    tie and nothing reaches the output; without the swap the bias would go straight into the data."""
    steps = [
        {"op": "group_answers"},
        {"op": "limit", "n": 30},
        {"op": "judge_pairwise", "models": ["text-davinci-003", "davinci"], "max_chars": 300},
        {"op": "make_pairs", "strategy": "judged"},
    ]
    with FakeLLM(reply='{"winner": "A", "reason": "the first one is better"}') as fake:
        steps[2]["llm"] = llm(fake)
        runner = run(tmp_path, steps, {"format": "trl"})
        assert fake.count == 60  # both orders of 30 pairs
        unswapped = [*steps[:2], {**steps[2], "swap": False}, steps[3]]
        biased = run(tmp_path, unswapped, {"format": "trl"}, name="biased")
    assert step(biased, "judge_pairwise")["counters"]["first_position_preferred"] == 30
    judged = step(runner, "judge_pairwise")["counters"]
    assert judged["position_inconsistent"] == 30 and judged["first_position_preferred"] == 60
    assert step(runner, "make_pairs")["dropped"] == {"tie: no consistent verdict": 30}
    assert runner.result.stats["kept"] == 0 and not (tmp_path / "r" / "data-00000.jsonl").exists()
    out = lines(tmp_path / "biased" / "data-00000.jsonl")
    assert len(out) == 30  # the unchecked judge's "always A" became 30 pairs


def test_text_davinci_003_vs_davinci_judged_by_a_scripted_judge_to_trl(tmp_path):
    pro, con = expected_davinci_pairs()
    steps = [
        {"op": "group_answers"},
        {"op": "judge_pairwise", "models": ["text-davinci-003", "davinci"], "max_chars": 1500},
        {"op": "make_pairs", "strategy": "judged"},
    ]
    with scripted_judge(content_judge) as fake:
        steps[1]["llm"] = llm(fake, concurrency=8)
        runner = run(tmp_path, steps, {"format": "trl", "container": "jsonl"})
    assert fake.count == 2 * 252
    c = step(runner, "judge_pairwise")["counters"]
    assert c.get("position_inconsistent", 0) == 0 and c["llm_requests"] == 504
    assert c["judged_tie"] == 252 - pro - con and c["shorter_preferred"] + c.get("longer_preferred", 0) == pro + con
    pairs = step(runner, "make_pairs")
    assert pairs["generated"] == pro + con == runner.result.stats["kept"] and pro > 150
    # agreement with the prior "text-davinci-003 beats davinci", read back from the dropped parents
    parents = [d["record"] for d in lines(tmp_path / "r" / "dropped.jsonl") if d["op"] == "make_pairs"]
    judgments = [j for p in parents for j in p["meta"]["judgments"]]
    report = judge.agreement(judgments, "text-davinci-003", "davinci")
    assert report["agree"] == pro and report["disagree"] == con and report["ties"] == 252 - pro - con
    from typer.testing import CliRunner

    from datamill.prefs.cli import prefs_app

    res = CliRunner().invoke(
        prefs_app, ["agreement", str(tmp_path / "r"), "--better", "text-davinci-003", "--worse", "davinci"]
    )
    assert res.exit_code == 0 and json.loads(res.stdout) == report

    from datasets import load_dataset

    ds = load_dataset("json", data_files=str(tmp_path / "r" / "data-00000.jsonl"), split="train")
    assert {"prompt", "chosen", "rejected"} <= set(ds.column_names) and len(ds) == pro + con
    row = ds[0]  # TRL's conversational preference shape
    assert row["prompt"][-1]["role"] == "user" and [m["role"] for m in row["chosen"]] == ["assistant"]
    assert row["rejected"][0]["role"] == "assistant" and row["chosen"][0]["content"] != row["rejected"][0]["content"]
    assert not RAMBLE.search(row["chosen"][0]["content"]) and RAMBLE.search(row["rejected"][0]["content"])


def test_pointwise_scores_best_vs_worst_to_alpaca_and_sharegpt_with_ranking_entry(tmp_path):
    steps = [
        {"op": "group_answers"},
        {"op": "limit", "n": 20},
        {"op": "judge_score", "max_chars": 800},
        {"op": "make_pairs", "strategy": "best_vs_worst", "margin": 3},
    ]
    with scripted_judge(content_scorer) as fake:
        steps[2]["llm"] = llm(fake, cache=True)
        alp = run(tmp_path, steps, {"format": "alpaca", "container": "json", "name": "dpo_alpaca"}, name="alp")
        sg = run(tmp_path, steps, {"format": "sharegpt", "container": "json", "name": "dpo_sg"}, name="sg")
    assert sg.result.stats["kept"] == alp.result.stats["kept"]
    assert fake.count == 80  # 20 prompts x 4 answers; the second run is answered from the cache
    scored = step(alp, "judge_score")["counters"]
    assert scored["judged"] == 80
    made = step(alp, "make_pairs")
    assert made["generated"] + made["dropped"].get("tie: best and worst are within the margin", 0) == 20
    info = json.loads((tmp_path / "alp" / "dataset_info.json").read_text())
    entry = info["dpo_alpaca"]
    assert entry["ranking"] is True and entry["columns"]["chosen"] == "chosen"
    rows = json.loads((tmp_path / "alp" / entry["file_name"]).read_text())
    assert len(rows) == made["generated"] > 0
    assert all(r["chosen"] and r["rejected"] and r["instruction"] for r in rows)
    sg_entry = json.loads((tmp_path / "sg" / "dataset_info.json").read_text())["dpo_sg"]
    assert sg_entry["ranking"] is True and sg_entry["formatting"] == "sharegpt"

    import lf_align  # LLaMA-Factory's own reading of a ranking entry (its parser and converters)

    for folder, name in (("alp", "dpo_alpaca"), ("sg", "dpo_sg")):
        aligned = lf_align.load(tmp_path / folder, name)
        assert len(aligned) == len(rows) and all(a["prompt"] and a["response"] for a in aligned)
        for a, r in zip(aligned, rows, strict=True):
            assert [m["content"] for m in a["response"]] == [r["chosen"], r["rejected"]]
            assert a["prompt"][-1]["role"] == "user" and a["prompt"][-1]["content"].startswith(r["instruction"])


def _feedback_rows(tmp_path: Path, rows: list[dict]) -> list[str]:
    path = tmp_path / "feedback.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    return [str(path)]


def _answer(prompt: str, text: str, **meta) -> dict:
    return {
        "id": "",
        "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": text}],
        "meta": meta,
    }


def test_votes_and_ratings_files_become_pairs_and_kto_examples(tmp_path):
    q1, q2, q3 = "法国的首都是哪里？", "2+2=?", "Say hi."
    rows = [
        _answer(q1, "巴黎。", model="m1", votes=["ann1", "ann2", "ann3"], rating=5),
        _answer(q1, "里昂。", model="m2", votes=["ann4"], rating=1),
        _answer(q2, "4", model="m1", votes=["ann1", "ann2"], rating=3),
        _answer(q2, "5", model="m2", votes=["ann3", "ann3", "ann4"], rating=2),  # ann3 counted once: a tie
        _answer(q3, "hi", model="m1", votes=[], rating=4),
    ]
    inputs = _feedback_rows(tmp_path, rows)
    pairs = run(
        tmp_path,
        [{"op": "group_answers"}, {"op": "make_pairs", "strategy": "best_vs_worst", "score": "votes"}],
        {"format": "trl"},
        inputs=inputs,
        name="votes",
    )
    assert step(pairs, "group_answers")["dropped"] == {"grouped": 4, "fewer than 2 answers to its prompt": 1}
    assert step(pairs, "make_pairs")["dropped"] == {
        "expanded into pairs": 1,
        "tie: best and worst are within the margin": 1,
    }
    (row,) = lines(tmp_path / "votes" / "data-00000.jsonl")
    assert row["chosen"][0]["content"] == "巴黎。" and row["rejected"][0]["content"] == "里昂。"
    kto = run(
        tmp_path,
        [{"op": "group_answers", "min_candidates": 1}, {"op": "make_kto", "field": "rating"}],
        {"format": "alpaca", "name": "kto"},
        inputs=inputs,
        name="kto",
    )
    out = lines(tmp_path / "kto" / "data-00000.jsonl")
    assert [(r["output"], r["kto_tag"]) for r in out] == [
        ("巴黎。", True),
        ("里昂。", False),
        ("5", False),
        ("hi", True),
    ]
    assert step(kto, "make_kto")["counters"]["unlabelled_candidates"] == 1  # the 3 is between thresholds
    entry = json.loads((tmp_path / "kto" / "dataset_info.json").read_text())["kto"]
    assert entry["columns"]["kto_tag"] == "kto_tag"
    import lf_align

    aligned = lf_align.load(tmp_path / "kto", "kto")  # LLaMA-Factory: desirable [answer, ""], undesirable ["", answer]
    assert [[m["content"] for m in a["response"]] for a in aligned] == [
        ["巴黎。", ""],
        ["", "里昂。"],
        ["", "5"],
        ["hi", ""],
    ]


def test_teacher_vs_student_sampling_to_pairs(tmp_path):
    rows = json.loads((DATA / "llamafactory" / "alpaca_en_demo.json").read_text(encoding="utf-8"))[:6]
    path = tmp_path / "sft.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    with FakeLLM(reply="A careful, complete answer.") as teacher, FakeLLM(reply="dunno") as student:
        steps = [
            {"op": "sample_answers", "n": 1, "label": "teacher", "keep_answer": False, "llm": llm(teacher)},
            {"op": "sample_answers", "n": 2, "label": "student", "llm": llm(student)},
            {"op": "make_pairs", "strategy": "prefer_models", "prefer_models": ["teacher", "student"]},
        ]
        runner = run(tmp_path, steps, {"format": "trl"}, inputs=[str(path)], name="ts")
        assert teacher.count == 6 and student.count == 12
    assert step(runner, "sample_answers")["counters"]["samples"] == 6
    student_step = [s for s in runner.result.stats["steps"] if s["op"] == "sample_answers"][1]
    assert student_step["counters"]["duplicate_samples"] == 6  # the same reply twice is one candidate
    out = lines(tmp_path / "ts" / "data-00000.jsonl")
    assert len(out) == 6
    assert all(
        r["chosen"][0]["content"].startswith("A careful") and r["rejected"][0]["content"] == "dunno" for r in out
    )


def test_shipped_recipes_validate_and_dpo_from_answers_runs_against_a_judge_server(tmp_path, monkeypatch):
    with scripted_judge(content_judge) as fake:
        monkeypatch.setenv("JUDGE_BASE_URL", fake.base_url)
        monkeypatch.setenv("JUDGE_BACKEND", "openai")
        monkeypatch.setenv("LIMIT", "1000")
        r = recipes.load(ROOT / "recipes" / "dpo-from-answers.yaml", output=str(tmp_path / "o"))  # reads tests/data
        assert sorted(Path(f.path).name for f in r.inputs) == [p.name for p in FILES]
        assert {f.format for f in r.inputs} == {"predictions"}
        assert [s.op for s in r.steps] == ["group_answers", "limit", "judge_pairwise", "make_pairs", "decontaminate"]
        sliced = []
        for f in r.inputs:  # the first 40 prompts of each file keep the test fast
            head = "".join(Path(f.path).read_text(encoding="utf-8").splitlines(keepends=True)[:40])
            (tmp_path / Path(f.path).name).write_text(head, encoding="utf-8")
            sliced.append(dataclasses.replace(f, path=tmp_path / Path(f.path).name))
        r.inputs = sliced
        r.workers = 1
        result = Runner(r).run()
        assert fake.count == 80
    assert result.stats["balanced"] and result.stats["input"] == 160
    assert result.stats["kept"] == sum(1 for line in result.outdir.joinpath("data-00000.jsonl").open()) > 25
    ts = recipes.load(ROOT / "recipes" / "dpo-teacher-student.yaml", output=str(tmp_path / "ts"))
    assert [s.op for s in ts.steps][-2:] == ["make_pairs", "decontaminate"]


def test_chinese_prompts_use_the_chinese_templates_and_bad_judge_answers_are_ties(tmp_path):
    import asyncio

    from datamill.llm import LLMClient, LLMConfig

    async def ask(fake: FakeLLM):
        async with LLMClient(LLMConfig(**llm(fake))) as client:
            cmp = await judge.compare(client, "用一句话介绍长城。", "长城是中国古代的军事防御工程。", "不知道。")
            score = await judge.score(client, "用一句话介绍长城。", "长城是中国古代的军事防御工程。")
            return cmp, score

    with scripted_judge(lambda u: '{"winner": "A", "reason": "更完整"}' if "回答 A" in u else '{"score": 7}') as fake:
        cmp, score = asyncio.run(ask(fake))
    users = [[m for m in r["body"]["messages"] if m["role"] == "user"][-1]["content"] for r in fake.requests]
    assert "哪个回答更好" in users[0] and "请评价回答" in users[2]
    assert (cmp.winner, cmp.consistent, cmp.reasons) == ("tie", False, ["更完整", "更完整"]) and score.score == 7

    steps = [
        {"op": "group_answers"},
        {"op": "limit", "n": 3},
        {"op": "judge_pairwise", "models": ["text-davinci-003", "davinci"], "swap": False},
        {"op": "make_pairs", "strategy": "judged"},
    ]
    with FakeLLM(reply="I think A is better.") as fake:  # never JSON, even when re-asked
        steps[2]["llm"] = llm(fake)
        runner = run(tmp_path, steps, {"format": "trl"})
    c = step(runner, "judge_pairwise")["counters"]
    assert c["judge_failed: invalid json"] == 3 and fake.count == 9  # 3 answers each, then given up
    assert step(runner, "make_pairs")["dropped"] == {"tie: no consistent verdict": 3}
