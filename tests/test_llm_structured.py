"""Structured output: repair, validate, re-ask, fall back on response_format, then a clear error."""

from __future__ import annotations

import asyncio
import json

import pytest
from llm_fakes import FakeLLM
from pydantic import BaseModel

from datamill.llm import LLMClient, LLMConfig, StructuredOutputError, extract_json, generate_json
from datamill.llm.structured import _check_schema, validate


class QA(BaseModel):
    question: str
    answer: str


SCHEMA = {
    "type": "object",
    "properties": {"score": {"type": "integer", "minimum": 1, "maximum": 10}, "reason": {"type": "string"}},
    "required": ["score", "reason"],
}


def ask(fake: FakeLLM, target, **kw):
    async def go():
        cfg = LLMConfig(backend="openai", base_url=fake.base_url, cache=False, max_retries=0, **kw)
        async with LLMClient(cfg) as c:
            return await generate_json(c, "Write one QA pair about Paris.", target, max_attempts=3)

    return asyncio.run(go())


@pytest.mark.parametrize(
    "text, value",
    [
        ('{"a": 1}', {"a": 1}),
        ('```json\n{"a": 1}\n```', {"a": 1}),
        ('Sure! Here is the JSON:\n```\n{"a": [1, 2]}\n```\nHope it helps.', {"a": [1, 2]}),
        ('Here you go: {"a": "b}"} -- done', {"a": "b}"}),
        ('{"a": 1, "b": [1, 2,],}', {"a": 1, "b": [1, 2]}),
        ("[1, 2, 3] and more text", [1, 2, 3]),
        ('答案如下：{"问题": "巴黎在哪里？", "答案": "法国"}。', {"问题": "巴黎在哪里？", "答案": "法国"}),
    ],
)
def test_extract_json_repairs(text, value):
    assert extract_json(text) == value


@pytest.mark.parametrize("text", ["no json here", '{"a": 1', "{'a': undefined}"])
def test_extract_json_refuses(text):
    with pytest.raises(ValueError):
        extract_json(text)


def test_valid_first_time_sends_json_schema():
    with FakeLLM([("text", '```json\n{"question": "Where is Paris?", "answer": "France"}\n```')]) as fake:
        qa = ask(fake, QA)
    assert qa == QA(question="Where is Paris?", answer="France")
    rf = fake.requests[0]["body"]["response_format"]
    assert rf["type"] == "json_schema" and rf["json_schema"]["name"] == "QA"
    assert rf["json_schema"]["schema"]["required"] == ["question", "answer"]


def test_reask_after_broken_and_non_schema_json():
    script = [
        ("text", "I think Paris is nice."),
        ("text", '{"question": "Where?"}'),
        ("text", '{"question": "Q", "answer": "A"}'),
    ]
    with FakeLLM(script) as fake:
        qa = ask(fake, QA)
    assert qa.answer == "A" and fake.count == 3
    # each re-ask carries the bad answer and what was wrong with it
    msgs = fake.requests[2]["body"]["messages"]
    assert msgs[1] == {"role": "assistant", "content": "I think Paris is nice."}
    assert "no JSON" in msgs[2]["content"] and "answer" in msgs[4]["content"] and "Field required" in msgs[4]["content"]


def test_gives_up_with_reason():
    with (
        FakeLLM(default=("text", '{"score": 42, "reason": "great"}')) as fake,
        pytest.raises(StructuredOutputError) as info,
    ):
        ask(fake, SCHEMA)
    assert fake.count == 3
    assert info.value.reason == "schema mismatch" and "after 3 answers" in str(info.value)
    assert info.value.last_text == '{"score": 42, "reason": "great"}'
    with FakeLLM(default=("text", "not today")) as fake, pytest.raises(StructuredOutputError) as info:
        ask(fake, SCHEMA)
    assert info.value.reason == "invalid json"


def test_falls_back_when_endpoint_rejects_response_format():
    script = [
        ("status", 400, {}, "response_format json_schema is not supported"),
        ("status", 400, {}, "response_format is not supported"),
        ("text", '{"score": 7, "reason": "ok"}'),
    ]
    with FakeLLM(script) as fake:
        value = ask(fake, SCHEMA)
    assert value == {"score": 7, "reason": "ok"}
    sent = [r["body"].get("response_format", {}).get("type") for r in fake.requests]
    assert sent == ["json_schema", "json_object", None]


def test_json_schema_mode_off_sends_nothing():
    with FakeLLM([("text", '{"score": 3, "reason": "meh"}')]) as fake:
        ask(fake, SCHEMA, json_schema_mode="off")
    assert "response_format" not in fake.requests[0]["body"]


def test_builtin_schema_subset():
    _check_schema({"score": 3, "reason": "x"}, SCHEMA)
    for bad in (
        {"score": "3", "reason": "x"},
        {"score": 11, "reason": "x"},
        {"reason": "x"},
        {"score": True, "reason": "x"},
    ):
        with pytest.raises(ValueError):
            _check_schema(bad, SCHEMA)
    with pytest.raises(ValueError, match="score"):
        validate({"score": 0, "reason": "x"}, SCHEMA)
    assert json.loads(json.dumps(validate({"score": 1, "reason": "x"}, SCHEMA))) == {"score": 1, "reason": "x"}


def test_errors_pickle_with_their_reason():
    import pickle

    from datamill.llm import LLMError

    e = pickle.loads(pickle.dumps(StructuredOutputError("no valid JSON", "schema mismatch", "{}")))
    assert (str(e), e.reason, e.last_text) == ("no valid JSON", "schema mismatch", "{}")
    e = pickle.loads(pickle.dumps(LLMError("failed", "http 429", 429, 6)))
    assert (str(e), e.reason, e.status, e.attempts) == ("failed", "http 429", 429, 6)
