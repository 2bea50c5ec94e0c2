"""multi_turn: follow-up exchanges with the whole history, and documents turned into dialogues."""

from __future__ import annotations

from test_synth_evol import run, sft
from test_synth_fakes import routed

from datamill.formats import get as get_format
from datamill.record import Message, Record
from datamill.results import Drop
from datamill.synth.parse import dialogue


def test_extends_with_follow_ups_that_see_the_history():
    rec = sft("What is the capital of France?", "Paris.")
    calls = []

    def route(prompt: str) -> str:
        calls.append(prompt)
        if "Write the user's next message" in prompt:
            return "And how many people live there?" if "2.1 million" not in prompt else "Is it bigger than Lyon?"
        return "About 2.1 million." if "Lyon" not in prompt else "Yes, much bigger."

    with routed(route) as fake:
        _, [items], _ = run("multi_turn", [rec], fake, turns=2)
        answer_bodies = [r["body"]["messages"] for r in fake.requests if len(r["body"]["messages"]) > 1]
    assert items[0] is rec
    made = items[1]
    assert [m.content for m in made.messages] == [
        "What is the capital of France?",
        "Paris.",
        "And how many people live there?",
        "About 2.1 million.",
        "Is it bigger than Lyon?",
        "Yes, much bigger.",
    ]
    assert made.meta["synth"]["turns_added"] == 2 and made.meta["synth"]["parent_id"] == rec.id
    assert len(answer_bodies[-1]) == 5  # the second answer saw the whole conversation
    row = get_format("alpaca").from_record(made)
    assert row["history"] == [
        ["What is the capital of France?", "Paris."],
        ["And how many people live there?", "About 2.1 million."],
    ]


def test_no_follow_up_and_not_a_conversation():
    rec = sft("Hello there", "Hi!")
    pref = Record(messages=[Message("user", "q")], chosen=Message("assistant", "a"), rejected=Message("assistant", "b"))
    with routed(lambda p: "Hello there") as fake:
        _, [items, pitems], _ = run("multi_turn", [rec, pref], fake, keep_source=False)
    assert isinstance(items[0], Drop) and items[0].reason == "extended into a dialogue"
    assert items[1].reason == "no new follow-up question"
    assert [x.reason for x in pitems] == ["not a conversation ending in an answer"]


def test_document_to_dialogue(data_dir):
    text = (data_dir / "llamafactory" / "wiki_demo.txt").read_text(encoding="utf-8").splitlines()[0]
    doc = Record(text=text)
    script = (
        "User: What is anarchism?\nAssistant: A political philosophy\nthat is sceptical of authority.\n"
        "User: Is it old?\nAssistant: Yes.\nUser: dangling"
    )
    with routed(lambda p: script if "Turn the text below into a dialogue" in p else "?") as fake:
        _, [items], _ = run("multi_turn", [doc], fake)
    made = items[1]
    assert [m.role for m in made.messages] == ["user", "assistant", "user", "assistant"]
    assert made.messages[1].content == "A political philosophy\nthat is sceptical of authority."
    assert made.meta["synth"]["template"] == "text_to_dialogue.en"


def test_dialogue_parser():
    assert dialogue("用户：你好\n助手：你好！\n用户：再见\n助手：再见。") == [
        ("user", "你好"),
        ("assistant", "你好！"),
        ("user", "再见"),
        ("assistant", "再见。"),
    ]
    assert dialogue("Assistant: starts wrong\nUser: x") == []
    assert dialogue("no labels here") == []
