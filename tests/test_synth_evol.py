"""Evol-Instruct: every elimination rule fires with its reason on scripted answers; survivors chain."""

from __future__ import annotations

import asyncio

import pytest
from test_synth_fakes import llm_config, prompts_sent, routed

from datamill.llm import LLMClient
from datamill.ops import get
from datamill.ops.base import OpContext
from datamill.record import Message, Record
from datamill.results import Drop
from datamill.synth.evol import answer_problem, evolution_problem


def sft(instruction: str, answer: str = "ok") -> Record:
    rec = Record(messages=[Message("user", instruction), Message("assistant", answer)])
    rec.id = rec.compute_id()
    return rec


def run(op_name: str, records: list[Record], fake, **options):
    cls = get(op_name)
    op = cls(cls.Config(llm=llm_config(fake), **options), OpContext(seed=3, step=0, workdir=None))

    async def go():
        async with LLMClient(op.config.llm) as llm:
            return [await op.agenerate(r, llm) for r in records], llm.usage

    results, usage = asyncio.run(go())
    return op, results, usage


EVOLVED = {
    "sea": "Tell me about sea!",  # the same words: no information gain (ROUGE-L)
    "cats": "#Rewritten Prompt#: describe cats in detail",  # copied the evolving prompt's words
    "tea": "Explain how green tea is made, in three steps.",  # the model says it is equal
    "moon": "Explain the phases of the moon with a diagram of each phase.",  # answer is a refusal
    "rain": "Explain why rain falls, citing two physical laws.",  # answer is only stop words
    "bread": "Give a recipe for bread that uses no yeast.",  # survives
}


def evol_route(prompt: str) -> str:
    if "Rewrite the prompt below" in prompt or "brand-new prompt" in prompt:
        current = prompt.split("Prompt:\n", 1)[1].split("\n\n", 1)[0]
        if "no yeast" in current:
            return current + " Keep it under 100 words."
        key = next(k for k in EVOLVED if k in current.lower())
        return EVOLVED[key]
    if "Are these two instructions equal" in prompt:
        return "Yes" if "green tea" in prompt else "No"
    if "moon" in prompt:
        return "Sorry, I cannot help with that."
    if "rain" in prompt:
        return "It is the, and so it is."
    return "Mix flour, water, salt and baking soda; bake for 30 minutes."


def test_each_elimination_rule_fires_with_its_reason():
    records = [sft(f"Tell me about {k}.") for k in EVOLVED]
    with routed(evol_route) as fake:
        op, results, usage = run("evol_instruct", records, fake, rounds=1, methods=["constraints"])
    reasons = {}
    for rec, items in zip(records, results, strict=True):
        assert items[0] is rec  # the original is kept
        assert len(items) == 2
        reasons[rec.messages[0].content] = items[1].reason if isinstance(items[1], Drop) else None
    assert reasons == {
        "Tell me about sea.": "eliminated: no information gain",
        "Tell me about cats.": "eliminated: copied the prompt words",
        "Tell me about tea.": "eliminated: no information gain",
        "Tell me about moon.": "eliminated: model failed to answer",
        "Tell me about rain.": "eliminated: answer is only punctuation and stop words",
        "Tell me about bread.": None,
    }
    good = results[-1][1]
    assert good.messages[0].content == EVOLVED["bread"] and good.messages[1].content.startswith("Mix flour")
    synth = good.meta["synth"]
    assert synth == {
        "method": "evol_instruct",
        "model": "openai:fake",
        "template": "evol_depth.en",
        "round": 1,
        "evolution": "constraints",
        "parent_id": records[-1].id,
        "root_id": records[-1].id,
    }
    assert op.counters["evolution: constraints"] == 6 and usage.requests == fake.count


def test_rounds_chain_on_the_last_good_evolution():
    rec = sft("Give a recipe for bread.")
    with routed(evol_route) as fake:
        _, [items], _ = run("evol_instruct", [rec], fake, rounds=3, methods=["constraints"], check_gain=False)
    sent = prompts_sent(fake)
    made = items[1:]
    assert [type(x) for x in made] == [Record, Record, Record]
    assert [m.meta["synth"]["round"] for m in made] == [1, 2, 3]
    assert made[1].meta["synth"]["parent_id"] == made[0].id and made[2].meta["synth"]["parent_id"] == made[1].id
    assert all(m.meta["synth"]["root_id"] == rec.id for m in made)
    assert made[2].messages[0].content.count("Keep it under 100 words.") == 2
    assert not any("Are these two instructions equal" in p for p in sent)  # check_gain: false


def test_breadth_and_chinese_and_not_a_task():
    zh = sft("写一首关于春天的诗。")
    doc = Record(text="just a document")

    def route(prompt: str) -> str:
        if "全新的指令" in prompt:
            return "写一首关于江南梅雨季节的七言绝句。"
        return "梅雨时节江南湿，青石小巷伞如织。"

    with routed(route) as fake:
        _, results, _ = run("evol_instruct", [zh, doc], fake, rounds=1, methods=["breadth"], keep_original=False)
    (drop, made), (doc_drop,) = results
    assert isinstance(drop, Drop) and drop.record is zh and drop.reason == "evolved (keep_original: false)"
    assert made.meta["synth"]["template"] == "evol_breadth.zh" and made.meta["synth"]["evolution"] == "breadth"
    assert doc_drop.record is doc and doc_drop.reason == "not a single-turn instruction task"


@pytest.mark.parametrize(
    "original, evolved, reason",
    [
        ("Write a poem.", "", "empty evolution"),
        ("Write a poem.", "Write a poem!", "no information gain"),
        ("Write a poem.", "Given prompt: write a poem", "copied the prompt words"),
        ("写一首诗。", "改写后的指令：写一首诗", "copied the prompt words"),
        ("Write a poem.", "Write a four-line poem about autumn rain with an AABB rhyme.", None),
    ],
)
def test_evolution_checks(original, evolved, reason):
    assert evolution_problem(original, evolved) == reason


@pytest.mark.parametrize(
    "answer, reason",
    [
        ("", "empty answer"),
        ("抱歉，我无法回答这个问题。", "model failed to answer"),
        ("Sorry, " + "word " * 100, None),  # a long answer that apologises once still answers
        ("...!! the a", "answer is only punctuation and stop words"),
        ("Bake at 200°C for 30 minutes.", None),
    ],
)
def test_answer_checks(answer, reason):
    assert answer_problem(answer) == reason
