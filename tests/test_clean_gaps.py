"""Cleaning gaps of issue 16 item 6: degenerate repetition, cut Chinese answers, near duplicates in
case/punctuation only, boilerplate lines in HTML answers — and the finished answers that must stay."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from datamill import ops
from datamill.clean.html import html_fragment_to_text
from datamill.clean.sft_filters import repetition_reason
from datamill.dedup import minhash as mh
from datamill.ops.base import OpContext
from datamill.record import Message, Record
from datamill.results import Drop


def make(name: str, work: Path = Path("w"), **options):
    cls = ops.get(name)
    return cls(cls.Config.model_validate(options), OpContext(seed=0, step=0, workdir=work))


def sft(q: str, a: str) -> Record:
    rec = Record(messages=[Message("user", q), Message("assistant", a)])
    rec.id = rec.compute_id()
    return rec


@pytest.mark.parametrize("answer", ["1. 1. 1. 1. 1.", "- - - -", "A A A A A", "哈哈哈哈哈哈哈哈", "好的好的好的好的"])
def test_degenerate_answers_are_repetitive(answer):
    assert repetition_reason(answer) == "repetitive answer"


@pytest.mark.parametrize(
    "answer", ["1. 苹果\n2. 香蕉\n3. 橙子", "1. 2. 3. 4. 5.", "哈哈哈", "Yes.", "1 0 0\n0 1 0\n0 0 1"]
)
def test_lists_and_short_answers_are_not_repetitive(answer):
    assert repetition_reason(answer) is None


CUT_ZH = [
    "植物通过光合作用把阳光转化为化学能，这个过程发生在叶绿体中，需要阳光、水和二氧化碳，还需要大量的",
    "光合作用是植物利用阳光将二氧化碳和水转化为葡萄糖的过程。它发生在叶绿体中，需要叶绿素\ufffd",
    "光合作用是植物利用阳光将二氧化碳和水转化为葡萄糖的过程。正如科学家所说：“光合作用是",
]


@pytest.mark.parametrize("answer", CUT_ZH)
def test_cut_chinese_answers_are_truncated(answer):
    assert make("truncated_answer_filter").check("解释光合作用", answer)


def test_cut_english_quotation_is_truncated():
    a = 'Photosynthesis turns light into sugar. As the textbook puts it, "plants are the'
    assert make("truncated_answer_filter").check("Explain photosynthesis", a) == "truncated: unclosed quotation"


FINISHED = [
    "以下哪个国家不属于北欧国家？\nA. 挪威，瑞典，芬兰\nB. 丹麦，挪威，冰岛\nC. 瑞典，芬兰，冰岛\n"
    "D. 丹麦，瑞典，芬兰，南非，冰岛",
    "健康生活的建议如下：\n1. 保持均衡饮食\n2. 每天锻炼身体\n3. 保证充足睡眠",
    "这个问题的答案是肯定的。根据题目给出的条件，我们可以得出结论：是的",
    "两个数相加得到的结果叫做和。例如，三加四等于七，七就是三和四之和",
    'He told me "the answer is yes" and left. The meeting ended early that day.',
]


@pytest.mark.parametrize("answer", FINISHED)
def test_finished_answers_are_kept(answer):
    assert make("truncated_answer_filter").check("问题", answer) is None


def test_normalize_joins_case_and_punctuation_variants(tmp_path):
    a, b = mh.permutations(128, 1)
    pair = ["Hello world, this is a small test of the dedup.", "Hello WORLD,this is a small test of the dedup!"]
    plain = mh.signatures(mh.shingle(pair), a, b)
    norm = mh.signatures(mh.shingle(pair, normalize=True), a, b)
    assert (plain[0] == plain[1]).mean() < 0.8 and np.array_equal(norm[0], norm[1])
    assert mh.normalize_text("Ｐｒｉｃｅ：1,000.5 元！") == "price 1,000.5 元"
    recs = [sft(q, "x") for q in pair]
    out = list(make("minhash_dedup", tmp_path / "w", part="prompt", normalize=True).run(recs))
    assert [type(o) for o in out] == [Record, Drop]


def test_normalize_is_pinned_in_the_index(tmp_path):
    from datamill.errors import DatamillError

    recs = [sft("Give three tips for staying healthy every day.", "x")]
    list(make("minhash_dedup", tmp_path / "a", index=str(tmp_path / "idx"), update_index=True).run(recs))
    with pytest.raises(DatamillError, match="normalize"):
        list(make("minhash_dedup", tmp_path / "b", index=str(tmp_path / "idx"), normalize=True).run(recs))


@pytest.mark.parametrize(
    "line",
    [
        "Click here to subscribe to our newsletter!",
        "This site uses cookies. Accept all cookies",
        "分享到微信",
        "版权所有，转载请注明出处",
        "扫码关注我们的公众号",
        "点击订阅",
    ],
)
def test_boilerplate_lines_leave_html_answers(line):
    html = f"<p>Drink water every day.</p><p>{line}</p><p>Sleep eight hours.</p>"
    assert html_fragment_to_text(html) == "Drink water every day.\nSleep eight hours."


def test_boilerplate_rule_keeps_prose_and_plain_answers():
    html = "<p>Cookies are small files a website stores.</p><p>Copyright law protects authors.</p>"
    assert html_fragment_to_text(html) == "Cookies are small files a website stores.\nCopyright law protects authors."
    assert html_fragment_to_text("点击订阅按钮即可。") == "点击订阅按钮即可。"  # no HTML: untouched
