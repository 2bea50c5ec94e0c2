"""Rule-based rankers for verifiable tasks: no judge needed when the answer can be checked.

A rule is ``fn(record, candidate) -> float | None`` (None: the rule cannot tell). Shipped rules:
``math`` (the final number equals the reference's, GSM8K ``#### 42`` style), ``constraints``
(checkable constraints in ``meta["constraints"]``: the share that holds) and ``python_runs`` (the
answer's Python code, plus ``meta["tests"]`` if any, exits 0 in a sandbox). Other modules add their own with
:func:`register_rule`, or a recipe names one as ``package.module:function``.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable
from typing import Any

from datamill.errors import DatamillError
from datamill.prefs import sandbox
from datamill.record import Record

Rule = Callable[[Record, dict[str, Any]], float | None]
RULES: dict[str, Rule] = {}

NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
GSM8K_FINAL = re.compile(r"####\s*(.+)")
BOXED = re.compile(r"\\boxed\{([^{}]*)\}")


def register_rule(name: str) -> Callable[[Rule], Rule]:
    def deco(fn: Rule) -> Rule:
        RULES[name] = fn
        return fn

    return deco


def get_rule(name: str) -> Rule:
    """A shipped rule by name, or ``package.module:function``."""
    if name in RULES:
        return RULES[name]
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            fn = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise DatamillError(f"rule '{name}' cannot be loaded: {e}") from None
        if not callable(fn):
            raise DatamillError(f"rule '{name}' is not a function")
        return fn
    raise DatamillError(f"unknown rule '{name}' (shipped: {', '.join(sorted(RULES))}; or package.module:function)")


def final_number(text: str) -> float | None:
    """The answer's final number: after ``####`` if present, else inside ``\\boxed{}``, else the last
    number in the text. Thousands separators and ``$`` are ignored."""
    if not text:
        return None
    m = GSM8K_FINAL.search(text)
    scope = m.group(1) if m else None
    if scope is None and (b := BOXED.findall(text)):
        scope = b[-1]
    found = NUMBER.findall(scope if scope is not None else text)
    if not found:
        return None
    try:
        return float(found[-1 if scope is None else 0].replace(",", ""))
    except ValueError:
        return None


def math_match(answer: str, reference: str, tolerance: float = 1e-6) -> bool | None:
    """Whether the final numbers agree; None when the reference has no number."""
    ref = final_number(reference)
    if ref is None:
        return None
    got = final_number(answer)
    return got is not None and abs(got - ref) <= tolerance * max(1.0, abs(ref))


def _reference(rec: Record) -> str | None:
    ref = rec.meta.get("reference")
    return ref if isinstance(ref, str) else None


@register_rule("math")
def math_rule(rec: Record, cand: dict[str, Any]) -> float | None:
    """10 when the candidate's final number equals ``meta["reference"]``'s, else 1."""
    ref = _reference(rec)
    if ref is None:
        return None
    ok = math_match(str(cand.get("text", "")), ref)
    return None if ok is None else (10.0 if ok else 1.0)


def _words(text: str) -> int:
    cjk = len(re.findall(r"[\u3400-\u9fff]", text))
    return cjk + len(re.findall(r"[^\s\u3400-\u9fff]+", text))


def check(text: str, constraint: dict[str, Any]) -> bool | None:
    """One checkable constraint: ``{"type": "min_words"|"max_words"|"include"|"exclude"|"json"|
    "starts_with"|"ends_with", "value": ...}``; None for a type it does not know."""
    kind, value = constraint.get("type"), constraint.get("value")
    if kind == "min_words":
        return _words(text) >= int(value)
    if kind == "max_words":
        return _words(text) <= int(value)
    if kind == "include":
        return all(str(k).lower() in text.lower() for k in (value if isinstance(value, list) else [value]))
    if kind == "exclude":
        return not any(str(k).lower() in text.lower() for k in (value if isinstance(value, list) else [value]))
    if kind == "starts_with":
        return text.strip().startswith(str(value))
    if kind == "ends_with":
        return text.strip().endswith(str(value))
    if kind == "json":
        try:
            json.loads(text)
        except ValueError:
            return False
        return True
    return None


@register_rule("constraints")
def constraints_rule(rec: Record, cand: dict[str, Any]) -> float | None:
    """1 + 9 × the share of ``meta["constraints"]`` the candidate satisfies (unknown types are skipped)."""
    constraints = rec.meta.get("constraints")
    if not isinstance(constraints, list):
        return None
    results = [check(str(cand.get("text", "")), c) for c in constraints if isinstance(c, dict)]
    known = [r for r in results if r is not None]
    if not known:
        return None
    return 1.0 + 9.0 * sum(known) / len(known)


CODE_BLOCK = re.compile(r"```(?:python|py|Python)?[ \t]*\n(.*?)```", re.S)


def python_runs(code: str, tests: str = "", timeout: float = 10.0, *, unsafe_no_sandbox: bool = False) -> bool:
    """Whether ``code`` (then ``tests``, e.g. asserts) exits 0 within ``timeout`` seconds. It is model
    output, so it runs in the bubblewrap sandbox of :mod:`datamill.prefs.sandbox` (no network, no host
    files, no way to outlive the call); without one it is refused unless ``unsafe_no_sandbox``."""
    return sandbox.run_python(code + "\n" + tests, timeout, unsafe_no_sandbox=unsafe_no_sandbox) == 0


@register_rule("python_runs")
def python_rule(rec: Record, cand: dict[str, Any], *, unsafe_no_sandbox: bool = False) -> float | None:
    """10 when the candidate's Python (its fenced blocks, else the whole text) and ``meta["tests"]`` run
    cleanly in the sandbox, else 1 (``unsafe_no_sandbox``: see :func:`python_runs`)."""
    text = str(cand.get("text", ""))
    blocks = CODE_BLOCK.findall(text)
    code = "\n".join(blocks) if blocks else text
    if not code.strip():
        return None
    tests = rec.meta.get("tests")
    ok = python_runs(code, tests if isinstance(tests, str) else "", unsafe_no_sandbox=unsafe_no_sandbox)
    return 10.0 if ok else 1.0
