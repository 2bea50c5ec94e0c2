"""Preference data, the pure parts: vote counting, pair selection, KTO labels, rule rankers, the
position-bias rule, and the predictions format on the real Self-Instruct files."""

from __future__ import annotations

import asyncio
import json
import random

import pytest
from conftest import DATA

from datamill.formats import predictions
from datamill.ops.base import OpContext
from datamill.prefs import judge, rules
from datamill.prefs import pairs as P
from datamill.prefs.candidates import answer_of, model_of, prompt_of
from datamill.prefs.training_pairs import MakeKTO, MakePairs
from datamill.record import Message, Record
from datamill.results import Drop

SI = DATA / "self_instruct"


def test_votes_counting_rule_with_several_annotators_and_ties():
    cands = [{"model": "m0"}, {"model": "m1"}, {"model": "m2"}]
    ballots = [
        {"annotator": "ann1", "choice": "m1"},
        {"annotator": "ann2", "choice": 1},
        {"annotator": "ann3", "choice": "m0"},
        {"annotator": "ann4", "choice": "m0"},
        {"annotator": "ann4", "choice": "m1"},  # ann4 changed their mind: the later ballot counts, once
        {"annotator": "ann5", "choice": "nobody"},  # names no candidate: ignored
        {"annotator": "ann6", "choice": 7},  # out of range: ignored
    ]
    assert P.count_votes(cands, ballots) == [1, 3, 0]
    pairs, why = P.select(P.scores(cands, "votes", ballots), "best_vs_worst")
    assert why is None and pairs == [P.Pair(1, 2, 3.0)]
    pairs, _ = P.select(P.scores(cands, "votes", ballots), "margin", margin=1)
    assert pairs == [P.Pair(1, 0, 2.0), P.Pair(1, 2, 3.0), P.Pair(0, 2, 1.0)]
    # per-answer lists of annotators: duplicates count once; 2 vs 2 is a tie, dropped
    tied = [{"votes": ["a", "b", "b"]}, {"votes": ["c", "d"]}]
    assert P.count_votes(tied) == [2, 2]
    assert P.select(P.scores(tied, "votes"), "best_vs_worst") == ([], "tie: best and worst are within the margin")
    assert P.count_votes([{"votes": 5}, {"votes": 0}, {}]) == [5, 0, 0]


def test_votes_to_pairs_op_reports_margin_and_drops_ties():
    op = MakePairs(MakePairs.Config(strategy="best_vs_worst", score="votes"), OpContext(1, 0, None))
    rec = Record(
        messages=[Message("user", "Name a prime.")],
        meta={
            "candidates": [{"model": "x", "text": "4"}, {"model": "y", "text": "7"}],
            "votes": [{"annotator": a, "choice": c} for a, c in [("p", "y"), ("q", "y"), ("r", "x")]],
        },
        id="r1",
    )
    out = asyncio.run(op.agenerate(rec, None))
    (pair,) = [x for x in out if isinstance(x, Record)]
    assert (pair.chosen.content, pair.rejected.content, pair.meta["margin"]) == ("7", "4", 1.0)
    assert pair.meta["chosen_meta"]["votes_counted"] == 2 and pair.meta["parent"] == "r1"
    assert [x.reason for x in out if isinstance(x, Drop)] == ["expanded into pairs"]
    rec.meta["votes"].append({"annotator": "s", "choice": "x"})  # 2 vs 2
    (drop,) = asyncio.run(op.agenerate(rec, None))
    assert isinstance(drop, Drop) and drop.record is rec and drop.reason.startswith("tie")


def test_pair_strategies():
    values = [7.0, None, 3.0, 9.0, 9.0]
    assert P.select(values, "best_vs_worst")[0] == [P.Pair(3, 2, 6.0)]  # the earlier of two 9s is best
    assert P.select(values, "margin", margin=2.5)[0] == [
        P.Pair(3, 2, 6.0),
        P.Pair(4, 2, 6.0),
        P.Pair(0, 2, 4.0),
    ]
    picks = {P.select(values, "best_vs_random", margin=1, rng=random.Random(s))[0][0].rejected for s in range(30)}
    assert picks == {0, 2}  # never the other 9 (a tie), never the unscored one
    assert P.select([5.0, 5.0], "best_vs_worst")[1].startswith("tie")
    assert P.select([5.0, None], "margin")[1] == "fewer than 2 ranked answers"
    assert P.by_preference(["student", "teacher", "other"], ["teacher", "student"])[0] == [P.Pair(1, 0, None)]
    judged = [{"a": 0, "b": 1, "winner": "b"}, {"a": 0, "b": 2, "winner": "tie"}]
    assert P.from_judgments(judged) == ([P.Pair(1, 0, None)], 1)


def test_kto_labels_from_ratings_and_thumbs():
    assert [P.kto_label(v, 4, 2) for v in (5, 4, 3, 2, 1, "4.5", "up", "down", True, None, "meh")] == [
        True,
        True,
        None,
        False,
        False,
        True,
        True,
        False,
        True,
        None,
        None,
    ]
    assert [P.kto_label(v, None, None) for v in (1, -1, 0, "+1", "👎")] == [True, False, None, True, False]
    op = MakeKTO(MakeKTO.Config(field="rating"), OpContext(1, 0, None))
    rec = Record(
        messages=[Message("user", "hi")],
        meta={
            "candidates": [
                {"text": "hello!", "rating": 5},
                {"text": "go away", "rating": 1},
                {"text": "ok", "rating": 3},
            ]
        },
        id="p",
    )
    out = asyncio.run(op.agenerate(rec, None))
    made = [x for x in out if isinstance(x, Record)]
    assert [(m.messages[-1].content, m.label) for m in made] == [("hello!", True), ("go away", False)]
    assert op.counters["unlabelled_candidates"] == 1
    thumbs = MakeKTO(MakeKTO.Config(field="thumb"), OpContext(1, 0, None))
    single = Record(messages=[Message("user", "q"), Message("assistant", "a")], meta={"thumb": "down"})
    assert asyncio.run(thumbs.agenerate(single, None)) == [single] and single.label is False


def test_math_rule_matches_gsm8k_reference():
    rows = [json.loads(line) for line in (DATA / "gsm8k" / "test.jsonl").open(encoding="utf-8")][:20]
    for row in rows:
        ref = row["answer"]
        number = ref.split("####")[-1].strip()
        assert rules.math_match(f"So the total is {number}.", ref) is True
        assert rules.math_match(f"I think it is {float(number.replace(',', '')) + 1}", ref) is False
    assert rules.final_number("costs $1,250.50 in total") == 1250.5
    assert rules.final_number(r"hence \boxed{42} and then 7") == 42
    rec = Record(messages=[Message("user", "q")], meta={"reference": "#### 18"})
    assert rules.get_rule("math")(rec, {"text": "16 - 3 - 4 = 9; 9 * 2 = 18"}) == 10.0
    assert rules.get_rule("math")(rec, {"text": "the answer is 9"}) == 1.0
    assert rules.get_rule("math")(Record(), {"text": "9"}) is None


def test_constraint_rule_and_custom_hook():
    rec = Record(
        meta={
            "constraints": [
                {"type": "max_words", "value": 5},
                {"type": "include", "value": ["北京"]},
                {"type": "no_such_check", "value": 1},
            ]
        }
    )
    assert rules.get_rule("constraints")(rec, {"text": "我爱北京"}) == 10.0
    assert rules.get_rule("constraints")(rec, {"text": "one two three four five six, not the capital"}) == 1.0
    assert rules.get_rule("datamill.prefs.rules:math_rule") is rules.math_rule
    with pytest.raises(Exception, match="unknown rule"):
        rules.get_rule("nope")


def test_position_bias_rule():
    assert judge.combine("A", "B") == ("a", True)  # a first, then a second: a wins both times
    assert judge.combine("A", "A") == ("tie", False)  # always the first shown: flips with the order
    assert judge.combine("B", "B") == ("tie", False)
    assert judge.combine("tie", "tie") == ("tie", True)
    assert judge.combine("A", "tie") == ("tie", False)
    assert judge.combine("B", None) == ("b", True)
    js = [
        {"a_model": "good", "b_model": "bad", "winner": "a", "consistent": True},
        {"a_model": "bad", "b_model": "good", "winner": "a", "consistent": True},
        {"a_model": "good", "b_model": "bad", "winner": "tie", "consistent": False},
        {"a_model": "good", "b_model": "other", "winner": "a", "consistent": True},
    ]
    assert judge.agreement(js, "good", "bad") == {
        "compared": 3,
        "agree": 1,
        "disagree": 1,
        "ties": 0,
        "inconsistent": 1,
        "agreement": 0.5,
    }


def test_predictions_format_reads_the_self_instruct_files():
    for path in sorted(SI.glob("predictions_*.jsonl")):
        rows = [json.loads(line) for line in path.open(encoding="utf-8")]
        recs = [predictions.to_record(r) for r in rows]
        assert len(recs) == 252 and all(predictions.detect(r) for r in rows)
        assert model_of(Record(meta={"source": str(path)})) == path.stem.removeprefix("predictions_")
        first = recs[0]
        assert prompt_of(first)[0].content.startswith("The sentence you are given")
        assert answer_of(first) == rows[0]["response"].strip() and first.meta["reference"] == rows[0]["target"]
        back = predictions.from_record(first)
        assert back["input"] == rows[0]["input"] and back["response"] == rows[0]["response"].strip()


def test_ratings_to_pairs_above_a_margin():
    op = MakePairs(MakePairs.Config(strategy="margin", score="rating", margin=2), OpContext(1, 0, None))
    rec = Record(
        messages=[Message("user", "写一首关于秋天的短诗。")],
        meta={
            "candidates": [
                {"model": "a", "text": "秋风起，落叶黄。", "rating": 5},
                {"model": "b", "text": "秋天。", "rating": 2},
                {"model": "c", "text": "秋天来了，天气凉了。", "rating": 4},
                {"model": "d", "text": "不会。", "rating": None},
            ]
        },
        id="poem",
    )
    out = asyncio.run(op.agenerate(rec, None))
    made = [(x.meta["chosen_model"], x.meta["rejected_model"], x.meta["margin"]) for x in out if isinstance(x, Record)]
    assert made == [("a", "b", 3.0), ("c", "b", 2.0)]  # a vs c is only 1 apart; d is unrated
    assert all(x.messages[0].content == "写一首关于秋天的短诗。" for x in out if isinstance(x, Record))


def test_judge_schemas_list_the_allowed_scores():
    for model in (judge.ScoreVerdict, judge.ScoreOnly):
        assert model.model_json_schema()["properties"]["score"]["enum"] == list(range(1, 11))
    assert judge.ScoreOnly.model_validate({"score": "8"}).score == 8
    with pytest.raises(ValueError):
        judge.ScoreOnly.model_validate({"score": 1000000000000000})
    assert judge.WinnerOnly.model_json_schema()["properties"]["winner"]["enum"] == ["A", "B", "tie"]


def test_python_runs_rule():
    rec = Record(meta={"tests": "assert add(2, 3) == 5"})
    good = {"text": "Here you go:\n```python\ndef add(a, b):\n    return a + b\n```"}
    wrong = {"text": "```python\ndef add(a, b):\n    return a - b\n```"}
    broken = {"text": "def add(a, b) return a + b"}
    rule = rules.get_rule("python_runs")
    assert [rule(rec, c) for c in (good, wrong, broken)] == [10.0, 1.0, 1.0]
    assert rules.python_runs("while True: pass", timeout=1.0) is False
    assert rule(Record(), {"text": "  "}) is None


def test_python_runs_hides_the_environment(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-value")
    assert rules.python_runs("import os; assert 'OPENAI_API_KEY' not in os.environ")
    assert rules.python_runs("import os, pathlib; assert pathlib.Path.cwd() != pathlib.Path.home()")


def test_rule_score_op_ranks_gsm8k_answers_and_counts_length_bias():
    from datamill.prefs.ranking import RuleScore

    row = json.loads((DATA / "gsm8k" / "train.jsonl").open(encoding="utf-8").readline())
    final = row["answer"].split("####")[-1].strip()
    rec = Record(
        messages=[Message("user", row["question"])],
        meta={
            "reference": row["answer"],
            "candidates": [
                {"model": "long-wrong", "text": row["answer"].split("####")[0] + "So the answer is 1234567."},
                {"model": "short-right", "text": f"#### {final}"},
                {"model": "silent", "text": "I cannot say."},
            ],
        },
        id="g",
    )
    op = RuleScore(RuleScore.Config(rule="math"), OpContext(1, 0, None))
    out = op.map(rec)
    assert [c.get("score") for c in out.meta["candidates"]] == [1.0, 10.0, 1.0]
    assert op.counters["shorter_preferred"] == 2 and op.counters["longer_preferred"] == 0  # the right one is shortest
    pairs = asyncio.run(MakePairs(MakePairs.Config(margin=5), OpContext(1, 0, None)).agenerate(out, None))
    (pair,) = [x for x in pairs if isinstance(x, Record)]
    assert pair.meta["chosen_model"] == "short-right" and pair.meta["margin"] == 9.0
