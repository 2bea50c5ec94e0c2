"""Constraint checkers (pure, IFEval-style) accept and reject correctly in English and Chinese, and
add_constraints keeps only answers that pass every one."""

from __future__ import annotations

import random

import pytest
from test_synth_evol import run, sft
from test_synth_fakes import routed

from datamill.record import Record
from datamill.results import Drop
from datamill.synth.add_constraints import sample_constraints
from datamill.synth.constraints import CHECKERS, check, compatible, describe, failed, word_count

CASES = [
    # (constraint, passing responses, failing responses)
    (
        {"type": "words", "max": 5},
        ["One two three four five.", "五个汉字啊"],
        ["one two three four five six", "六个汉字啊啊"],
    ),
    ({"type": "words", "min": 3}, ["It's a well-known fact.", "三个字"], ["Two words", "", "两字"]),
    ({"type": "words", "min": 2, "max": 3}, ["a b", "a b c"], ["a", "a b c d"]),
    ({"type": "chars", "max": 10}, ["  0123456789  ", "十个字十个字十个字十"], ["0123456789a"]),
    ({"type": "chars", "min": 5}, ["hello"], ["hey", "    hi    "]),
    (
        {"type": "keywords", "words": ["solar", "Wind"]},
        ["Solar and wind power.", "WIND, then solar!"],
        ["solar only", "Solaris and windy"],
    ),
    ({"type": "keywords", "words": ["太阳能"]}, ["太阳能很便宜。"], ["风能很便宜。"]),
    ({"type": "forbidden_words", "words": ["very"]}, ["It is every bit good.", "Fine."], ["It is Very good."]),
    ({"type": "forbidden_words", "words": ["非常"]}, ["很好。"], ["非常好。"]),
    (
        {"type": "json"},
        ['{"a": 1}', "  [1, 2]  ", '```json\n{"a": [1, 2]}\n```', "```\n{}\n```", '"just a string"'],
        ['{"a": 1', "Here is JSON: {}", "{'a': 1}", ""],
    ),
    (
        {"type": "bullets", "n": 3},
        ["* a\n* b\n* c", "Intro:\n- a\n- b\n  - c", "• 一\n• 二\n• 三"],
        ["* a\n* b", "* a\n* b\n* c\n* d", "*a\n*b\n*c", "1. a\n2. b\n3. c"],
    ),
    ({"type": "numbered_list", "min": 3}, ["1. a\n2. b\n3) c", "1、一\n2、二\n3、三"], ["1. a\n2. b", "a\nb\nc"]),
    (
        {"type": "language", "lang": "zh"},
        ["这是中文回答。", "Python 是一种编程语言，很流行。"],
        ["This is English.", "", "Mostly English words here with 一 char"],
    ),
    ({"type": "language", "lang": "en"}, ["This is English."], ["这是中文回答。", ""]),
    ({"type": "no_commas"}, ["No commas here.", "没有逗号。"], ["One, two.", "一，二。"]),
    ({"type": "lowercase"}, ["all lower case here.", "lower 中文 ok"], ["Not lower.", "12345", "ALL CAPS"]),
    (
        {"type": "end_with", "phrase": "Any other questions?"},
        ["Done. Any other questions?", '"Done. any other questions?"  \n'],
        ["Any other questions? Done.", "Any other question"],
    ),
    (
        {"type": "title"},
        ["<<My Poem>>\nRoses...", "标题：<<春天>>"],
        ["<My Poem>", "<<>>", "<<a\nb>>"],
    ),
    ({"type": "quotation"}, ['"Hello there."', "“你好。”", '  "x y"  '], ['Hello "there".', '"', "'single'"]),
]


@pytest.mark.parametrize("constraint, good, bad", CASES, ids=[f"{c['type']}-{i}" for i, (c, _, _) in enumerate(CASES)])
def test_checkers_accept_and_reject(constraint, good, bad):
    for text in good:
        assert check(text, constraint), (constraint, text)
    for text in bad:
        assert not check(text, constraint), (constraint, text)


def test_every_checker_is_covered_and_described_in_both_languages():
    assert {c["type"] for c, _, _ in CASES} == set(CHECKERS)
    params = {
        "words": {"max": 5},
        "chars": {"min": 1, "max": 9},
        "keywords": {"words": ["a"]},
        "forbidden_words": {"words": ["b"]},
        "bullets": {"n": 2},
        "numbered_list": {"min": 3},
        "language": {"lang": "zh"},
        "end_with": {"phrase": "Bye."},
    }
    for t in CHECKERS:
        c = {"type": t, **params.get(t, {})}
        en, zh = describe(c, "en"), describe(c, "zh")
        assert en and zh and en != zh and "{" not in en + zh
    assert describe({"type": "words", "min": 1, "max": 9}, "en") == "Answer in 1 to 9 words."
    assert describe({"type": "bullets", "n": 2}, "zh") == "回答恰好包含 2 个以“* ”开头的要点。"
    assert describe({"type": "language", "lang": "zh"}, "en") == "Answer only in Chinese."


def test_failed_lists_every_broken_constraint_and_unknown_types_are_errors():
    constraints = [{"type": "no_commas"}, {"type": "words", "max": 3}, {"type": "lowercase"}]
    assert failed("One, two, three, four", constraints) == ["no_commas", "words", "lowercase"]
    assert failed("one two", constraints) == []
    with pytest.raises(ValueError, match="unknown constraint type 'shout'"):
        check("x", {"type": "shout"})


def test_word_count_and_compatibility():
    assert word_count("It's a well-known 中文 fact, 42.") == 7  # a CJK character is a word
    assert compatible(["words", "keywords", "json"]) and not compatible(["json", "bullets"])
    assert not compatible(["json", "no_commas"]) and compatible(["bullets", "title", "no_commas"])


def test_sampled_constraints_are_compatible_and_fit_the_answer():
    rng = random.Random(0)
    answer = "Photosynthesis converts sunlight into chemical energy. Plants store the energy as glucose."
    for _ in range(200):
        cs = sample_constraints(rng, list(CHECKERS), 3, answer, "en")
        assert len(cs) == 3 and compatible([c["type"] for c in cs])
        for c in cs:
            describe(c, "en")
            if c["type"] == "keywords":
                assert all(w in answer.lower() for w in c["words"])
    zh = sample_constraints(random.Random(1), ["lowercase", "keywords"], 2, "光合作用把光能转化为化学能。", "zh")
    assert [c["type"] for c in zh] == ["keywords"] and zh[0]["words"][0] in "光合作用把光能转化为化学能。"


def test_add_constraints_keeps_only_passing_answers():
    good = sft("List some renewable energy sources.", "Solar power and wind power are renewable sources.")
    bad = sft("Describe the moon.", "The Moon is Earth's only natural satellite, and it is bright.")

    def route(prompt: str) -> str:
        if "renewable" in prompt:
            return "* solar\n* wind\n* hydro"  # lowercase bullets, no commas: passes whatever was asked
        return "The Moon, Earth's satellite, is BRIGHT."  # breaks most constraints

    with routed(route) as fake:
        _, [g, b], _ = run(
            "add_constraints", [good, bad], fake, types=["no_commas", "lowercase", "words"], per_record=2, attempts=2
        )
        n_requests = fake.count
    assert g[0] is good and isinstance(g[1], Record)
    synth = g[1].meta["synth"]
    assert synth["method"] == "add_constraints" and len(synth["constraints"]) == 2 and synth["attempts"] == 1
    assert failed(g[1].messages[1].content, synth["constraints"]) == []
    instruction = g[1].messages[0].content
    assert instruction.startswith("List some renewable energy sources. ")
    assert all(describe(c, "en") in instruction for c in synth["constraints"])
    assert isinstance(b[1], Drop) and b[1].reason.startswith("fails constraint: ")
    assert b[1].record.meta["synth"]["attempts"] == 2 and n_requests == 3
