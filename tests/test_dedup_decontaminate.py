"""decontaminate: GSM8K test items mixed into alpaca_en_demo — verbatim, paraphrased by whitespace,
punctuation and number format, and embedded in longer instructions — are caught; nothing else is."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
from conftest import DATA, LF

import datamill
from datamill import ops
from datamill.ops.base import OpContext
from datamill.record import Message, Record

GSM = DATA / "gsm8k" / "test.jsonl"


def make(tmp_path: Path, **options):
    cls = ops.get("decontaminate")
    return cls(cls.Config.model_validate({"benchmarks": [str(GSM)], **options}), OpContext(0, 0, tmp_path / "w"))


def sft(q: str, a: str, rid: str) -> Record:
    rec = Record(messages=[Message("user", q), Message("assistant", a)])
    rec.id = rid
    return rec


def gsm_items() -> list[dict]:
    return [json.loads(x) for x in GSM.read_text(encoding="utf-8").splitlines()]


def paraphrase(q: str, rng: random.Random) -> str:
    """Whitespace, punctuation and number-format changes only."""
    q = re.sub(r"\b(\d)(\d{3})\b", r"\1,\2", q)  # 1200 → 1,200
    q = re.sub(r"\$(\d+)\b(?![.,]\d)", r"$\1.00", q)  # $20 → $20.00
    q = q.replace(", ", " , ").replace("?", " ?!")
    return re.sub(" ", lambda _: rng.choice([" ", "  ", "\n", " \t"]), q)


WRAPPERS = [
    "Here is a math word problem from my homework. {q} Please explain each step and give the final number.",
    "You are a helpful tutor. A student asks the following question and wants a detailed answer:\n\n{q}\n\n"
    "Answer in a friendly tone.",
    "请用中文回答下面的数学题，并给出详细步骤：{q}",
]


@pytest.fixture(scope="module")
def mixed():
    rng = random.Random(7)
    alpaca = [r for r in datamill.read(LF / "alpaca_en_demo.json") if isinstance(r, Record)]
    items = gsm_items()
    chosen = rng.sample(range(len(items)), 60)
    planted: dict[str, tuple[str, int]] = {}
    stream = list(alpaca)
    for k, i in enumerate(chosen):
        q = items[i]["question"]
        kind = ["verbatim", "paraphrase", "embedded"][k % 3]
        if kind == "verbatim":
            rec = sft(q, "Let me solve it.", f"verbatim-{i}")
        elif kind == "paraphrase":
            rec = sft(paraphrase(q, rng), "Let me solve it.", f"paraphrase-{i}")
        else:
            rec = sft(rng.choice(WRAPPERS).format(q=q), "Sure, step by step.", f"embedded-{i}")
        planted[rec.id] = (kind, i)
        stream.insert(rng.randrange(len(stream) + 1), rec)
    # the answer leaks too: an alpaca-style record whose output is a GSM8K solution
    i = chosen[0] + 1
    leak = sft("Solve the problem.", items[i]["answer"], f"answer-{i}")
    planted[leak.id] = ("answer", i)
    stream.insert(100, leak)
    return alpaca, stream, planted


def test_every_planted_item_is_caught_and_nothing_else(tmp_path, mixed):
    alpaca, stream, planted = mixed
    op = make(tmp_path)
    drops = {r.id: op.reason(r) for r in stream}
    caught = {rid for rid, reason in drops.items() if reason is not None}
    assert caught == set(planted)  # verbatim, paraphrased, embedded and the leaked answer; no alpaca record
    for rid, (kind, i) in planted.items():
        assert drops[rid] == f"benchmark overlap: test.jsonl#{i}", (kind, rid)
    rec = next(r for r in stream if r.id.startswith("embedded-"))
    assert rec.meta["contamination"]["benchmark"] == "test.jsonl"
    assert "13-word" in rec.meta["contamination"]["overlap"]
    assert len(alpaca) == len(stream) - len(planted)


def test_flag_keeps_the_record_and_marks_it(tmp_path, mixed):
    _, stream, planted = mixed
    op = make(tmp_path, action="flag")
    assert all(op.reason(r) is None for r in stream)
    flagged = {r.id for r in stream if "contamination" in r.meta}
    assert flagged == set(planted)


def test_exact_mode_catches_normalized_copies_but_not_embedded_ones(tmp_path, mixed):
    _, stream, planted = mixed
    op = make(tmp_path, mode="exact")
    caught = {r.id for r in stream if op.reason(r) is not None}
    verbatim = {rid for rid, (kind, _) in planted.items() if kind in ("verbatim", "paraphrase", "answer")}
    assert caught == verbatim


def test_min_overlap_and_n_are_honoured(tmp_path):
    q = gsm_items()[3]["question"]
    words = q.split()
    fragment = " ".join(words[:14])  # exactly two 13-grams of the item
    rec = sft(f"Totally unrelated preamble. {fragment} and then something else entirely.", "ok", "x")
    assert make(tmp_path).reason(rec) == "benchmark overlap: test.jsonl#3"
    assert make(tmp_path, min_overlap=3).reason(rec) is None
    assert make(tmp_path, n=20).reason(rec) is None


def test_chinese_benchmark_uses_character_ngrams(tmp_path):
    zh = [r for r in datamill.read(LF / "alpaca_zh_demo.json") if isinstance(r, Record)]
    bench = tmp_path / "zh_bench.jsonl"
    items = [r.part("answer") for r in zh[:30] if len(r.part("answer")) > 80][:10]
    bench.write_text("\n".join(json.dumps({"question": t}, ensure_ascii=False) for t in items), encoding="utf-8")
    cls = ops.get("decontaminate")
    op = cls(cls.Config(benchmarks=[str(bench)]), OpContext(0, 0, tmp_path / "w"))
    inside = sft("请总结：" + items[0][10:60] + "。谢谢！", "好的", "inside")  # a 50-character excerpt
    assert op.reason(inside) == "benchmark overlap: zh_bench.jsonl#0"
    others = [r for r in zh[30:] if op.reason(r) is not None]
    assert not others


def test_missing_benchmark_is_a_clear_error(tmp_path):
    cls = ops.get("decontaminate")
    op = cls(cls.Config(benchmarks=[str(tmp_path / "nope.jsonl")]), OpContext(0, 0, tmp_path / "w"))
    with pytest.raises(datamill.errors.DatamillError, match="nope.jsonl"):
        op.reason(sft("q", "a", "x"))


def reword(q: str) -> str:
    """A paraphrase that breaks every 13-word n-gram: every eighth word replaced."""
    words = q.split()
    return " ".join("several" if i % 8 == 5 else w for i, w in enumerate(words))


def test_fuzzy_mode_catches_rewordings_that_ngram_mode_misses(tmp_path, mixed):
    alpaca, _, _ = mixed
    rng = random.Random(11)
    items = gsm_items()
    chosen = [i for i in rng.sample(range(len(items)), 80) if len(items[i]["question"].split()) >= 16][:40]
    planted = [sft(reword(items[i]["question"]), "ok", f"reworded-{i}") for i in chosen[:20]]
    planted += [
        sft(rng.choice(WRAPPERS).format(q=reword(items[i]["question"])), "ok", f"wrapped-{i}") for i in chosen[20:]
    ]
    ngram, fuzzy = make(tmp_path / "n"), make(tmp_path / "f", mode="fuzzy")
    assert sum(ngram.reason(r) is not None for r in planted) == 0
    reasons = {r.id: fuzzy.reason(r) for r in planted}
    assert all(reasons[r.id] == f"benchmark overlap: test.jsonl#{r.id.split('-')[1]}" for r in planted), reasons
    assert "3-word n-grams" in planted[0].meta["contamination"]["overlap"]
    assert [r.id for r in alpaca if fuzzy.reason(r) is not None] == []  # no false positive on alpaca
