"""Generator steps in the pipeline (1 -> N accounting, LLM failures become drops, token usage in
stats.json), the LLM-judge quality score against a scripted judge server, and perplexity with the
real embedded model."""

from __future__ import annotations

import json
import re

import orjson
import pytest
from conftest import LF
from llm_fakes import FakeLLM
from test_pipeline import run, write_recipe

from datamill.errors import DatamillError
from datamill.io.writers import JsonlWriter
from datamill.ops.base import Generator, OpContext
from datamill.pipeline.chunks import _apply
from datamill.record import Message, Record
from datamill.results import Drop


def judge_reply(body: dict) -> str:
    """Scores an answer by its length (short answers are poor); answers mentioning BROKEN get prose."""
    user = [m for m in body["messages"] if m["role"] == "user"][0]["content"]  # re-asks append more turns
    answer = re.split(r"Answer:|回答：", user)[-1].strip().strip('"').strip()
    if "BROKEN" in answer:
        return "I think this answer is quite good overall."
    score = 1 if len(answer) < 60 else 4
    return json.dumps({"helpfulness": score, "correctness": score, "instruction_following": 5, "score": score,
                       "reason": "short" if score == 1 else "complete"})  # fmt: skip


@pytest.fixture
def sft_input(tmp_path):
    rows = json.loads((LF / "alpaca_en_demo.json").read_text(encoding="utf-8"))[:24]
    rows += json.loads((LF / "alpaca_zh_demo.json").read_text(encoding="utf-8"))[:6]
    rows[3]["output"] = "BROKEN " + rows[3]["output"]
    path = tmp_path / "sft.json"
    path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return path, rows


def test_quality_judge_scores_filters_and_accounts(tmp_path, sft_input):
    path, rows = sft_input
    with FakeLLM(reply=judge_reply) as fake:
        llm = {"backend": "openai", "base_url": fake.base_url, "model": "judge", "cache": False, "max_retries": 0}
        recipe = {
            "name": "judge",
            "inputs": [str(path)],
            "output": {"path": str(tmp_path / "out"), "format": "alpaca"},
            "steps": [{"op": "quality_judge", "llm": llm, "min_score": 3}],
        }
        runner = run(write_recipe(tmp_path, recipe))
        requests = list(fake.requests)
    stats = runner.result.stats
    step = stats["steps"][0]
    short = sum(len(r["output"]) < 60 and "BROKEN" not in r["output"] for r in rows)
    assert stats["balanced"] and stats["input"] == 30
    assert step["dropped"] == {"quality score 1 < 3": short, "llm: invalid json": 1}
    assert stats["kept"] == 30 - short - 1
    # the broken answer was asked three times (two re-asks), every other record once
    assert len(requests) == 29 + 3
    assert step["counters"]["llm_requests"] == 32 and step["counters"]["llm_prompt_tokens"] == 32 * 7
    assert step["counters"]["score_4"] == stats["kept"]
    zh_prompts = [r for r in requests if "指令" in r["body"]["messages"][-1]["content"]]
    assert len(zh_prompts) == 6  # the Chinese records got the Chinese rubric
    kept = [json.loads(line) for line in (tmp_path / "out" / "data-00000.jsonl").read_text().splitlines()]
    assert len(kept) == stats["kept"]
    dropped = [orjson.loads(line) for line in (tmp_path / "out" / "dropped.jsonl").read_bytes().splitlines()]
    assert {d["record"]["meta"]["quality"]["score"] for d in dropped if "quality" in d["record"]["meta"]} == {1}


def test_llm_failures_drop_records_and_the_run_finishes(tmp_path, sft_input):
    path, _ = sft_input
    with FakeLLM(default=("status", 500, {}, "overloaded")) as fake:
        llm = {"backend": "openai", "base_url": fake.base_url, "cache": False, "max_retries": 1, "backoff_base": 0.01}
        recipe = {  # the recipe-level llm section reaches every LLM step; a step's own settings win
            "name": "judge-down",
            "llm": {**llm, "max_retries": 9},
            "inputs": [str(path)],
            "output": {"path": str(tmp_path / "out"), "format": "alpaca"},
            "steps": [{"op": "quality_judge", "llm": {"max_retries": 1}}],
        }
        runner = run(write_recipe(tmp_path, recipe))
    stats = runner.result.stats
    (reason,) = stats["steps"][0]["dropped"]
    assert reason.startswith("llm: ") and stats["steps"][0]["dropped"][reason] == 30
    assert stats["kept"] == 0 and stats["balanced"]
    assert stats["steps"][0]["counters"]["llm_failures"] == 30
    assert stats["steps"][0]["counters"]["llm_http_requests"] == 60  # one retry each, not nine


def test_nothing_listening_stops_the_run_fast_and_it_resumes_later(tmp_path, sft_input):
    import socket

    path, _ = sft_input
    with socket.socket() as s:  # a free port with nothing listening on it
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    recipe = {
        "name": "judge-nowhere",
        "llm": {"backend": "openai", "base_url": f"http://127.0.0.1:{port}/v1", "cache": False,
                "max_retries": 1, "backoff_base": 0.01, "concurrency": 2},
        "inputs": [str(path)],
        "chunk_size": 10,
        "workers": 1,
        "output": {"path": str(tmp_path / "out"), "format": "alpaca"},
        "steps": [{"op": "quality_judge", "min_score": 3}],
    }  # fmt: skip
    path_recipe = write_recipe(tmp_path, recipe)
    with pytest.raises(DatamillError, match=f"cannot reach http://127.0.0.1:{port}/v1"):
        run(path_recipe)
    assert not (tmp_path / "out" / "stats.json").exists()  # nothing was dropped as if judged
    with FakeLLM(reply=judge_reply, port=port) as fake:  # the server is up now: same recipe, same port
        runner = run(path_recipe)
        assert fake.count == 29 + 3  # each record judged once (the prose answer re-asked twice)
    assert runner.result.stats["balanced"] and runner.result.stats["kept"] > 0


class _Variants(Generator):
    """Test generator: keeps each record, makes two variants, rejects one of them."""

    name = "test_variants"
    uses_llm = False

    async def agenerate(self, record, llm):
        a = Record(messages=[Message("user", record.part("prompt") + " (v1)")], meta={"parent": record.id})
        b = Record(messages=[Message("user", record.part("prompt") + " (v2)")], meta={"parent": record.id})
        return [record, a, Drop(b, "variant rejected")]


class _Loses(Generator):
    name = "test_loses"
    uses_llm = False

    async def agenerate(self, record, llm):
        return [Record(text="replacement")]


def test_generator_accounting(tmp_path):
    records = [Record(messages=[Message("user", f"q{i}"), Message("assistant", "a")], id=f"r{i}") for i in range(5)]
    ctx = OpContext(seed=1, step=0, workdir=tmp_path)
    dropped = JsonlWriter(tmp_path / "dropped.jsonl")
    out, stats = _apply(_Variants(_Variants.Config(), ctx), 0, records, dropped)
    assert stats["in"] == 5 and stats["generated"] == 10 and stats["out"] == 10
    assert stats["dropped"] == {"variant rejected": 5}
    assert [r.meta.get("parent") for r in out[:2]] == [None, "r0"] and all(r.id for r in out)
    with pytest.raises(Exception, match="neither kept nor dropped"):
        _apply(_Loses(_Loses.Config(), ctx), 0, records, dropped)
    dropped.abort()


def test_perplexity_with_the_embedded_model(tmp_path):
    pytest.importorskip("llama_cpp")
    from datamill.clean.model_scores import Perplexity

    op = Perplexity(Perplexity.Config(part="text", max_tokens=48, max_perplexity=1000), OpContext(1, 0, tmp_path))
    fluent = Record(text="The cat sat on the mat. It was a warm and sunny day, and the children played outside.")
    words = fluent.text.split()
    scrambled = Record(text=" ".join(sorted(words, key=lambda w: w[::-1])) + " zxq vvkp qqq")
    assert op.reason(fluent) is None
    op.reason(scrambled)
    assert fluent.meta["perplexity"] < scrambled.meta["perplexity"]
    assert op.take_counters()["tokens_scored"] > 20
