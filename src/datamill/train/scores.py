"""Reference scores of one generation: maths exact match (GSM8K ``#### 18``, ``\\boxed{}``: ``verify_math``) in
two readings — ``strict`` counts only an answer the model states (``####``, boxed, "the answer is"), ``flexible``
also its last number, as lm-evaluation-harness's strict-match / flexible-extract — and ROUGE-L against the
reference text (``synth.rouge``: rouge-score's tokens, CJK characters one each)."""

from __future__ import annotations

from typing import Any

from datamill.synth.rouge import rouge_l
from datamill.verify.extract import final_answer
from datamill.verify.verifiers import verify_math

MATHS_FINALS = ("gsm8k", "boxed")  # a reference whose final answer is marked so: exact match applies


def is_maths_reference(reference: str) -> bool:
    found = final_answer(reference, last_number=False)
    return found is not None and found.how in MATHS_FINALS


def score(output: str, reference: str) -> dict[str, Any]:
    """``rouge_l`` always; ``exact`` / ``exact_flexible`` (and what was ``extracted``) for a maths reference."""
    out: dict[str, Any] = {"rouge_l": round(rouge_l(output, reference), 4)}
    if is_maths_reference(reference):
        strict = verify_math(output, reference, last_number=False)
        flexible = verify_math(output, reference, last_number=True)
        out |= {
            "exact": bool(strict.correct),
            "exact_flexible": bool(flexible.correct),
            "extracted": flexible.extracted,
        }
    return out


def summarize(scored: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over the scored samples: ROUGE-L over all, exact match over those with a maths reference."""
    out: dict[str, Any] = {}
    if scored:
        out["rouge_l"] = {"items": len(scored), "mean": round(sum(s["rouge_l"] for s in scored) / len(scored), 4)}
    maths = [s for s in scored if "exact" in s]
    if maths:
        strict, flexible = sum(s["exact"] for s in maths), sum(s["exact_flexible"] for s in maths)
        out["exact_match"] = {
            "items": len(maths),
            "strict": round(strict / len(maths), 4),
            "flexible": round(flexible / len(maths), 4),
            "correct_strict": strict,
            "correct_flexible": flexible,
        }
    return out
