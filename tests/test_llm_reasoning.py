"""Reasoning models against a scripted reasoning server on 127.0.0.1: the thinking — a
``reasoning_content`` / ``reasoning`` field, ``<think>…</think>`` in the content, only ``</think>``,
an unclosed ``<think>`` at max_tokens — is kept apart from the answer; judges and structured steps
parse the answer alone (the thinking holds braces and a fake verdict); the step option
``reasoning: drop | keep | field`` writes exactly what it promises through the pipeline; reasoning
tokens are counted, reported or estimated; the cache keeps the thinking."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from pathlib import Path

import pytest
import yaml
from llm_fakes import FakeLLM

from datamill.llm import Cache, LLMClient, LLMConfig, NoAnswer, generate_json
from datamill.llm.reasoning import TRUNCATED, UNANSWERED, estimate_tokens, split
from datamill.pipeline import recipe as recipes
from datamill.pipeline.runner import Runner

THOUGHT = 'The user wants a score. A first guess: {"score": 1} — no. { an open brace, and "a quote'
ANSWER = "Steep green tea at 80 °C for two minutes."
FORMS = ["tags", "leading_whitespace", "closing_tag_only", "reasoning_content", "reasoning"]

# LLaMA-Factory 0.9.5, llamafactory/data/template.py: register_template's default thought_words (those of
# qwen3, qwen3_5, deepseekr1 …), Template.remove_thought, and ReasoningTemplate's test for a turn that
# already has its thought (it then adds no empty one).
LF_THOUGHT = ("<think>\n", "\n</think>\n\n")
LF_PATTERN = re.compile(f"{re.escape(LF_THOUGHT[0])}(.*?){re.escape(LF_THOUGHT[1])}", re.DOTALL)


def lf_remove_thought(content: str) -> str:
    return re.sub(LF_PATTERN, "", content).lstrip("\n")


def lf_has_thought(content: str) -> bool:
    return LF_THOUGHT[0].strip() in content or LF_THOUGHT[1].strip() in content


def said(form: str, thought: str, answer: str, **extra) -> tuple:
    """A FakeLLM behaviour: ``answer`` after ``thought``, the way one kind of server sends it."""
    fields = {
        "tags": {"content": f"<think>\n{thought}\n</think>\n\n{answer}"},
        "leading_whitespace": {"content": f"\n\n  <think>{thought}</think>{answer}"},
        "closing_tag_only": {"content": f"{thought}\n</think>\n\n{answer}"},  # <think> was in the prompt
        "reasoning_content": {"content": answer, "reasoning_content": thought},
        "reasoning": {"content": answer, "reasoning": thought},
    }[form]
    return ("message", fields, extra)


def truncated(form: str, thought: str) -> tuple:
    """Still thinking when max_tokens ran out: no answer."""
    fields = {"content": f"<think>\n{thought}"} if form == "tags" else {"content": None, "reasoning_content": thought}
    return ("message", fields, {"finish_reason": "length"})


def client(fake: FakeLLM, **kw) -> LLMClient:
    cfg = {"backend": "openai", "base_url": fake.base_url, "cache": False, "max_retries": 3, "backoff_base": 0.01}
    return LLMClient(LLMConfig(**{**cfg, **kw}))


def chat(c: LLMClient, prompt: str = "hi"):
    async def go():
        async with c:
            return await c.chat(prompt)

    return asyncio.run(go())


# ---------------------------------------------------------------------------------------------- the client


@pytest.mark.parametrize("form", FORMS)
def test_the_answer_comes_without_the_thinking(form):
    with FakeLLM([said(form, THOUGHT, ANSWER)]) as fake:
        out = chat(client(fake))
    assert out.text == ANSWER
    assert out.reasoning == THOUGHT
    assert fake.count == 1


def test_a_reply_without_thinking_is_unchanged():
    content = "  Use </b> to close a bold tag; <think> alone is text here.  "
    with FakeLLM([("text", content)]) as fake:
        c = client(fake)
        out = chat(c)
    assert out.text == content and out.reasoning is None and out.reasonings == []
    assert c.usage.reasoning_tokens == 0


def test_split_rules():
    assert split("<think>a</think>b") == ("b", "a")
    assert split("<think>\n\n</think>\n\nb") == ("b", "")  # an empty think block (thinking switched off)
    assert split("a</think>b") == ("b", "a")
    assert split("x <think>a</think> b") == ("x <think>a</think> b", None)  # not a leading block
    assert split("<think>still going") == ("", "still going")
    assert split(None, "t") == ("", "t") and split(None, None) == (None, None)
    assert split("b", "") == ("b", None)  # an empty reasoning field: nothing reported
    assert split("<think>b</think>c", "a") == ("c", "a\n\nb")


@pytest.mark.parametrize("form", ["tags", "reasoning_content"])
def test_thinking_cut_off_at_max_tokens_is_no_answer(form):
    with FakeLLM([truncated(form, THOUGHT)]) as fake:
        c = client(fake, max_tokens=64)
        with pytest.raises(NoAnswer) as e:
            chat(c)
    assert e.value.reason == TRUNCATED == "reasoning truncated at max_tokens: no answer"
    assert "max_tokens=64" in str(e.value)
    assert e.value.completion.reasoning == THOUGHT and e.value.completion.text == ""
    assert fake.count == 1  # the same request would think the same way: not retried
    assert c.usage.failures == 1 and c.usage.errors == {TRUNCATED: 1}


def test_thinking_then_nothing_is_no_answer_and_content_null_alone_is_retried():
    with FakeLLM([("message", {"content": "", "reasoning": THOUGHT})]) as fake, pytest.raises(NoAnswer) as e:
        chat(client(fake))
    assert e.value.reason == UNANSWERED
    with FakeLLM([("message", {"content": None}), "ok"]) as fake:  # no thinking either: a bad reply
        out = chat(client(fake))
    assert out.text == "echo: hi" and fake.count == 2


def test_reasoning_tokens_reported_or_estimated():
    assert estimate_tokens("abcd" * 10) == 10 and estimate_tokens("想一想") == 3 and estimate_tokens("ab想") == 2
    reported = {"prompt_tokens": 9, "completion_tokens": 60, "completion_tokens_details": {"reasoning_tokens": 41}}
    zero = {"prompt_tokens": 9, "completion_tokens": 60, "completion_tokens_details": {"reasoning_tokens": 0}}
    script = [
        said("reasoning_content", THOUGHT, ANSWER, usage=reported),
        said("tags", THOUGHT, ANSWER),  # no details: estimated from the text
        said("reasoning", THOUGHT, ANSWER, usage=zero),  # a 0 next to reasoning text: not counted, estimated
        ("text", "plain"),
    ]
    with FakeLLM(script) as fake:
        c = client(fake)

        async def go():
            async with c:
                return [await c.chat(f"q{i}") for i in range(4)]

        outs = asyncio.run(go())
    est = estimate_tokens(THOUGHT)
    assert [o.reasoning_tokens for o in outs] == [41, est, est, 0]
    assert [o.reasoning_tokens_estimated for o in outs] == [False, True, True, False]
    u = c.usage.to_dict()
    assert u["reasoning_tokens"] == 41 + 2 * est and u["reasoning_tokens_estimated"] == 2 * est
    assert u["completion_tokens"] == 60 + 3 + 60 + 3


# ----------------------------------------------------------------------------------------------- the cache


def entries(directory: Path) -> list[tuple[str, dict]]:
    with sqlite3.connect(directory / "cache.sqlite") as db:
        return [(k, json.loads(v)) for k, v in db.execute("SELECT key, value FROM entries")]


def test_cache_keeps_the_thinking_and_reads_old_entries(tmp_path):
    with FakeLLM([said("reasoning_content", THOUGHT, ANSWER), ("text", "plain")]) as fake:
        for _ in range(2):  # the second pass is served from the cache
            c = client(fake, cache=True, cache_dir=str(tmp_path))
            first, second = chat(c, "one"), chat(client(fake, cache=True, cache_dir=str(tmp_path)), "two")
            assert (first.text, first.reasoning, second.text, second.reasoning) == (ANSWER, THOUGHT, "plain", None)
        assert fake.count == 2
    assert first.cached and c.usage.http_requests == 0
    stored = {v["texts"][0]: v for _, v in entries(tmp_path)}
    assert stored[ANSWER]["reasonings"] == [THOUGHT]
    assert set(stored["plain"]) == {"texts", "finish_reasons", "prompt_tokens", "completion_tokens", "model"}

    # an entry an older datamill wrote from a reasoning model: the raw think block in its texts
    key = next(k for k, v in entries(tmp_path) if v["texts"] == ["plain"])
    old = {"texts": [f"<think>\n{THOUGHT}\n</think>\n\n{ANSWER}"], "finish_reasons": ["stop"], "prompt_tokens": 1,
           "completion_tokens": 2, "model": "m"}  # fmt: skip
    cache = Cache(tmp_path)
    cache.put(key, old)
    cache.close()
    with FakeLLM() as fake:
        out = chat(client(fake, cache=True, cache_dir=str(tmp_path)), "two")
    assert (out.text, out.reasoning, fake.count) == (ANSWER, THOUGHT, 0)


def test_a_truncated_reply_is_cached_and_stays_no_answer(tmp_path):
    with FakeLLM([truncated("tags", THOUGHT)]) as fake:
        for _ in range(2):
            with pytest.raises(NoAnswer):
                chat(client(fake, cache=True, cache_dir=str(tmp_path)))
    assert fake.count == 1


# -------------------------------------------------------------------------------- structured output, judges


@pytest.mark.parametrize("form", FORMS)
def test_structured_output_parses_the_answer_not_the_thinking(form):
    schema = {"type": "object", "properties": {"score": {"type": "integer"}}, "required": ["score"]}
    with FakeLLM(default=said(form, THOUGHT, 'Here: {"score": 5}')) as fake:
        c = client(fake)

        async def go():
            async with c:
                return [await generate_json(c, f"rate {i}", schema) for i in range(3)]

        assert asyncio.run(go()) == [{"score": 5}] * 3
    assert fake.count == 3  # right the first time: no re-ask


def write_json(path: Path, rows: list[dict]) -> str:
    path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return str(path)


def run_recipe(tmp_path: Path, name: str, inputs: list[str], steps: list[dict]) -> tuple[dict, list[dict], list[dict]]:
    """Run a recipe through the pipeline: (stats, output rows, dropped rows)."""
    out = tmp_path / name
    body = {"name": name, "seed": 3, "workers": 1, "inputs": inputs, "steps": steps,
            "output": {"path": str(out), "format": "datamill"}}  # fmt: skip
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False, allow_unicode=True), encoding="utf-8")
    stats = Runner(recipes.load(path)).run().stats
    assert stats["balanced"]

    def rows(p: Path) -> list[dict]:
        return [json.loads(x) for x in p.read_text(encoding="utf-8").splitlines() if x.strip()] if p.exists() else []

    return stats, rows(out / "data-00000.jsonl"), rows(out / "dropped.jsonl")


def llm(fake: FakeLLM) -> dict:
    return {"backend": "openai", "base_url": fake.base_url, "model": "r1", "cache": False, "max_retries": 0}


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DATAMILL_CACHE", str(tmp_path / "cache"))


@pytest.mark.parametrize("form", FORMS)
def test_judge_step_scores_by_the_answer(form, tmp_path):
    fake_rubric = {"helpfulness": 1, "correctness": 1, "instruction_following": 1, "score": 1, "reason": "x"}
    real = {"helpfulness": 5, "correctness": 5, "instruction_following": 5, "score": 5, "reason": "good"}
    thought = f"Draft: {json.dumps(fake_rubric)} hmm {{ not sure }}"
    rows = [{"instruction": f"Question {i}?", "output": f"Answer {i}."} for i in range(4)]
    with FakeLLM(default=said(form, thought, json.dumps(real))) as fake:
        stats, out, dropped = run_recipe(
            tmp_path, "judge", [write_json(tmp_path / "in.json", rows)],
            [{"op": "quality_judge", "min_score": 3, "llm": llm(fake)}],
        )  # fmt: skip
    assert len(out) == 4 and not dropped  # the fake {"score": 1} would have dropped every one
    assert [r["meta"]["quality"]["score"] for r in out] == [5] * 4
    assert fake.count == 4


# ----------------------------------------------------------------------------------- reasoning: drop|keep|field

EVOLVED = " Explain each step and give one concrete example."
EVO_THOUGHT = 'Make it harder. Maybe {"instruction": "fake"}?'
TEA, BREAD, MOON = (
    ("Brew tea: heat water to 80 °C, steep two minutes.", "Tea wants cooler water than coffee."),
    ("Mix flour, water and salt; bake 30 minutes.", "Bread: flour, water, salt, heat."),
    ("", "The moon has phases because"),
)


def evol_route(body: dict) -> tuple:
    prompt = "\n".join(m["content"] for m in body["messages"])
    if "Rewrite the prompt below" in prompt:
        current = prompt.split("Prompt:\n", 1)[1].split("\n\n", 1)[0]
        return said("tags", EVO_THOUGHT, current + EVOLVED)
    if "moon" in prompt:
        return truncated("tags", MOON[1])
    if "tea" in prompt:
        usage = {"prompt_tokens": 5, "completion_tokens": 50, "completion_tokens_details": {"reasoning_tokens": 40}}
        return said("reasoning_content", TEA[1], TEA[0], usage=usage)
    return said("closing_tag_only", BREAD[1], BREAD[0])


@pytest.mark.parametrize("mode", ["drop", "keep", "field"])
def test_reasoning_modes_in_a_generation_step(mode, tmp_path):
    rows = [{"instruction": f"Tell me about {t}.", "output": "ok"} for t in ("tea", "bread", "the moon")]
    step = {"op": "evol_instruct", "rounds": 1, "methods": ["constraints"], "check_gain": False,
            "keep_original": False}  # fmt: skip
    if mode != "drop":  # drop is the default
        step["reasoning"] = mode
    with FakeLLM(route=evol_route) as fake:
        step["llm"] = llm(fake)
        stats, out, dropped = run_recipe(tmp_path, mode, [write_json(tmp_path / "in.json", rows)], [step])
    made = {r["messages"][0]["content"]: r for r in out}
    assert set(made) == {f"Tell me about {t}.{EVOLVED}" for t in ("tea", "bread")}  # instructions: no thinking
    for topic, (answer, thought) in (("tea", TEA), ("bread", BREAD)):
        rec = made[f"Tell me about {topic}.{EVOLVED}"]
        reply = rec["messages"][1]["content"]
        if mode == "keep":
            assert reply == f"<think>\n{thought}\n</think>\n\n{answer}"
            assert lf_has_thought(reply) and lf_remove_thought(reply) == answer  # LLaMA-Factory's reading
            assert LF_PATTERN.search(reply).group(1) == thought
        else:
            assert reply == answer
        assert rec["meta"].get("reasoning") == (thought if mode == "field" else None)
    text = json.dumps(out, ensure_ascii=False)
    assert ("<think>" in text) == (mode == "keep") and "fake" not in text and "The moon" not in text

    moon = [d for d in dropped if d["record"]["messages"][0]["content"] == f"Tell me about the moon.{EVOLVED}"]
    assert [d["reason"] for d in moon] == [f"eliminated: {TRUNCATED}"]
    assert moon[0]["record"]["messages"][1]["content"] == ""

    counters = next(s for s in stats["steps"] if s["op"] == "evol_instruct")["counters"]
    estimated = 3 * estimate_tokens(EVO_THOUGHT) + estimate_tokens(BREAD[1]) + estimate_tokens(MOON[1])
    assert counters["llm_reasoning_tokens"] == 40 + estimated  # tea's are reported by the server
    assert counters["llm_reasoning_tokens_estimated"] == estimated
    assert fake.count == 6  # 3 evolutions + 3 answers


SAMPLES = {0: ("Red.", "Warm colours first."), 1: ("Blue.", "Or the sky's colour.")}
JUDGE_THOUGHT = 'Is it {"score": 1, "reason": "bad"}? {{ hmm'


def sample_route(body: dict) -> tuple:
    prompt = "\n".join(m["content"] for m in body["messages"])
    if "Rate how well the answer follows the instruction" in prompt:
        return said("tags", JUDGE_THOUGHT, '{"score": 9, "reason": "fine"}')
    if "planet" in prompt and body["seed"] % 2:
        return truncated("reasoning_content", "Mercury, Venus, Earth, Mars, Jupiter")
    answer, thought = SAMPLES[body["seed"] % 2]
    return said("reasoning", thought, answer if "colour" in prompt else "Mars.")


@pytest.mark.parametrize("mode", ["drop", "keep", "field"])
def test_reasoning_modes_per_candidate_and_the_judge_reads_answers(mode, tmp_path):
    rows = [{"instruction": "Name a colour.", "output": "Green."}, {"instruction": "Name a planet.", "output": "x"}]
    with FakeLLM(route=sample_route) as fake:
        steps = [
            {"op": "sample_answers", "n": 2, "keep_answer": False, "reasoning": mode, "llm": llm(fake)},
            {"op": "judge_score", "llm": llm(fake)},
        ]
        stats, out, dropped = run_recipe(tmp_path, f"s-{mode}", [write_json(tmp_path / "in.json", rows)], steps)
    assert not dropped
    cands = {r["messages"][0]["content"]: r["meta"]["candidates"] for r in out}
    colour, planet = cands["Name a colour."], cands["Name a planet."]
    expected = {"Red.": "Warm colours first.", "Blue.": "Or the sky's colour.", "Mars.": SAMPLES[0][1]}
    for c in colour + planet:
        answer = lf_remove_thought(c["text"]) if mode == "keep" else c["text"]
        thought = expected[answer]
        assert c["text"] == (f"<think>\n{thought}\n</think>\n\n{answer}" if mode == "keep" else answer)
        assert c.get("reasoning") == (thought if mode == "field" else None)
        assert c["score"] == 9  # never the {"score": 1} the judge wrote while thinking
    assert sorted(lf_remove_thought(c["text"]) for c in colour) == ["Blue.", "Red."]
    assert [lf_remove_thought(c["text"]) for c in planet] == ["Mars."]  # the truncated sample is not a candidate
    counters = next(s for s in stats["steps"] if s["op"] == "sample_answers")["counters"]
    assert counters[f"unanswered_samples: {TRUNCATED}"] == 1 and counters["samples"] == 3
