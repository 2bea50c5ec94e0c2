"""Instruction back-translation (Humpback): the text becomes the answer, self-curation keeps >= threshold."""

from __future__ import annotations

import json

import pytest
from test_synth_evol import run
from test_synth_fakes import routed

from datamill.record import Message, Record
from datamill.results import Drop


@pytest.fixture(scope="module")
def c4(data_dir) -> list[Record]:
    out = []
    with open(data_dir / "llamafactory" / "c4_demo.jsonl", encoding="utf-8") as f:
        for line in f:
            rec = Record(text=json.loads(line)["text"])
            rec.id = rec.compute_id()
            out.append(rec)
            if len(out) == 6:
                break
    return out


def test_curation_keeps_only_scores_at_or_above_threshold(c4):
    ratings = [
        '{"score": 5, "reason": "expert and focused"}',
        '{"score": 4}',
        '{"score": 3}',
        '{"score": 7}',  # out of the 1-5 range: re-asked, then unreadable
        '```json\n{"score": 4, "reason": "ok"}\n```',
        "I cannot rate this.",
    ]
    key = {r.text[:60]: i for i, r in enumerate(c4)}

    def route(prompt: str) -> str:
        i = next(v for k, v in key.items() if k in prompt)
        if "Write the user instruction" in prompt:
            return f"Instruction: Write an article about topic {i}."
        return ratings[i]

    with routed(route) as fake:
        op, results, _ = run("backtranslate_instruction", c4, fake, threshold=4, max_chars=100_000)
    outcome = []
    for rec, (src, made) in zip(c4, results, strict=True):
        assert isinstance(src, Drop) and src.record is rec and src.reason == "used as the answer"
        outcome.append(made.reason if isinstance(made, Drop) else made.meta["synth"]["score"])
        target = made.record if isinstance(made, Drop) else made
        assert target.messages[1].content == rec.text.strip()  # the text is the answer, unchanged
        assert target.meta["synth"]["parent_id"] == rec.id
    assert outcome == [
        5,
        4,
        "self-curation score below 4",
        "self-curation score unreadable",
        4,
        "self-curation score unreadable",
    ]
    kept = results[0][1]
    assert kept.messages[0].content == "Write an article about topic 0."  # the "Instruction:" label removed
    assert kept.meta["synth"]["method"] == "backtranslate_instruction"
    assert kept.meta["synth"]["template"] == ["backtranslate_instruction.en", "backtranslate_curate.en"]
    assert op.counters["score 4"] == 2 and op.counters["score unreadable"] == 2


def test_sft_answers_short_texts_and_bad_instructions():
    zh_answer = "长城东起山海关，西至嘉峪关，全长两万多公里，是中国古代最宏伟的军事防御工程之一。" * 3
    sft = Record(messages=[Message("user", "介绍长城"), Message("assistant", zh_answer)])
    short = Record(text="too short")
    bad = Record(text="A long enough text about gardening and soil and water. " * 5)

    def route(prompt: str) -> str:
        if "最佳回答" in prompt:
            return "请介绍一下长城的历史和长度。"
        if "5 分制" in prompt:
            return '{"score": 5}'
        return "Hi"  # too short to be an instruction

    with routed(route) as fake:
        _, [a, b, c], _ = run("backtranslate_instruction", [sft, short, bad], fake, keep_source=True)
    assert a[0] is sft and a[1].messages == [
        Message("user", "请介绍一下长城的历史和长度。"),
        Message("assistant", zh_answer),
    ]
    assert a[1].meta["synth"]["score"] == 5
    assert [x.reason for x in b] == ["text too short to back-translate"]
    assert c[0] is bad and c[1].reason == "instruction too short"
