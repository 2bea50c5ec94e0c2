"""verify_answers: rejection sampling with a verifier (RFT, STaR) — keep only answers that check out.

Every candidate in ``meta["candidates"]`` (``sample_answers``, ``group_answers``) is verified against the
record's reference and gets ``correct`` and ``extracted`` (what was compared); the record gets
``meta["pass_at_k"]`` (n, correct, pass@1 and the configured pass@k, unbiased estimator) and
``meta["difficulty"]`` (1 − the share correct). Then ``keep`` decides what becomes training data: every
correct candidate, the shortest, the ``k`` most diverse, or the best judged one — each an SFT record with
its lineage (``parent``, ``candidate`` index, ``model``) — or ``annotate`` keeps the prompt record itself
for a later step (``difficulty_filter``). A prompt with no correct candidate is dropped
with ``no correct answer among N``; a parent that gave its answers is dropped as ``expanded into N
verified answers`` (its annotated candidates go with it into dropped.jsonl).

Counters account for every candidate: ``candidates = correct + wrong`` (+ ``candidates_unverified`` of
prompts without a usable reference), and for the expanding policies ``correct = kept + correct_not_kept``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from datamill.llm import LLMClient
from datamill.ops import register
from datamill.ops.base import Generator, OpConfig
from datamill.prefs.candidates import candidates, prompt_of
from datamill.record import Message, Record
from datamill.results import Drop
from datamill.verify import diversity, passk
from datamill.verify.verifiers import Verdict, verify

Kind = Literal["math", "code", "constraints", "exact", "regex"]
REFERENCE_KEYS = {"code": "tests", "constraints": "synth.constraints"}  # the rest: "reference"
KEEP_META = ("input", "reference", "source")


def lookup(meta: dict[str, Any], key: str) -> Any:
    """``meta`` at a dotted path (``synth.constraints``); None when absent."""
    value: Any = meta
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@register
class VerifyAnswers(Generator):
    """Verify every candidate against the reference; keep the correct ones as SFT records (``keep``)."""

    name = "verify_answers"
    uses_llm = False

    class Config(OpConfig):
        verifier: Kind = "math"
        reference_key: str | None = Field(
            None,
            description="meta key (dotted path) of the reference; default: tests for code, synth.constraints "
            "for constraints, reference otherwise",
        )
        keep: Literal["all_correct", "shortest_correct", "most_diverse", "best_judged", "annotate"] = "all_correct"
        k: int = Field(2, ge=1, description="most_diverse: how many correct answers to keep per prompt")
        ngram: int = Field(3, ge=1, le=16, description="most_diverse: words per shingle for the MinHash similarity")
        score: str = Field("score", description="best_judged: the candidate field that ranks (score, wins, rating)")
        pass_k: list[int] = Field([1, 4, 8], description="the k of pass@k to estimate (those above n are skipped)")
        last_number: bool = Field(
            True, description="math: fall back to the answer's last number (false: only a marked or bare answer counts)"
        )
        normalize: bool = Field(True, description="exact/regex: compare case- and punctuation-insensitively")
        timeout: float = Field(10.0, gt=0, le=600, description="code: seconds the tests may run")
        unsafe_no_sandbox: bool = Field(
            False, description="code: without a bubblewrap sandbox, run the code unisolated instead of failing"
        )

        @model_validator(mode="after")
        def _check(self):
            if self.unsafe_no_sandbox and self.verifier != "code":
                raise ValueError("unsafe_no_sandbox applies to verifier: code only")
            if any(k < 1 for k in self.pass_k):
                raise ValueError("pass_k values must be at least 1")
            return self

        def key(self) -> str:
            return self.reference_key or REFERENCE_KEYS.get(self.verifier, "reference")

    async def agenerate(self, record: Record, llm: LLMClient | None) -> list[Record | Drop]:
        c = self.config
        cands = candidates(record)
        if not cands:
            self.counters["prompts_without_candidates"] += 1
            return [Drop(record, "no candidates to verify")]
        reference = lookup(record.meta, c.key())
        verdicts = [] if reference is None else [self._verify(str(x.get("text") or ""), reference) for x in cands]
        undecided = next((v for v in verdicts if v.correct is None), None)
        if reference is None or undecided is not None:
            self.counters["prompts_without_usable_reference"] += 1
            self.counters["candidates_unverified"] += len(cands)
            why = undecided.reason if undecided is not None else f"no reference in meta.{c.key()}"
            return [Drop(record, f"cannot verify: {why}")]
        for cand, v in zip(cands, verdicts, strict=True):
            cand["correct"] = bool(v.correct)
            cand["extracted"] = v.extracted
            if v.how:
                cand["extracted_by"] = v.how
            if v.reason:
                cand["verify_reason"] = v.reason
        n, right = len(cands), sum(bool(v.correct) for v in verdicts)
        record.meta["pass_at_k"] = {"n": n, "correct": right, **passk.pass_at(n, right, c.pass_k)}
        record.meta["difficulty"] = passk.difficulty(n, right)
        record.meta["verifier"] = c.verifier
        self._count(verdicts)
        if c.keep == "annotate":
            return [record]
        if right == 0:
            return [Drop(record, f"no correct answer among {n}")]
        chosen = self._choose(cands)
        self._add("kept", len(chosen))
        self._add("correct_not_kept", right - len(chosen))
        children: list[Record | Drop] = [self._child(record, cands, i) for i in chosen]
        plural = "answer" if len(chosen) == 1 else "answers"
        return [*children, Drop(record, f"expanded into {len(chosen)} verified {plural}")]

    def _verify(self, text: str, reference: Any) -> Verdict:
        c = self.config
        return verify(
            c.verifier,
            text,
            reference,
            timeout=c.timeout,
            unsafe_no_sandbox=c.unsafe_no_sandbox,
            normalize_text=c.normalize,
            last_number=c.last_number,
        )

    def _add(self, name: str, n: int) -> None:
        if n:
            self.counters[name] += n

    def _count(self, verdicts: list[Verdict]) -> None:
        right = sum(bool(v.correct) for v in verdicts)
        self._add("prompts", 1)
        self._add("prompts_solved" if right else "prompts_unsolved", 1)
        self._add("prompts_always_solved", right == len(verdicts))
        self._add("candidates", len(verdicts))
        self._add("correct", right)
        self._add("wrong", len(verdicts) - right)
        self._add("wrong: no answer found", sum(not v.correct and v.extracted is None for v in verdicts))

    def _choose(self, cands: list[dict[str, Any]]) -> list[int]:
        """Indexes of the correct candidates to keep, by the ``keep`` policy."""
        c = self.config
        right = [i for i, x in enumerate(cands) if x["correct"]]
        length = {i: len(str(cands[i].get("text") or "")) for i in right}
        if c.keep == "all_correct":
            return right
        if c.keep == "most_diverse":
            picked = diversity.most_diverse([str(cands[i].get("text") or "") for i in right], c.k, c.ngram)
            return [right[j] for j in picked]
        if c.keep == "best_judged":
            scored = [i for i in right if _number(cands[i].get(c.score)) is not None]
            if scored:  # the highest score; among equals the shorter, then the earlier
                return [min(scored, key=lambda i: (-_number(cands[i].get(c.score)), length[i], i))]
            self.counters[f"best_judged: no {c.score}, kept the shortest"] += 1
        return [min(right, key=lambda i: (length[i], i))]

    def _child(self, record: Record, cands: list[dict[str, Any]], i: int) -> Record:
        """One SFT record: the prompt and candidate ``i`` as the answer, with where it came from."""
        cand = cands[i]
        meta = {k: record.meta[k] for k in KEEP_META if k in record.meta}
        meta.update(
            method="verify_answers",
            parent=record.id,
            candidate=i,
            model=cand.get("model"),
            keep=self.config.keep,
            verifier=self.config.verifier,
            extracted=cand.get("extracted"),
            difficulty=record.meta["difficulty"],
            pass_at_k=record.meta["pass_at_k"],
            candidate_meta={k: v for k, v in cand.items() if k not in ("text", "extracted", "correct")},
        )
        text = str(cand.get("text") or "")
        child = Record(
            messages=[*prompt_of(record), Message("assistant", text)],
            system=record.system,
            tools=record.tools,
            meta=meta,
        )
        child.id = child.compute_id()
        return child
