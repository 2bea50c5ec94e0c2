"""One verifier per kind of checkable answer, and :func:`verify` to pick one by name.

Each takes the candidate's text and the record's reference and returns a :class:`Verdict`: ``correct``
True/False, or None when the *reference* cannot be checked against (no number in a maths reference, an
unknown constraint type, a broken pattern) — that is the data's fault, not the answer's. Kinds:

- ``math``: the final answer (``extract.final_answer``) equals the reference's (``maths.equivalent``);
- ``code``: the answer's Python (fenced blocks, else all of it) and the reference tests exit 0 in the
  bubblewrap sandbox of ``prefs.sandbox`` (via ``prefs.rules.python_runs``);
- ``constraints``: every IFEval-style constraint of ``synth.constraints`` holds;
- ``exact``: the final answer equals one of the references, normalized (case, width, punctuation,
  articles, spacing) unless ``normalize: false``;
- ``regex``: the reference pattern matches (``re.search``) the final answer, case-insensitively unless
  ``normalize: false``.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from datamill.prefs import rules
from datamill.synth import constraints as C
from datamill.verify import maths
from datamill.verify.extract import after_thinking, final_answer


@dataclass(frozen=True, slots=True)
class Verdict:
    correct: bool | None  # None: the reference cannot be checked against
    extracted: str | None = None  # what was compared: the final answer, the code run
    how: str | None = None  # where it came from: gsm8k, boxed, answer_is, whole, last_number, fenced, text
    reason: str = ""  # why not correct (or why it cannot tell)


def verify_math(answer: str, reference: Any, *, last_number: bool = True) -> Verdict:
    """The candidate's final answer against the reference's (a GSM8K solution ending ``#### 18``, a
    ``\\boxed{}`` solution, or a bare answer such as ``18`` or ``\\frac{3}{4}``). ``last_number: false`` does
    not guess the answer from the last number of a solution that never states one — a weak model's lucky
    number in passing then does not count."""
    if not isinstance(reference, str | int | float) or isinstance(reference, bool):
        return Verdict(None, reason="the reference is not a maths answer")
    ref = final_answer(str(reference))
    if ref is None:
        return Verdict(None, reason="no final answer in the reference")
    got = final_answer(answer, last_number=last_number)
    if got is None:
        return Verdict(False, reason="no final answer found")
    ok = maths.equivalent(got.text, ref.text)
    return Verdict(ok, got.text, got.how, "" if ok else f"{got.text} ≠ {ref.text}")


def verify_code(answer: str, reference: Any, *, timeout: float = 10.0, unsafe_no_sandbox: bool = False) -> Verdict:
    """The candidate's code, then the reference tests (e.g. asserts), exit 0 within ``timeout`` seconds in the
    sandbox (``unsafe_no_sandbox``: see ``prefs.rules.python_runs``; without a sandbox it raises)."""
    if not isinstance(reference, str) or not reference.strip():
        return Verdict(None, reason="no tests to run")
    text = after_thinking(answer)
    blocks = rules.CODE_BLOCK.findall(text)
    code = "\n".join(blocks) if blocks else text
    if not code.strip():
        return Verdict(False, reason="no code found")
    ok = rules.python_runs(code, reference, timeout, unsafe_no_sandbox=unsafe_no_sandbox)
    return Verdict(ok, code, "fenced" if blocks else "text", "" if ok else "the tests fail (or time out)")


def verify_constraints(answer: str, reference: Any) -> Verdict:
    """Every constraint dict (``{"type": "words", "max": 50}``, … — ``synth.constraints.CHECKERS``) holds."""
    if not isinstance(reference, list) or not all(isinstance(c, dict) for c in reference) or not reference:
        return Verdict(None, reason="no list of constraints")
    text = after_thinking(answer).strip()
    try:
        broken = C.failed(text, reference)
    except (ValueError, TypeError, KeyError) as e:
        return Verdict(None, reason=f"constraints cannot be checked: {e}")
    return Verdict(not broken, text, "text", f"fails {', '.join(broken)}" if broken else "")


ARTICLES = re.compile(r"\b(?:a|an|the)\b")
PUNCT = str.maketrans("", "", string.punctuation + "。，、！？：；“”‘’（）《》")


def normalize(text: str) -> str:
    """Short-answer normalization (as SQuAD's): width, case, punctuation, English articles, spacing."""
    t = unicodedata.normalize("NFKC", text).casefold().translate(PUNCT)
    return " ".join(ARTICLES.sub(" ", t).split())


def _short_answer(answer: str) -> tuple[str, str]:
    found = final_answer(answer, last_number=False)
    return (found.text, found.how) if found else (after_thinking(answer).strip(), "text")


def verify_exact(answer: str, reference: Any, *, normalize_text: bool = True) -> Verdict:
    """The final answer equals the reference, or one of a list of references."""
    refs = [reference] if isinstance(reference, str) else reference
    if not isinstance(refs, list) or not refs or not all(isinstance(r, str) for r in refs):
        return Verdict(None, reason="no reference answer")
    got, how = _short_answer(answer)
    same = normalize if normalize_text else str.strip
    ok = bool(got) and same(got) in {same(r) for r in refs}
    return Verdict(ok, got, how, "" if ok else f"{got!r} is not {' / '.join(map(repr, refs))}")


def verify_regex(answer: str, reference: Any, *, normalize_text: bool = True) -> Verdict:
    """The reference regular expression is found in the final answer."""
    if not isinstance(reference, str) or not reference:
        return Verdict(None, reason="no pattern")
    try:
        pattern = re.compile(reference, re.I if normalize_text else 0)
    except re.error as e:
        return Verdict(None, reason=f"bad pattern: {e}")
    got, how = _short_answer(answer)
    ok = pattern.search(got) is not None
    return Verdict(ok, got, how, "" if ok else f"{got!r} does not match /{reference}/")


VERIFIERS: dict[str, Callable[..., Verdict]] = {
    "math": verify_math,
    "code": verify_code,
    "constraints": verify_constraints,
    "exact": verify_exact,
    "regex": verify_regex,
}
OPTIONS = {
    "math": ("last_number",),
    "code": ("timeout", "unsafe_no_sandbox"),
    "exact": ("normalize_text",),
    "regex": ("normalize_text",),
}


def verify(kind: str, answer: str, reference: Any, **options: Any) -> Verdict:
    """Verify ``answer`` with the verifier ``kind``; ``options`` the kind does not take are ignored, so one
    call site serves every kind."""
    try:
        fn = VERIFIERS[kind]
    except KeyError:
        raise ValueError(f"unknown verifier {kind!r}; known: {', '.join(VERIFIERS)}") from None
    return fn(answer or "", reference, **{k: v for k, v in options.items() if k in OPTIONS.get(kind, ())})
