"""SFT answer filters: precision/recall on a defect set injected into LLaMA-Factory's alpaca demos,
plus each filter's edge cases."""

from __future__ import annotations

import copy
from collections import Counter
from pathlib import Path

import pytest
from conftest import LF

import datamill
from datamill import ops
from datamill.clean.inject import DEFECTS, inject
from datamill.ops.base import OpContext
from datamill.record import Message, Record

FILTERS = {
    "empty": "empty_answer_filter",
    "echo": "echo_answer_filter",
    "mojibake": "mojibake_filter",
    "refusal": "refusal_filter",
    "placeholder": "placeholder_filter",
    "language": "answer_language_filter",
    "repetition": "repetition_filter",
    "truncated": "truncated_answer_filter",
}  # in recipe order: a record is attributed to the first filter that drops it, as the runner does


def make(name: str, **options):
    cls = ops.get(name)
    return cls(cls.Config.model_validate(options), OpContext(seed=0, step=0, workdir=Path("w")))


def sft(q: str, a: str) -> Record:
    return Record(messages=[Message("user", q), Message("assistant", a)])


class Detector:
    def __init__(self):
        self.filters = {d: make(f) for d, f in FILTERS.items()}
        self.html = make("html_to_text", part="answer")
        self.pii = make("mask_pii", part="answer")

    def all(self, rec: Record) -> set[str]:
        found = {d for d, f in self.filters.items() if f.reason(rec)}
        if "cleaned" in self.html.map(copy.deepcopy(rec)).meta:
            found.add("html")
        if "pii" in self.pii.map(copy.deepcopy(rec)).meta:
            found.add("pii")
        return found

    def first(self, rec: Record) -> set[str]:
        found = self.all(rec)
        return {next(d for d in FILTERS if d in found)} if found & set(FILTERS) else set() | (found & {"html", "pii"})


@pytest.fixture(scope="module")
def injected():
    det = Detector()
    en = [r for r in datamill.read(LF / "alpaca_en_demo.json") if isinstance(r, Record)]
    zh = [r for r in datamill.read(LF / "alpaca_zh_demo.json") if isinstance(r, Record)]
    # records a filter already flags are real defects in the demo data (listed in docs/cleaning.md);
    # the injection pool is the rest, so every flag below is either an injected defect or a false alarm
    pre = {"en": Counter(), "zh": Counter()}
    pools = {}
    for lang, recs in (("en", en), ("zh", zh)):
        pools[lang] = []
        for r in recs:
            found = det.all(r)
            pre[lang].update(found)
            if not found:
                pools[lang].append(r)
    data = inject(pools["en"], pools["zh"], seed=1, per_class=50) + inject(
        pools["zh"], pools["en"], seed=2, per_class=50
    )
    return det, data, pre


def test_each_defect_class_is_found_with_95_percent_recall_and_precision(injected):
    det, data, pre = injected
    assert sum(pre["en"].values()) < 0.1 * 999 and sum(pre["zh"].values()) < 0.1 * 1000
    tp, flagged, total = Counter(), Counter(), Counter(label for _, label in data)
    for rec, label in data:
        for d in det.first(rec):
            flagged[d] += 1
            tp[d] += d == label
    report = {d: (tp[d] / total[d], tp[d] / max(1, flagged[d])) for d in DEFECTS}
    print("recall, precision:", {d: (round(r, 3), round(p, 3)) for d, (r, p) in report.items()})
    assert total["clean"] > 500
    for d, (recall, precision) in report.items():
        assert total[d] == 100
        assert recall >= 0.95, (d, recall)
        assert precision >= 0.95, (d, precision)


def test_html_junk_is_removed_and_the_answer_kept(injected):
    det, data, _ = injected
    html = [det.html.map(copy.deepcopy(r)) for r, label in data if label == "html"]
    cleaned = [r for r in html if "cleaned" in r.meta]
    assert len(cleaned) >= 0.95 * len(html)  # the rest answer a question about web pages: left as written
    for rec in cleaned:
        out = rec.messages[-1].content
        assert "<" not in out.replace("<=", "").replace("< ", "") or "```" in out
        assert "Buy now" not in out and "_gaq" not in out and "Share on Facebook" not in out


def test_pii_is_masked_not_dropped(injected):
    det, data, _ = injected
    pii = [r for r, label in data if label == "pii"]
    kinds = Counter()
    for rec in pii:
        out = det.pii.map(copy.deepcopy(rec))
        kinds.update(out.meta["pii"])
        assert "@example.com" not in out.messages[-1].content
    assert set(kinds) == {"email", "phone", "id_card", "bank_card", "ip"}


def test_filter_edge_cases():
    assert make("empty_answer_filter").reason(sft("q", " \n ")) == "empty answer"
    assert make("empty_answer_filter").reason(sft("q", "0")) is None
    echo = make("echo_answer_filter")
    assert echo.reason(sft("Name a fruit.", "name a fruit")) == "answer repeats the instruction"
    assert echo.reason(sft("Is it apple or car?", "apple")) is None
    trunc = make("truncated_answer_filter")
    assert (
        trunc.reason(sft("q", "Here is the code you asked for:\n```python\nprint(1)\nprint(2)\n"))
        == "truncated: unclosed code fence"
    )
    assert trunc.reason(sft("q", "The result (computed over all of the provided samples is 42.")) == (
        "truncated: unclosed bracket"
    )
    assert trunc.reason(sft("q", "First, mix the flour. Then add the eggs and stir it all until the")) is not None
    assert (
        trunc.reason(
            sft(
                "q",
                "这是一个完整的句子，说明了做蛋糕之前需要准备的材料。然后我们把面粉和鸡蛋一起放进碗里，用筷子慢慢地搅拌均匀直到",
            )
        )
        is not None
    )
    assert trunc.reason(sft("q", "Paris is the capital of France. It is known for the Eiffel Tower.")) is None
    assert trunc.reason(sft("q", "Apple")) is None
    ref = make("refusal_filter")
    assert ref.reason(sft("q", "As an AI language model, I cannot do that.")) == "refusal or AI disclaimer"
    assert ref.reason(sft("q", "抱歉，我无法回答这个问题。")) == "refusal or AI disclaimer"
    assert ref.reason(sft("Write an email saying you are sick", "I'm sorry, but I'm unable to come in today.")) is None
    ph = make("placeholder_filter")
    for bad in ("Dear {{name}},", "Sincerely, [Your Name]", "<noinput>", "此致\n【您的姓名】"):
        assert ph.reason(sft("q", bad)) == "unreplaced placeholder", bad
    assert ph.reason(sft("q", "Use a[i] and [1, 2, 3].")) is None
    lang = make("answer_language_filter")
    assert lang.reason(
        sft("解释一下光合作用的原理。", "Photosynthesis is the process by which plants use the light.")
    ) == ("answer language en != instruction zh")
    assert (
        lang.reason(sft("把这句话翻译成英文：我爱你", "I love you and this is the translation of the sentence."))
        is None
    )
    assert lang.reason(sft("用Python写一个函数", "```python\ndef f(x):\n    return x * 2\n```")) is None
    moji = make("mojibake_filter")
    assert moji.reason(sft("q", "It’s café".encode().decode("cp1252"))) == "mojibake"
    assert moji.reason(sft("q", "中文乱码测试".encode().decode("gbk", errors="replace"))) == "mojibake"
    assert moji.reason(sft("q", "正常的中文句子，没有乱码。Café au lait.")) is None
    rep = make("repetition_filter")
    assert rep.reason(sft("q", "Good answer. " + "I like it. " * 10)) == "repetitive answer"
    assert rep.reason(sft("q", "| a | b |\n|---|---|---|---|---|---|\n| 1 | 2 |")) is None


def test_preference_rejected_side_is_only_checked_on_request():
    rec = Record(
        messages=[Message("user", "Say hi")],
        chosen=Message("assistant", "Hi there, nice to meet you."),
        rejected=Message("assistant", "As an AI language model I cannot greet you."),
    )
    assert make("refusal_filter").reason(rec) is None
    assert make("refusal_filter", rejected=True).reason(rec) == "refusal or AI disclaimer"
    assert make("refusal_filter").reason(Record(text="As an AI language model")) is None


def test_kto_undesirable_answers_hold_more_junk():
    recs = [r for r in datamill.read(LF / "kto_en_demo.json") if isinstance(r, Record)]
    flt = [make(f) for f in FILTERS.values()] + [make("char_ratio_filter", part="answer")]

    def share(label: bool) -> float:
        group = [r for r in recs if r.label is label]
        return sum(any(f.reason(r) for f in flt) for r in group) / len(group)

    assert share(False) > share(True)
