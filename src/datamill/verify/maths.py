"""Are two maths answers the same? Numbers are read exactly first — ``$1,234.50``, ``18 dollars``, ``-5``,
``3/4``, ``\\frac{3}{4}``, ``1 1/2``, ``25%`` — because GSM8K-style answers are numbers dressed in currency,
units and thousands separators that a symbolic parser may misread (``1,234`` as a tuple, ``$`` as LaTeX).
Anything else (``\\frac{\\sqrt{3}}{2}``, ``(x+1)^2``, intervals, sets) goes to math-verify, which parses
LaTeX and plain expressions into SymPy and compares them symbolically; without it installed, only equal
normalized strings match."""

from __future__ import annotations

import functools
import logging
import re
import threading
import unicodedata
from dataclasses import dataclass
from fractions import Fraction

from datamill.verify.extract import NUMBER

log = logging.getLogger("datamill.verify.maths")

TOLERANCE = 1e-6  # relative, as rule_score's math rule: 0.333333 matches 1/3, 0.33 does not
LATEX_SPACE = re.compile(r"\\[,;:! ]|\\(?:left|right|displaystyle)\b|~")
TEXT_WRAP = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")
DEGREES = re.compile(r"\^\s*\{?\\circ\}?|°")
CURRENCY = re.compile(r"\\?\$|[€£¥₹]")
VARIABLE = re.compile(r"^[A-Za-z]\s*=\s*")
EQUALS = re.compile(r"(?<![<>!=])=(?!=)")  # "40 - 20 = 20": the number is what the working ends in
DECIMAL = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+"  # thousands only in groups of three: 1,5 is no number
LEADING = [  # the number a string starts with: (kind, pattern); groups: sign, then the parts
    ("mixed", re.compile(r"^(-?)\s*(\d+)\s+(\d+)\s*/\s*(\d+)")),  # 1 1/2
    ("mixed", re.compile(r"^(-?)\s*(\d+)\s*\\frac\s*\{\s*(\d+)\s*\}\s*\{\s*(\d+)\s*\}")),  # 1\frac{1}{2}
    ("ratio", re.compile(rf"^(-?)\s*\\frac\s*\{{\s*(-?{DECIMAL})\s*\}}\s*\{{\s*(-?{DECIMAL})\s*\}}")),
    ("ratio", re.compile(r"^(-?)\s*\\frac(\d)(\d)(?!\d)")),  # \frac34
    ("ratio", re.compile(rf"^(-?)\s*({DECIMAL})\s*/\s*({DECIMAL})")),
    ("plain", re.compile(rf"^(-?)\s*({DECIMAL})")),
]
PERCENT = re.compile(r"^\s*(?:%|percent\b|per\s*cent\b)", re.I)
UNITS = re.compile(r"^[A-Za-z][A-Za-z\s'’./-]*$")  # "dollars", "km", "hours per day": words, no digits or operators


@dataclass(frozen=True, slots=True)
class Number:
    value: Fraction
    percent: bool  # written with %, "percent": 25% may mean 25 or 0.25


def clean(text: str) -> str:
    """Width, minus signs, LaTeX spacing, ``\\text{}`` wrappers, degrees, ``\\%`` and currency signs normalized
    away; trailing full stop dropped."""
    t = unicodedata.normalize("NFKC", text).replace("−", "-").replace("\\%", "%")
    t = TEXT_WRAP.sub(r"\1", LATEX_SPACE.sub("", t))
    t = CURRENCY.sub("", DEGREES.sub("", t))
    t = t.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    return VARIABLE.sub("", t.strip().rstrip(".").strip())


def _decimal(s: str) -> Fraction:
    return Fraction(s.replace(",", ""))


def number(text: str) -> Number | None:
    """The number ``text`` is — optionally signed, with currency, thousands separators, a fraction or mixed
    number, a percent sign and unit words after it; after the last ``=`` when there is one — or None when it
    is something else (an expression, two numbers, prose)."""
    t = EQUALS.split(clean(text))[-1].strip()
    for kind, pattern in LEADING:
        m = pattern.match(t)
        if m is None:
            continue
        sign, *parts = m.groups()
        try:
            if kind == "mixed":
                whole, num, den = (Fraction(p) for p in parts)
                value = whole + num / den
            elif kind == "plain":
                value = _decimal(parts[0])
            else:
                value = _decimal(parts[0]) / _decimal(parts[1])
        except ZeroDivisionError:
            return None
        rest = t[m.end() :]
        pct = PERCENT.match(rest)
        if pct:
            rest = rest[pct.end() :]
        rest = rest.strip()
        if rest and not UNITS.match(rest):
            return None
        return Number(-value if sign else value, pct is not None)
    return None


def _close(a: Fraction, b: Fraction) -> bool:
    return abs(a - b) <= TOLERANCE * max(1, abs(b))


def numbers_equal(answer: Number, reference: Number) -> bool:
    """Equal values; a side written as a percentage also matches as its hundredth (25% = 25 = 0.25)."""
    a, r = answer.value, reference.value
    return _close(a, r) or (answer.percent and _close(a / 100, r)) or (reference.percent and _close(a, r / 100))


def _prose_number(text: str) -> Number | None:
    """The one number in a sentence ("she makes $18 a day"); None for LaTeX, or for text with none or with
    several ("18 or 20" hedges)."""
    found = NUMBER.findall(text)
    return number(found[0]) if len(found) == 1 and "\\" not in text else None


@functools.cache
def _math_verify():
    try:
        import math_verify
    except ImportError:
        log.warning("math-verify is not installed: non-numeric maths answers match only as equal strings")
        return None
    return math_verify


def _latex(text: str) -> str:
    return text if "$" in text or "\\(" in text or "\\[" in text else f"${text}$"


def symbolic_equal(answer: str, reference: str, timeout: int = 5) -> bool:
    """math-verify's verdict on two LaTeX / plain expressions, compared in SymPy (``\\frac{1}{2}\\sqrt{3}`` =
    ``\\frac{\\sqrt{3}}{2}``, sets, intervals, equations); equal normalized strings without it. Its timeout
    uses SIGALRM, which only the main thread may set: elsewhere it runs without one."""
    mv = _math_verify()
    if mv is None:
        return clean(answer).replace(" ", "") == clean(reference).replace(" ", "")
    seconds = timeout if threading.current_thread() is threading.main_thread() else None
    gold = mv.parse(_latex(reference), parsing_timeout=seconds)
    target = mv.parse(_latex(answer), parsing_timeout=seconds)
    return bool(gold and target and mv.verify(gold, target, timeout_seconds=seconds))


def equivalent(answer: str, reference: str) -> bool:
    """Whether a final answer (as :func:`datamill.verify.extract.final_answer` gives it) equals the
    reference's: exactly as numbers when both are, else symbolically."""
    ref = number(reference)
    got = number(answer)
    if ref is not None and got is None:
        got = _prose_number(answer)
    if ref is not None and got is not None:
        return numbers_equal(got, ref)
    return symbolic_equal(answer, reference)
