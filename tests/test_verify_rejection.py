"""verify_answers and difficulty_filter on real GSM8K test items with candidates whose right/wrong mix is
known (built from the reference: no model involved): per-candidate verdicts, pass@k (checked against
brute-force enumeration), difficulty, every keep policy's kept counts and lineage, and full accounting."""

from __future__ import annotations

import asyncio
import itertools
import json

import pytest
from conftest import DATA
from pydantic import ValidationError

from datamill.ops import get
from datamill.ops.base import OpContext
from datamill.record import Message, Record
from datamill.results import Drop
from datamill.verify import diversity
from datamill.verify.passk import difficulty, pass_at, pass_at_k


def gsm8k(n: int) -> list[dict]:
    with (DATA / "gsm8k" / "test.jsonl").open(encoding="utf-8") as f:
        return [json.loads(line) for line in itertools.islice(f, n)]


def final(answer: str) -> str:
    return answer.rsplit("####", 1)[1].strip()


def right_and_wrong(row: dict, right: int, wrong: int) -> list[dict]:
    """``right`` correct candidates (the gold solution, then rephrased final answers) and ``wrong`` wrong ones."""
    gold = final(row["answer"])
    good = [row["answer"], f"The answer is {gold}.", f"So the total is \\boxed{{{gold}}}", f"{gold}"]
    bad = [f"The answer is {int(gold) + 1}.", f"#### {int(gold) * 2}", "I cannot tell.", f"\\boxed{{{int(gold) - 1}}}"]
    return [{"model": "m", "text": t} for t in good[:right] + bad[:wrong]]


MIX = [(3, 1), (1, 3), (0, 2), (2, 0)]  # (right, wrong) for test items 0..3


def records(mix=MIX) -> list[Record]:
    out = []
    for row, (r, w) in zip(gsm8k(len(mix)), mix, strict=True):
        rec = Record(messages=[Message("user", row["question"])], meta={"reference": row["answer"]})
        rec.meta["candidates"] = right_and_wrong(row, r, w)
        rec.id = rec.compute_id()
        out.append(rec)
    return out


def run(op_name: str, recs: list[Record], **options):
    cls = get(op_name)
    op = cls(cls.Config(**options), OpContext(seed=0, step=0, workdir=None))
    if cls.kind == "filter":
        return op, [op.reason(r) for r in recs]
    return op, [asyncio.run(op.agenerate(r, None)) for r in recs]


def test_pass_at_k_matches_brute_force_enumeration():
    for n in range(1, 7):
        for c in range(n + 1):
            outcomes = [True] * c + [False] * (n - c)
            for k in range(1, n + 1):
                subsets = list(itertools.combinations(outcomes, k))
                assert pass_at_k(n, c, k) == pytest.approx(sum(any(s) for s in subsets) / len(subsets))
    assert pass_at_k(4, 1, 1) == 0.25 and pass_at_k(4, 1, 2) == 0.5 and pass_at_k(4, 1, 4) == 1.0
    assert pass_at(4, 1, [2, 8]) == {"pass@1": 0.25, "pass@2": 0.5}  # 8 > n: no estimate
    assert difficulty(4, 1) == 0.75
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 4)


def test_verify_answers_annotates_every_candidate_and_keeps_all_correct():
    recs = records()
    op, results = run("verify_answers", recs, keep="all_correct", pass_k=[2, 4])
    for rec, (r, w), out in zip(recs, MIX, results, strict=True):
        flags = [c["correct"] for c in rec.meta["candidates"]]
        assert flags == [True] * r + [False] * w
        assert all(c["extracted"] for c in rec.meta["candidates"][:r])
        assert rec.meta["pass_at_k"]["n"] == r + w and rec.meta["pass_at_k"]["correct"] == r
        assert rec.meta["difficulty"] == 1 - r / (r + w)
        made = [x for x in out if isinstance(x, Record)]
        drops = [x for x in out if isinstance(x, Drop)]
        assert len(made) == r and len(drops) == 1 and drops[0].record is rec
        for child, i in zip(made, range(r), strict=True):
            assert child.messages[0].content == rec.messages[0].content
            answer = rec.meta["candidates"][i]["text"]
            assert child.messages[-1].role == "assistant" and child.messages[-1].content == answer
            assert child.meta["parent"] == rec.id and child.meta["candidate"] == i and child.meta["model"] == "m"
            assert child.meta["difficulty"] == rec.meta["difficulty"] and child.id == child.compute_id()
    assert recs[0].meta["pass_at_k"] == {"n": 4, "correct": 3, "pass@1": 0.75, "pass@2": 1.0, "pass@4": 1.0}
    assert recs[1].meta["pass_at_k"] == {"n": 4, "correct": 1, "pass@1": 0.25, "pass@2": 0.5, "pass@4": 1.0}
    assert recs[2].meta["pass_at_k"] == {"n": 2, "correct": 0, "pass@1": 0.0, "pass@2": 0.0}
    assert [d.reason for out in results for d in out if isinstance(d, Drop)] == [
        "expanded into 3 verified answers",
        "expanded into 1 verified answer",
        "no correct answer among 2",
        "expanded into 2 verified answers",
    ]
    c = op.take_counters()
    assert c["candidates"] == 12 == c["correct"] + c["wrong"] and c["correct"] == 6
    assert c["kept"] == 6 and "correct_not_kept" not in c
    assert c["prompts"] == 4 and c["prompts_solved"] == 3 and c["prompts_unsolved"] == 1
    assert c["prompts_always_solved"] == 1 and c["wrong: no answer found"] == 1  # "I cannot tell."


@pytest.mark.parametrize(
    "keep, options, kept",
    [
        ("shortest_correct", {}, [1, 1, 0, 1]),
        ("most_diverse", {"k": 2}, [2, 1, 0, 2]),
        ("best_judged", {}, [1, 1, 0, 1]),
    ],
)
def test_keep_policies_keep_known_counts(keep, options, kept):
    recs = records()
    op, results = run("verify_answers", recs, keep=keep, **options)
    assert [sum(isinstance(x, Record) for x in out) for out in results] == kept
    c = op.take_counters()
    assert c["kept"] == sum(kept) and c["kept"] + c["correct_not_kept"] == c["correct"] == 6
    if keep == "shortest_correct":  # "The answer is N." beats the gold solution and the \\boxed{} sentence
        robe = gsm8k(2)[1]["answer"]  # its one correct candidate is the gold solution
        shortest = [out[0].messages[-1].content for out in results if isinstance(out[0], Record)]
        assert shortest == ["The answer is 18.", robe, "The answer is 540."]
    if keep == "best_judged":  # no judge scores on the candidates: the shortest, and it says so
        assert c["best_judged: no score, kept the shortest"] == 3


def test_best_judged_takes_the_best_scored_correct_answer_not_the_best_scored_one():
    (rec,) = records([(3, 1)])
    for cand, score in zip(rec.meta["candidates"], [4, 9, 7, 10], strict=True):  # the wrong one scores 10
        cand["score"] = score
    _, [out] = run("verify_answers", [rec], keep="best_judged")
    (child,) = [x for x in out if isinstance(x, Record)]
    assert child.meta["candidate"] == 1 and child.meta["candidate_meta"]["score"] == 9


def test_most_diverse_prefers_different_solutions():
    texts = [
        "She has 16 eggs, eats 3 and bakes 4, so 9 are left; at $2 each she makes $18 a day.",
        "She has 16 eggs, eats 3 and bakes 4, so 9 are left; at $2 each she makes $18 every day.",
        "Eggs sold: 16 - 7 = 9. Revenue: 9 x 2 = 18 dollars.",
    ]
    picked = diversity.most_diverse(texts, 2)
    assert 2 in picked and len(set(picked) & {0, 1}) == 1
    assert diversity.most_diverse(texts, 5) == [0, 1, 2]
    sim = diversity.similarities(texts)
    assert sim[0, 1] > 0.5 > sim[0, 2] and sim[0, 0] == 1


def test_annotate_keeps_the_prompt_records_for_a_later_step():
    recs = records()
    op, results = run("verify_answers", recs, keep="annotate")
    assert results == [[r] for r in recs]  # unsolved ones too: difficulty_filter decides
    assert [r.meta["difficulty"] for r in recs] == [0.25, 0.75, 1.0, 0.0]
    assert "kept" not in op.take_counters()


def test_records_that_cannot_be_verified_are_dropped_and_counted():
    (rec,) = records([(1, 1)])
    del rec.meta["reference"]
    bare = Record(messages=[Message("user", "q")])
    op, results = run("verify_answers", [rec, bare])
    assert [d.reason for [d] in results] == ["cannot verify: no reference in meta.reference", "no candidates to verify"]
    c = op.take_counters()
    assert c["candidates_unverified"] == 2 and c["prompts_without_candidates"] == 1 and "candidates" not in c
    (rec,) = records([(1, 1)])
    rec.meta["answer_key"] = {"final": "#### 18"}  # a dotted reference_key
    _, [out] = run("verify_answers", [rec], reference_key="answer_key.final")
    assert sum(isinstance(x, Record) for x in out) == 1


def test_last_number_false_ignores_a_number_in_passing():
    row = gsm8k(1)[0]
    rec = Record(messages=[Message("user", row["question"])], meta={"reference": row["answer"]})
    rec.meta["candidates"] = [{"model": "m", "text": "She eats 3 eggs, and makes some money, maybe 18."}]
    _, [loose] = run("verify_answers", [rec])
    _, [strict] = run("verify_answers", [rec], last_number=False)
    assert isinstance(loose[0], Record) and strict[0].reason == "no correct answer among 1"


def test_options_are_checked():
    cls = get("verify_answers")
    with pytest.raises(ValidationError, match="unsafe_no_sandbox"):
        cls.Config(verifier="math", unsafe_no_sandbox=True)
    with pytest.raises(ValidationError):
        cls.Config(keep="longest")
    with pytest.raises(ValidationError, match="pass_k"):
        cls.Config(pass_k=[0])
    assert cls.Config(verifier="code").key() == "tests" and cls.Config().key() == "reference"
    assert cls.Config(verifier="constraints").key() == "synth.constraints"
    f = get("difficulty_filter")
    with pytest.raises(ValidationError, match="needs"):
        f.Config()
    with pytest.raises(ValidationError, match="above max"):
        f.Config(min=0.8, max=0.2)


def test_difficulty_filter_before_and_after_expansion():
    recs = records()
    run("verify_answers", recs, keep="annotate")  # difficulties 0.25, 0.75, 1.0, 0.0
    plain = Record(messages=[Message("user", "q")])
    _, reasons = run("difficulty_filter", [*recs, plain], drop_always_solved=True, drop_never_solved=True)
    assert reasons == [None, None, "never solved (difficulty 1)", "always solved (difficulty 0)", reasons[-1]]
    assert "run verify_answers first" in reasons[-1]
    _, reasons = run("difficulty_filter", [*recs, plain], min=0.5, max=0.9, missing="keep")
    assert reasons == ["too easy: difficulty 0.25 < 0.5", None, "too hard: difficulty 1.00 > 0.9", reasons[3], None]
    assert reasons[3].startswith("too easy")
    fresh = records()
    _, results = run("verify_answers", fresh)  # the kept answers carry their prompt's difficulty
    children = [x for out in results for x in out if isinstance(x, Record)]
    _, reasons = run("difficulty_filter", children, drop_always_solved=True)
    assert reasons.count("always solved (difficulty 0)") == 2 and reasons.count(None) == 4
