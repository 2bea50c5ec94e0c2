"""Cleaning mappers and PII masking on real documents and records from tests/data."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from conftest import DOCS, LF

import datamill
from datamill import ops
from datamill.clean.pii import luhn, mask, valid_id_card
from datamill.io.encoding import sniff
from datamill.ops.base import OpContext
from datamill.record import Message, Record


def make(name: str, **options):
    cls = ops.get(name)
    return cls(cls.Config.model_validate(options), OpContext(seed=0, step=0, workdir=Path("w")))


def html_doc(name: str) -> Record:
    path = DOCS / name
    return Record(text=path.read_bytes().decode(sniff(path)))


def test_html_page_with_scripts_becomes_the_article_text():
    rec = make("html_to_text").map(html_doc("example-with-scripts.html"))
    text = rec.text
    assert rec.meta["cleaned"] == ["html_to_text"]
    assert text.startswith("Russian Offensive Campaign Assessment, December 13")
    assert "Belarusian forces remain unlikely to attack Ukraine" in text
    for junk in ("<script", "function(", "gtag(", "window.", "{", "</"):
        assert junk not in text, junk
    assert 10_000 < len(text) < 60_000


def test_html_cp1252_page_keeps_its_accents():
    text = make("html_to_text").map(html_doc("fake-html-cp1252.html")).text
    assert "Die schöne Frau" in text and "L'été était très chaud" in text and "El niño comió" in text
    assert "15,50 €" in text and "<" not in text
    assert make("mojibake_filter").reason(Record(text=text)) is None


def test_html_fragments_in_answers_lose_tags_but_code_stays():
    op = make("html_to_text", part="answer")
    rec = Record(
        messages=[
            Message("user", "What is the capital of France?"),
            Message("assistant", '<div class="ad">Buy now</div><p>Paris is the capital.</p><script>x()</script>'),
        ]
    )
    out = op.map(rec)
    assert out.messages[1].content == "Paris is the capital." and out.meta["cleaned"] == ["html_to_text"]
    code = "Use a paragraph tag:\n```html\n<p>Hello</p>\n```\nor inline `<br>`, and <b>bold</b> text."
    out = op.map(Record(messages=[Message("user", "q"), Message("assistant", code)])).messages[1].content
    assert out == "Use a paragraph tag:\n```html\n<p>Hello</p>\n```\nor inline `<br>`, and bold text."
    about = Record(messages=[Message("user", "Write an HTML page"), Message("assistant", "<p>Hello</p>")])
    assert op.map(about).messages[1].content == "<p>Hello</p>"


def test_fix_unicode_repairs_mojibake_and_normalizes_width_safely():
    op = make("fix_unicode")
    broken = "It’s a café — naïve".encode().decode("cp1252")
    assert op.clean(broken) == "It’s a café — naïve"
    assert op.clean("ｆｕｌｌ　ｗｉｄｔｈ１２３，中文！x² ½ ﬁne") == "full width123，中文！x² ½ fine"
    assert make("fix_unicode", keep_cjk_punct=False).clean("中文，标点！") == "中文,标点!"


def test_width_both_ways():
    half = make("normalize_width")
    assert half.clean("ＡＢＣ１２３ Ｈｉ！") == "ABC123 Hi!"
    assert half.clean("中文，标点。") == "中文，标点。"
    assert make("normalize_width", to="full").clean("AB 12!") == "ＡＢ １２！"


def test_traditional_simplified_both_ways_on_alpaca_zh():
    recs = [r for r in datamill.read(LF / "alpaca_zh_demo.json") if isinstance(r, Record)][:200]
    s2t, t2s = make("convert_chinese", config="s2t"), make("convert_chinese", config="t2s")
    answers = [r.part("answer") for r in recs]
    trad = [s2t.clean(a) for a in answers]
    assert sum(t != a for t, a in zip(trad, answers, strict=True)) > 180  # nearly every answer has a 简体 char
    assert "這" in "".join(trad) and "这" not in "".join(trad)
    back = [t2s.clean(t) for t in trad]
    assert sum(b == a for b, a in zip(back, answers, strict=True)) / len(answers) > 0.9
    assert make("convert_chinese", config="tw2sp").clean("這個軟體很好用") == "这个软件很好用"
    rec = make("convert_chinese", config="s2t").map(recs[0])
    assert rec.meta["cleaned"] == ["convert_chinese"]


def test_convert_chinese_on_real_instructions():
    rows = json.loads((LF / "alpaca_zh_demo.json").read_text(encoding="utf-8"))
    titles = [r["instruction"] for r in rows if r["instruction"]][:300]
    t2s = make("convert_chinese", config="t2s")
    trad = make("convert_chinese", config="s2t")
    changed = sum(trad.clean(t) != t for t in titles)
    assert changed > 250
    assert sum(t2s.clean(trad.clean(t)) == t for t in titles) > 270


def test_whitespace_urls_dates():
    ws = make("normalize_whitespace")
    assert ws.clean("a\u200b b\u00a0\u00a0c  \r\n\r\n\r\n\r\nd\x07e\n    indented") == "a b c\n\nde\n    indented"
    assert ws.clean("```\ncode   x\n```") == "```\ncode   x\n```"
    urls = make("remove_urls")
    assert urls.clean("See https://example.com/a?b=1 now, mail me@x.com. Einstein[1] said so[2–4].") == (
        "See now, mail. Einstein said so."
    )
    assert make("remove_urls", urls=False).clean("at https://a.org [3]") == "at https://a.org"
    dates = make("normalize_dates", numbers=True)
    assert dates.clean("2024年3月5日，March 5, 2024; 5th March 2024; Mar. 15th, 2023") == (
        "2024-03-05，2024-03-05; 2024-03-05; 2023-03-15"
    )
    assert dates.clean("2024年13月1日 and March 2024 cost 1,234,567") == "2024年13月1日 and March 2024 cost 1234567"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("It costs $1,200.50 today.", "It costs USD 1200.50 today."),
        ("价格是¥3,000，或者3.5万元，也可以说人民币200元。", "价格是CNY 3000，或者CNY 35000，也可以说CNY 200。"),
        ("He paid 20 dollars and €5, then £3.2 million.", "He paid USD 20 and EUR 5, then GBP 3200000."),
        ("USD 20 and RMB 300; HK$ 300; $5bn deal", "USD 20 and CNY 300; HKD 300; USD 5000000000 deal"),
        ("这个5块钱，那个1,000 美元，还有2亿日元", "这个CNY 5，那个USD 1000，还有JPY 200000000"),
        ("我有3个苹果; version 2.0; 5 more; 12 m away", "我有3个苹果; version 2.0; 5 more; 12 m away"),
    ],
)
def test_normalize_currency(text, expected):
    assert make("normalize_currency").clean(text) == expected


def test_id_card_and_luhn_checks():
    assert valid_id_card("11010519491231002X")
    assert not valid_id_card("110105194912310021")  # wrong check character
    assert not valid_id_card("110105194913310028")  # month 13
    assert luhn("4111111111111111") and not luhn("4111111111111112")


def test_mask_pii_types_and_counts():
    counts: Counter[str] = Counter()
    text = (
        "联系我：13812345678 或 +86 139-1234-5678，座机 010-88886666，邮箱 zhang.san@example.com，"
        "身份证 11010519491231002X，卡号 4111 1111 1111 1111；IP 192.168.1.20 / 2001:db8::8a2e:370:7334; "
        "call (415) 555-2671. Not PII: 2024, 3.14, ISBN 978-3-16-148410-0, 12:30:00, std::vector, 110105194912310021"
    )
    out = mask(text, counts=counts)
    assert out.startswith(
        "联系我：<PHONE> 或 <PHONE>，座机 <PHONE>，邮箱 <EMAIL>，身份证 <ID_CARD>，卡号 <BANK_CARD>；IP <IP> / <IP>"
    )
    assert "call <PHONE>." in out
    assert "2024, 3.14, ISBN 978-3-16-148410-0, 12:30:00, std::vector, 110105194912310021" in out
    assert counts == {"phone": 4, "email": 1, "id_card": 1, "bank_card": 1, "ip": 2}


def test_mask_person_names_en_and_zh():
    counts: Counter[str] = Counter()
    kinds = ("email", "person")
    text = "John Smith met Dr. Watson and Mary Ann Jones; email john@x.org. 张伟和刘晓燕昨天见了艾米。记者王建国报道。"
    assert (
        mask(text, kinds, counts)
        == "<PERSON> met <PERSON> and <PERSON>; email <EMAIL>. <PERSON>和<PERSON>昨天见了<PERSON>。记者<PERSON>报道。"
    )
    assert counts == {"person": 7, "email": 1}
    for clean in ("May I ask? Will you help? The United States is big.", "请陈述你的观点，阳光很好，顾客满意。"):
        assert mask(clean, kinds) == clean  # ordinary words that name lists and the tagger also know
    assert mask("John Smith", ("email",)) == "John Smith"  # opt-in


def test_mask_pii_op_on_real_records_writes_counts():
    op = make("mask_pii")
    recs = [r for r in datamill.read(LF / "alpaca_en_demo.json") if isinstance(r, Record)]
    masked = [op.map(r) for r in recs]
    hits = [r for r in masked if "pii" in r.meta]
    assert 0 < len(hits) < 20  # a few letters and examples carry emails/phones; the rest is untouched
    assert all("<" in r.part("all") for r in hits)
    kto = [r for r in datamill.read(LF / "kto_en_demo.json") if isinstance(r, Record)]
    assert all(op.map(r).part("all") == r.part("all") or "pii" in r.meta for r in kto)
