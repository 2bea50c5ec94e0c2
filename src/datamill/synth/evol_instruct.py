"""evol_instruct: make instructions harder in rounds with an LLM (Evol-Instruct, WizardLM).

Each round picks an evolution — in-depth (add constraints, deepen, concretize, require reasoning,
complicate the input) or in-breadth (a new, rarer task in the same domain) — rewrites the current
instruction with it, and answers the result. A failed evolution is eliminated with its reason (empty,
copied the evolving prompt's words, no information gain — by ROUGE-L and, with ``check_gain``, by
asking the model —, the model failed to answer, an answer of only stop words) and the next round
evolves the last good instruction again. Every surviving evolution is a new record whose provenance
names its parent, the original, the evolution and the round; the input record stays (``keep_original``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from datamill.llm import prompts, reasoning
from datamill.llm.client import LLMClient
from datamill.llm.prompts import detect_lang
from datamill.ops import register
from datamill.ops.base import AnswerGeneratorConfig, Generator
from datamill.record import Record
from datamill.results import Drop
from datamill.synth.common import NOT_A_TASK, begin, provenance, sft_record
from datamill.synth.evol import IN_BREADTH, IN_DEPTH, answer_problem, evolution_problem
from datamill.synth.parse import clean, yes_no

Method = Literal["constraints", "deepen", "concretize", "reasoning", "complicate_input", "breadth"]


@register
class EvolInstruct(Generator):
    """Evolve each instruction in rounds (in-depth / in-breadth), answer it, eliminate failed evolutions."""

    name = "evol_instruct"

    class Config(AnswerGeneratorConfig):
        rounds: int = Field(3, ge=1, description="evolutions per record, each built on the last good one")
        methods: list[Method] = Field(default_factory=lambda: [*IN_DEPTH, *IN_BREADTH])
        check_gain: bool = Field(True, description="ask the model whether an in-depth evolution adds anything")
        gain_threshold: float = Field(0.9, gt=0, le=1, description="ROUGE-L to the parent at which nothing was added")
        keep_original: bool = True
        lang: Literal["auto", "en", "zh"] = "auto"

    async def agenerate(self, record: Record, llm: LLMClient | None) -> list[Record | Drop]:
        assert llm is not None
        c = self.config
        begun = begin(
            record, c.keep_original, "evolved (keep_original: false)", f"{self.context.seed}:{self.context.step}"
        )
        if begun is None:
            return [Drop(record, NOT_A_TASK)]
        task, out, rng = begun
        lang = c.lang if c.lang != "auto" else detect_lang(task.prompt)
        current, parent = task.prompt, record.id
        for rnd in range(1, c.rounds + 1):
            method = rng.choice(c.methods)
            template = "evol_breadth" if method == "breadth" else "evol_depth"
            msgs = prompts.load(template, lang).messages(instruction=current, method=method)
            evolved = clean((await llm.chat(msgs)).text)
            reason = evolution_problem(current, evolved, c.gain_threshold)
            if reason is None and c.check_gain and method != "breadth":
                same = await llm.chat(prompts.load("evol_equal", lang).messages(original=current, evolved=evolved))
                if yes_no(same.text):
                    reason = "no information gain"
            answer = reasoning.Answer("", None, c.reasoning)
            if reason is None:
                answer = await reasoning.answer(llm, evolved, c.reasoning)
                reason = answer.problem or answer_problem(answer.text)
            prov = provenance(
                "evol_instruct", c.llm, f"{template}.{lang}", round=rnd, evolution=method, parent_id=parent,
                root_id=record.id,
            )  # fmt: skip
            candidate = sft_record(evolved, "", answer.written, prov, **answer.meta)
            self.counters[f"evolution: {method}"] += 1
            if reason is not None:
                out.append(Drop(candidate, f"eliminated: {reason}"))
                continue
            out.append(candidate)
            current, parent = evolved, candidate.id
        return out
