"""paraphrase: reworded and back-translated (zh→en→zh) variants; identical / wrong-language ones dropped."""

from __future__ import annotations

from test_synth_evol import run, sft
from test_synth_fakes import prompts_sent, routed

from datamill.record import Record
from datamill.results import Drop


def test_paraphrase_keeps_the_answer_and_drops_copies():
    a = sft("Give three tips for staying healthy.", "Eat well, sleep, exercise.")
    b = sft("Name the capital of France.", "Paris.")

    def route(prompt: str) -> str:
        if "capital of France" in prompt:
            return "Name the capital of France!"  # same words: identical
        return "List three pieces of advice for keeping fit."

    with routed(route) as fake:
        _, [ra, rb], _ = run("paraphrase", [a, b], fake)
    assert ra[0] is a and isinstance(ra[1], Record)
    assert ra[1].messages[0].content == "List three pieces of advice for keeping fit."
    assert ra[1].messages[1].content == "Eat well, sleep, exercise."
    assert ra[1].meta["synth"] == {
        "method": "paraphrase",
        "model": "openai:fake",
        "template": "paraphrase.en",
        "parent_id": a.id,
        "variant": 1,
    }
    assert rb[0] is b and isinstance(rb[1], Drop) and rb[1].reason == "variant identical to the original"


def test_zh_en_zh_back_translation_with_regenerated_answers():
    zh = sft("请列出三种常见的水果。", "苹果、香蕉、橙子。")

    def route(prompt: str) -> str:
        if "翻译成英文" in prompt:
            return "Please list three common fruits."
        if "Translate the following text into Chinese" in prompt:
            return "列举三种常见水果。" if "seed" not in prompt else "?"
        if prompt.startswith("列举"):
            return "葡萄、梨、桃。"
        return "unexpected"

    with routed(route) as fake:
        _, [items], _ = run("paraphrase", [zh], fake, mode="backtranslate", answer="regenerate")
        sent = prompts_sent(fake)
    variant = items[1]
    assert variant.messages[0].content == "列举三种常见水果。" and variant.messages[1].content == "葡萄、梨、桃。"
    assert variant.meta["synth"]["pivot"] == "en" and variant.meta["synth"]["method"] == "backtranslate"
    assert variant.meta["synth"]["template"] == ["translate.zh", "translate.en"]
    assert len(sent) == 3 and "请列出三种常见的水果" in sent[0] and "Please list" in sent[1]


def test_wrong_language_and_several_variants():
    zh = sft("请列出三种常见的水果。", "苹果。")
    with routed(lambda p: "List three fruits.") as fake:
        _, [items], _ = run("paraphrase", [zh], fake, variants=2)
        bodies = [r["body"] for r in fake.requests]
    assert [x.reason for x in items[1:]] == ["variant in the wrong language"] * 2
    assert [b.get("seed") for b in bodies] == [0, 1] and all(b["temperature"] == 0.9 for b in bodies)
