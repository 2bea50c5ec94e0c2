"""The verifiers on hand-checked answers: maths equivalence against real GSM8K references (currency, units,
thousands separators, fractions, percentages, negatives, LaTeX), short-answer matching, IFEval-style
constraints, and model-written code run against tests in the bubblewrap sandbox."""

from __future__ import annotations

import json
import os

import pytest
from conftest import DATA

from datamill.prefs import sandbox
from datamill.verify import maths
from datamill.verify.extract import boxed, final_answer
from datamill.verify.verifiers import verify


def gsm8k_test(i: int) -> dict:
    with (DATA / "gsm8k" / "test.jsonl").open(encoding="utf-8") as f:
        for n, line in enumerate(f):
            if n == i:
                return json.loads(line)
    raise IndexError(i)


JANET = gsm8k_test(0)["answer"]  # "... #### 18" (dollars a day)
ROBE = gsm8k_test(1)["answer"]  # "... #### 3" (bolts)
HOUSE = gsm8k_test(2)["answer"]  # "... #### 70000" (profit in dollars)
SPRINTS = gsm8k_test(3)["answer"]  # "... #### 540" (meters)

# (candidate answer, reference, verdict) — each checked by hand
MATH_TABLE = [
    ("Janet sells 16 - 3 - 4 = 9 eggs and makes 9 * 2 = $18. The answer is 18.", JANET, True),
    ("She makes $18 every day at the farmers' market.", JANET, True),  # the last number, with currency
    ("So the final answer is $\\boxed{18}$.", JANET, True),
    ("18 dollars", JANET, True),  # units after the number
    ("#### 18.00", JANET, True),
    ("<think>16 - 3 - 4 = 9 and 9 * 2 = 18, or is it 16?</think>The answer is 18.", JANET, True),  # thinking skipped
    ("She sells 16 eggs, so the answer is 16.", JANET, False),
    ("The answer is 18 or 20.", JANET, False),  # a hedge is no answer
    ("I am not sure how to solve this.", JANET, False),  # no number at all
    ("The answer is 3 bolts.", ROBE, True),
    ("It takes 2 + 1 = 3 bolts in total. The answer is 2 + 1 = 3", ROBE, True),  # the working ends in the answer
    ("The answer is \\boxed{2}", ROBE, False),
    ("He made a profit of $70,000.", HOUSE, True),  # thousands separator and currency
    ("#### 70000", HOUSE, True),
    ("The answer is 70.000", HOUSE, False),  # a decimal point, not a European thousands separator
    ("The answer is 7,000.", HOUSE, False),
    ("He runs 540 meters a week.", SPRINTS, True),
    ("The answer is 5,40", SPRINTS, False),  # "5,40" is not a thousands-separated number
    ("\\boxed{\\frac{3}{4}}", "0.75", True),
    ("The answer is 3/4.", "\\frac{3}{4}", True),
    ("0.75", "3/4", True),
    ("The answer is 0.7.", "3/4", False),
    ("The answer is 1 1/2 cups.", "1.5", True),  # a mixed number
    ("The answer is 25%.", "25", True),  # GSM8K writes a percentage as the bare number
    ("25 percent", "0.25", True),  # ... or as a fraction of one
    ("The answer is 2.5%.", "25", False),
    ("The answer is -5.", "#### -5", True),
    ("The temperature fell to −5 degrees.", "-5", True),  # a Unicode minus sign
    ("The answer is 5.", "#### -5", False),
    ("\\boxed{\\text{\\$}1,234.50}", "1234.5", True),
    ("\\boxed{\\frac{1}{2}\\sqrt{3}}", "\\frac{\\sqrt{3}}{2}", True),  # symbolic, by math-verify
    ("\\boxed{\\frac{\\sqrt{2}}{2}}", "\\frac{\\sqrt{3}}{2}", False),
    ("The answer is \\boxed{(x+1)^2}.", "x^2+2x+1", True),
    ("\\boxed{\\{2, 1\\}}", "\\{1, 2\\}", True),  # sets, braces nested inside \boxed{}
]


@pytest.mark.parametrize("answer, reference, expected", MATH_TABLE)
def test_math_verifier_on_the_hand_checked_table(answer, reference, expected):
    pytest.importorskip("math_verify")
    verdict = verify("math", answer, reference)
    assert verdict.correct is expected, verdict
    assert verdict.extracted is not None or not expected


def test_the_table_is_big_and_mixed():
    assert len(MATH_TABLE) >= 20
    assert sum(e for *_, e in MATH_TABLE) >= 10 and sum(not e for *_, e in MATH_TABLE) >= 10


def fa(text: str, **kw) -> tuple[str, str] | None:
    found = final_answer(text, **kw)
    return None if found is None else (found.text, found.how)


def test_final_answer_markers_in_order():
    assert fa("Step 1 ... #### 1,234\nThe answer is 5") == ("1,234", "gsm8k")
    assert fa("The answer is 5, i.e. \\boxed{\\frac{a}{\\sqrt{b}}}.") == ("\\frac{a}{\\sqrt{b}}", "boxed")
    final = "First 3, then 4. Final Answer: The final answer is $7$. I hope it is correct."
    assert fa(final) == ("$7$", "answer_is")
    assert fa("所以答案是 42。") == ("42", "answer_is")
    assert fa("She had 5 apples and ate 2, leaving 3 apples.") == ("3", "last_number")
    assert fa("She had some apples and ate them.") is None
    assert fa("She had 5 apples.", last_number=False) is None
    assert fa("42 apples") == ("42 apples", "whole")  # a short answer is the answer itself
    assert fa("") is None and fa("<think>about 7</think>") is None


def test_boxed_takes_the_last_balanced_box():
    assert boxed("\\boxed{1} then \\boxed{\\frac{1}{\\sqrt{2}}}") == "\\frac{1}{\\sqrt{2}}"
    assert boxed("\\fbox{x^{2}}") == "x^{2}"
    assert boxed("\\boxed{1} and \\boxed{never closed") == "1"  # an unclosed box is skipped
    assert boxed("no box") is None


def test_numbers_read_exactly():
    n = maths.number
    assert n("$1,234.50").value == maths.Fraction(2469, 2)
    assert n("-\\frac{3}{4}").value == maths.Fraction(-3, 4) and n("\\dfrac34").value == maths.Fraction(3, 4)
    assert n("25%").percent and n("25 percent").percent and not n("25").percent
    assert n("18 dollars per day").value == 18 and n("x = 5").value == 5
    for no in ("1,5", "2x + 3", "18 or 20", "3/0", "x <= 5", "", "\\sqrt{2}"):
        assert n(no) is None, no


def test_without_math_verify_symbolic_answers_match_only_as_strings(monkeypatch):
    monkeypatch.setattr(maths, "_math_verify", lambda: None)
    assert verify("math", "The answer is 70,000 dollars.", HOUSE).correct  # numbers need no math-verify
    assert not verify("math", "\\boxed{\\frac{1}{2}\\sqrt{3}}", "\\frac{\\sqrt{3}}{2}").correct
    assert verify("math", "\\boxed{\\frac{\\sqrt{3}}{2}}", "\\frac{\\sqrt{3}}{2}").correct


def test_a_reference_without_an_answer_cannot_be_checked():
    v = verify("math", "The answer is 18.", "no number here, just words")
    assert v.correct is None and "reference" in v.reason
    assert verify("math", "18", None).correct is None


@pytest.mark.parametrize(
    "kind, answer, reference, expected",
    [
        ("exact", "Paris", "paris", True),
        ("exact", "The answer is: Paris.", "Paris", True),
        ("exact", "the Paris", ["Lyon", "paris"], True),  # any of several references; articles ignored
        ("exact", "London", "Paris", False),
        ("exact", "Paris, France", "Paris", False),
        ("exact", "巴黎。", "巴黎", True),
        ("regex", "The answer is 42 apples", r"^42\b", True),
        ("regex", "The answer is 420", r"^42\b", False),
        ("regex", "Answer: YES", r"^(yes|true)$", True),
    ],
)
def test_short_answer_verifiers(kind, answer, reference, expected):
    assert verify(kind, answer, reference).correct is expected


def test_short_answer_options_and_bad_references():
    assert not verify("exact", "paris", "Paris", normalize_text=False).correct
    assert not verify("regex", "Answer: YES", r"^yes$", normalize_text=False).correct
    assert verify("regex", "x", "(unclosed").correct is None
    assert verify("exact", "x", 42).correct is None


def test_constraints_verifier_uses_the_ifeval_checkers():
    constraints = [{"type": "words", "max": 6}, {"type": "keywords", "words": ["solar"]}]
    assert verify("constraints", "Solar power is clean.", constraints).correct
    wrong = verify("constraints", "Wind power is clean and cheap and plentiful.", constraints)
    assert wrong.correct is False and wrong.reason == "fails words, keywords"
    assert verify("constraints", "x", [{"type": "no such check"}]).correct is None
    assert verify("constraints", "x", "not a list").correct is None


def test_unknown_verifier():
    with pytest.raises(ValueError, match="unknown verifier"):
        verify("vibes", "x", "y")


@pytest.fixture
def sandboxed():
    """Code runs only in the sandbox: a failure on CI when it is missing, a skip elsewhere."""
    problem = sandbox.problem()
    if problem is not None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI: the sandbox is missing: {problem}")
        pytest.skip(problem)


ADD_TESTS = "assert add(2, 3) == 5\nassert add(-1, 1) == 0\n"


def test_code_verifier_runs_the_tests_in_the_sandbox(sandboxed):
    right = "Here it is:\n```python\ndef add(a, b):\n    return a + b\n```\nDone."
    wrong = "```python\ndef add(a, b):\n    return a - b\n```"
    loops = "```python\ndef add(a, b):\n    while True:\n        pass\n```\n"
    v = verify("code", right, ADD_TESTS)
    assert v.correct is True and v.extracted.startswith("def add") and v.how == "fenced"
    assert verify("code", wrong, ADD_TESTS).correct is False
    assert verify("code", "def add(a, b): return a + b", ADD_TESTS).correct is True  # unfenced: all of it
    assert verify("code", loops + "add(1, 2)", ADD_TESTS, timeout=2).correct is False  # killed at the timeout
    assert verify("code", "", ADD_TESTS).correct is False
    assert verify("code", right, "").correct is None
