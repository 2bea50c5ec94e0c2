"""FLAN-style templating: zero-shot phrasings, few-shot from earlier records, chain-of-thought from
real GSM8K rationales, flipped input/output — no model involved."""

from __future__ import annotations

import asyncio
import json

import pytest
from pydantic import ValidationError

from datamill.ops import get
from datamill.ops.base import OpContext
from datamill.record import Message, Record
from datamill.results import Drop
from datamill.synth.flan_templates import rationale


def gsm8k(data_dir, n: int) -> list[Record]:
    out = []
    with open(data_dir / "gsm8k" / "train.jsonl", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            rec = Record(messages=[Message("user", row["question"]), Message("assistant", row["answer"])])
            rec.id = rec.compute_id()
            out.append(rec)
            if len(out) == n:
                break
    return out


def run_flan(records, **options):
    cls = get("flan_templates")
    op = cls(cls.Config(**options), OpContext(seed=0, step=0, workdir=None))
    return op, [asyncio.run(op.agenerate(r, None)) for r in records]


def test_rationale_splits_reasoning_from_the_answer(data_dir):
    for rec in gsm8k(data_dir, 20):
        why, final = rationale(rec.messages[1].content)
        assert final == rec.messages[1].content.rsplit("####", 1)[1].strip() and "####" not in why
    assert rationale("Two plus two is four. The answer is 4.") == ("Two plus two is four.", "4")
    assert rationale("因为 2+2=4，所以答案是4。") == ("因为 2+2=4，", "4")
    assert rationale("Paris.") is None


def test_every_kind_from_real_gsm8k(data_dir):
    records = gsm8k(data_dir, 4)
    mix = {"zero_shot": 1.0, "few_shot": 1.0, "cot": 1.0, "flipped": 1.0}
    op, results = run_flan(records, mix=mix, shots=2)
    for i, (rec, items) in enumerate(zip(records, results, strict=True)):
        assert items[0] is rec
        by_kind = {x.meta["synth"]["kind"]: x for x in items[1:]}
        question, answer = rec.messages[0].content, rec.messages[1].content
        assert set(by_kind) == (
            {"zero_shot", "cot", "flipped", "few_shot"} if i >= 2 else {"zero_shot", "cot", "flipped"}
        )
        assert (
            question in by_kind["zero_shot"].messages[0].content and by_kind["zero_shot"].messages[1].content == answer
        )
        cot = by_kind["cot"]
        assert cot.messages[0].content.endswith("Let's think step by step.")
        assert cot.messages[1].content.endswith(f"So the answer is {answer.rsplit('####', 1)[1].strip()}.")
        flipped = by_kind["flipped"]
        assert answer in flipped.messages[0].content and flipped.messages[1].content == question  # swapped
        assert flipped.meta["synth"] == {
            "method": "flan",
            "model": None,
            "template": "flan_flipped.en",
            "kind": "flipped",
            "parent_id": rec.id,
        }
        if i >= 2:
            shots = by_kind["few_shot"].messages[0].content
            assert shots.count("Q: ") == 3 and shots.endswith(f"Q: {question}\nA:")
            assert sum(r.messages[0].content in shots for r in records[:i]) == 2  # examples from earlier records
    assert op.counters["few_shot skipped"] == 2 and op.counters["cot"] == 4


def test_mix_ratios_and_chinese_and_no_rationale(data_dir):
    rows = json.loads((data_dir / "llamafactory" / "alpaca_zh_demo.json").read_text(encoding="utf-8"))[:200]
    records = []
    for r in rows:
        rec = Record(
            messages=[
                Message("user", "\n".join(p for p in (r["instruction"], r["input"]) if p)),
                Message("assistant", r["output"]),
            ]
        )
        if r["input"]:
            rec.meta["input"] = r["input"]
        rec.id = rec.compute_id()
        records.append(rec)
    op, results = run_flan(records, mix={"zero_shot": 0.5, "flipped": 0.25}, keep_original=False)
    assert all(isinstance(items[0], Drop) for items in results)
    kinds = [x.meta["synth"]["kind"] for items in results for x in items[1:]]
    assert 70 <= kinds.count("zero_shot") <= 130 and 25 <= kinds.count("flipped") <= 75
    assert "cot" not in kinds and "few_shot" not in kinds
    zh = next(x for items in results for x in items[1:] if x.meta["synth"]["kind"] == "flipped")
    assert zh.messages[0].content.startswith("下面是一个回答。") and zh.meta["synth"]["template"] == "flan_flipped.zh"
    _, [cot_only] = run_flan(records[:1], mix={"cot": 1.0})
    assert len(cot_only) == 1  # the alpaca answer has no rationale: no chain-of-thought record


def test_mix_must_be_probabilities():
    with pytest.raises(ValidationError, match="probabilities"):
        get("flan_templates").Config(mix={"zero_shot": 2.0})
    with pytest.raises(ValidationError):
        get("flan_templates").Config(mix={"zero-shot": 1.0})
