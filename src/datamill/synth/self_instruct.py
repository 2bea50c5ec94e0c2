"""self_instruct: grow a set of seed tasks into new instruction data with an LLM (Wang et al. 2022).

Rounds of: prompt with ``seed_examples`` seed tasks + ``machine_examples`` tasks made so far → parse
the new tasks the model lists → drop the unusable ones (too short/long, banned keywords, non-text)
and those with ROUGE-L >= ``rouge_threshold`` to any existing task (an index makes this fast, see
``datamill.synth.rouge``) → ask whether each is a classification task → write an instance for it,
output-first for classification (label, then an input that has it), input-first otherwise. It stops
at ``target`` new records, after ``max_rounds``, or after ``patience`` rounds that added nothing.

The input records are the seeds (any single-turn SFT data; Self-Instruct's ``seed_tasks.jsonl`` reads
with the ``self_instruct`` format); they pass through unless ``keep_seeds: false``. Every rejected
candidate is in dropped.jsonl with its reason, so the funnel shows what the filters did.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from typing import Literal

from pydantic import Field

from datamill.llm import prompts
from datamill.llm.client import LLMConfig, LLMError
from datamill.ops import register
from datamill.ops.base import Global, OpConfig, OpContext
from datamill.record import Message, Record
from datamill.results import Drop, Generated
from datamill.synth.common import LoopClient, Task, pick_lang, provenance, sft_record, task_of
from datamill.synth.instructions import BANNED_EN, BANNED_ZH, instruction_problem
from datamill.synth.parse import instance_input_first, instance_output_first, numbered_items, yes_no
from datamill.synth.rouge import RougeIndex, tokenize

METHOD = "self_instruct"


@register
class SelfInstruct(Global):
    """Bootstrap new instruction/input/output tasks from the input seed tasks (Self-Instruct)."""

    name = "self_instruct"

    class Config(OpConfig):
        llm: LLMConfig = Field(default_factory=LLMConfig, description="the model to call (default: embedded Gemma)")
        target: int = Field(100, ge=1, description="new records to make")
        seed_examples: int = Field(6, ge=0, description="seed tasks shown per prompt")
        machine_examples: int = Field(2, ge=0, description="machine-made tasks shown per prompt")
        tasks_per_prompt: int = Field(8, ge=1, description="new tasks asked for per prompt")
        prompts_per_round: int = Field(4, ge=1, description="prompts sent at once per round")
        max_rounds: int = Field(100, ge=1)
        patience: int = Field(5, ge=1, description="stop after this many rounds in a row accept nothing")
        rouge_threshold: float = Field(0.7, gt=0, le=1, description="reject a task this similar to any existing one")
        min_tokens: int = Field(3, ge=1, description="words (a CJK character counts as one)")
        max_tokens: int = Field(150, ge=1)
        banned_keywords: list[str] = Field(default_factory=lambda: [*BANNED_EN, *BANNED_ZH])
        classify: bool = Field(True, description="ask whether a task is classification (output-first instances)")
        instance_examples: int = Field(2, ge=0, description="seed instances shown when writing an instance")
        strict_instances: bool = Field(
            False, description="require Input:/Output: labels (off: a bare answer is the output, with no input)"
        )
        keep_seeds: bool = True
        lang: Literal["auto", "en", "zh"] = "auto"

    def __init__(self, config: OpConfig, context: OpContext):
        super().__init__(config, context)
        self._made: list[str] = []  # accepted machine instructions, in index order after the seeds

    # ---- the stream ---------------------------------------------------------------------------
    def run(self, records: Iterable[Record]) -> Iterator[Record | Drop | Generated]:
        c = self.config
        seeds: list[Task] = []
        for rec in records:
            task = task_of(rec)
            if task is None:
                yield Drop(rec, "not a single-turn instruction task")
                continue
            seeds.append(task)
            yield rec if c.keep_seeds else Drop(rec, "seed task (keep_seeds: false)")
        if not seeds:
            return
        self.lang = pick_lang(c.lang, (s.instruction for s in seeds))
        self.rng = random.Random(f"{self.context.seed}:{self.context.step}:{METHOD}")
        self.index = RougeIndex(c.rouge_threshold, order_texts=[s.instruction for s in seeds])
        for s in seeds:
            self.index.add(s.instruction)
        self.seeds = seeds
        machine: list[Task] = []
        llm = LoopClient(c.llm, seed=self.context.seed)
        made = idle = 0
        try:
            for rnd in range(1, c.max_rounds + 1):
                if made >= c.target or idle >= c.patience:
                    break
                self.counters["rounds"] += 1
                accepted = 0
                for item in self._round(llm, rnd, machine, c.target - made):
                    if isinstance(item, Record):
                        made += 1
                        accepted += 1
                    yield Generated(item)
                idle = 0 if accepted else idle + 1
        finally:
            llm.close()
            self.add_usage(llm.client.usage)
        if made < c.target:
            self.counters["target_missed_by"] += c.target - made

    # ---- one round ----------------------------------------------------------------------------
    def _round(self, llm: LoopClient, rnd: int, machine: list[Task], room: int) -> Iterator[Record | Drop]:
        c = self.config
        template = f"self_instruct_tasks.{self.lang}"
        batch, shown = [], []
        for _ in range(c.prompts_per_round):
            examples = self.rng.sample(self.seeds, min(c.seed_examples, len(self.seeds)))
            examples += self.rng.sample(machine, min(c.machine_examples, len(machine)))
            self.rng.shuffle(examples)
            shown.append(examples)
            batch.append(prompts.load("self_instruct_tasks", self.lang).messages(
                tasks=[t.instruction for t in examples], n=c.tasks_per_prompt
            ))  # fmt: skip
        fresh: list[tuple[str, list[Task]]] = []
        for examples, answer in zip(shown, llm.chat_many(batch), strict=True):
            if isinstance(answer, LLMError):
                self.counters[f"llm_failed: {answer.reason}"] += 1
                continue
            for text in numbered_items(answer.text)[: c.tasks_per_prompt]:
                self.counters["candidates"] += 1
                prov = self._prov(rnd, examples, template)
                reason = instruction_problem(text, c.min_tokens, c.max_tokens, c.banned_keywords)
                if reason is None:
                    hit = self.index.match(tokenize(text))
                    if hit is not None:
                        prov["most_similar"] = self._instruction(hit[1])
                        prov["rouge_l"] = round(hit[0], 4)
                        reason = f"rouge-l >= {c.rouge_threshold}"
                if reason is not None:
                    yield Drop(_candidate(text, prov), reason)
                    continue
                self.index.add(text)
                self._made.append(text)
                fresh.append((text, examples))
        for text, examples in fresh[room:]:
            prov = self._prov(rnd, examples, template)
            yield Drop(_candidate(text, prov), "target reached")
        fresh = fresh[:room]
        flags = self._classify(llm, [t for t, _ in fresh])
        pending = [(text, examples, flag) for (text, examples), flag in zip(fresh, flags, strict=True)]
        yield from self._instances(llm, rnd, machine, template, pending)

    def _instruction(self, index_id: int) -> str:
        n = len(self.seeds)
        return self.seeds[index_id].instruction if index_id < n else self._made[index_id - n]

    def _prov(self, rnd: int, examples: list[Task], template: str) -> dict:
        return provenance(
            METHOD,
            self.config.llm,
            template,
            round=rnd,
            seed_ids=[t.id for t in examples if t.meta.get("machine") is None],
            machine_ids=[t.id for t in examples if t.meta.get("machine")] or None,
        )

    # ---- classification and instances -----------------------------------------------------------
    def _classify(self, llm: LoopClient, texts: list[str]) -> list[bool | None]:
        if not self.config.classify or not texts:
            return [None] * len(texts)
        known = [s for s in self.seeds if s.is_classification is not None]
        yes = [s for s in known if s.is_classification][:2]
        no = [s for s in known if not s.is_classification][:2]
        examples = [{"instruction": s.instruction, "is_classification": s.is_classification} for s in yes + no]
        tpl = prompts.load("self_instruct_classify", self.lang)
        answers = llm.chat_many([tpl.messages(examples=examples, instruction=t) for t in texts])
        out: list[bool | None] = []
        for a in answers:
            flag = None if isinstance(a, LLMError) else yes_no(a.text)
            self.counters["classification" if flag else "generation" if flag is False else "task type unclear"] += 1
            out.append(flag)
        return out

    def _instances(
        self,
        llm: LoopClient,
        rnd: int,
        machine: list[Task],
        template: str,
        pending: list[tuple[str, list[Task], bool | None]],
    ) -> Iterator[Record | Drop]:
        """An instance for each accepted task; a task whose answer holds none is dropped with the answer."""
        if not pending:
            return
        c = self.config
        batch, names = [], []
        for text, _, flag in pending:
            name = "self_instruct_output_first" if flag else "self_instruct_input_first"
            pool = [s for s in self.seeds if bool(s.is_classification) == bool(flag)] or self.seeds
            shots = self.rng.sample(pool, min(c.instance_examples, len(pool)))
            shots_d = [{"instruction": s.instruction, "input": s.input, "output": s.output} for s in shots]
            batch.append(prompts.load(name, self.lang).messages(examples=shots_d, instruction=text))
            names.append(name)
        for (text, examples, flag), name, answer in zip(pending, names, llm.chat_many(batch), strict=True):
            prov = self._prov(rnd, examples, template)
            prov["instance_template"] = f"{name}.{self.lang}"
            prov["is_classification"] = flag
            if isinstance(answer, LLMError):
                yield Drop(_candidate(text, prov), f"llm: {answer.reason}")
                continue
            if flag:
                parsed = instance_output_first(answer.text)
            else:
                parsed = instance_input_first(answer.text, lenient=not c.strict_instances)
            reason = None if parsed else "no instance in the answer"
            if parsed and parsed[1].strip() == parsed[0].strip():
                reason = "output copies the input"
            if reason is not None:
                yield Drop(_candidate(text, prov, answer.text), reason)
                continue
            inp, out = parsed
            rec = sft_record(text, inp, out, prov, task={"instruction": text, "is_classification": bool(flag)})
            machine.append(Task(text, inp, out, rec.id, flag, {"machine": True}))
            yield rec


def _candidate(instruction: str, prov: dict, answer: str | None = None) -> Record:
    """A rejected candidate as a record (with its id) for dropped.jsonl."""
    msgs = [Message("user", instruction)] + ([Message("assistant", answer)] if answer is not None else [])
    rec = Record(messages=msgs, meta={"synth": prov})
    rec.id = rec.compute_id()
    return rec
