"""Build a labelled defect set by injecting known defects into clean SFT records — the ground truth
for the precision/recall test of the SFT filters (``tests/test_clean_sft.py``) and the docs table.

``inject(records, other_language, seed, per_class)`` returns ``[(record, label)]``: ``label`` is a defect
class from ``DEFECTS`` or ``"clean"``. Every record gets at most one defect; the answer is always the
last assistant turn.
"""

from __future__ import annotations

import copy
import random
import re

from datamill.clean.text import script_lang
from datamill.record import Message, Record

DEFECTS = (
    "empty",
    "echo",
    "truncated",
    "refusal",
    "placeholder",
    "html",
    "language",
    "mojibake",
    "repetition",
    "pii",
)

REFUSALS_EN = [
    "I'm sorry, but I cannot help with that request.",
    "As an AI language model, I do not have personal opinions on this topic.",
    "I apologize, but I am unable to provide that information.",
    "As an AI, I don't have the ability to browse the internet, so I can't answer this.",
    "I am just an AI and cannot perform physical tasks.",
    "Unfortunately, I cannot fulfill this request as it goes against my guidelines.",
    "I'm an AI language model and I don't have access to real-time data.",
    "My apologies, but I can't assist with generating that content.",
]
DISCLAIMER_EN = "As an AI language model, I don't have personal experiences, but here is some information. "
REFUSALS_ZH = [
    "抱歉，我无法回答这个问题。",
    "作为一个人工智能语言模型，我没有个人观点。",
    "对不起，我不能提供这方面的信息。",
    "我只是一个AI，无法完成现实中的任务。",
    "很遗憾，我无法满足您的请求。",
    "作为AI助手，我无法访问实时数据，因此不能回答。",
    "我是一个人工智能，没有个人的情感和经历。",
    "抱歉，但我不能帮助您完成这个请求。",
]
DISCLAIMER_ZH = "作为一个AI语言模型，我没有个人经历，但可以提供以下信息。"
PLACEHOLDERS_EN = ["[Your Name]", "{{name}}", "<noinput>", "[Company Name]", "[Insert date here]", "[Recipient's Name]"]
PLACEHOLDERS_ZH = ["[你的名字]", "{{name}}", "<noinput>", "【公司名称】", "[插入日期]", "【您的姓名】"]
HTML_WRAPS = [
    '<div class="content"><p>{}</p></div><div class="ad-banner"><a href="/buy">Buy now!</a></div>',
    "<script>var _gaq = _gaq || []; _gaq.push(['_trackPageview']);</script><p>{}</p>",
    '<html><body><nav><a href="/">Home</a> | <a href="/about">About</a></nav><p>{}</p></body></html>',
    '<p>{}</p><br/><span style="color:red">&nbsp;</span>',
    '<div id="sidebar-share">Share on Facebook</div>{}<br>',
]


def answer_of(rec: Record) -> str:
    """The record's last (assistant) turn."""
    return rec.messages[-1].content


def with_answer(rec: Record, text: str) -> Record:
    """A copy of the record whose answer is ``text`` (a new id: it is another record)."""
    rec = copy.deepcopy(rec)
    rec.messages[-1] = Message("assistant", text)
    rec.id = rec.compute_id()
    return rec


def _prompt(rec: Record) -> str:
    return [m.content for m in rec.messages if m.role == "user"][-1]


def _is_zh(rec: Record) -> bool:
    return bool(re.search(r"[\u4e00-\u9fff]", _prompt(rec)))


def _truncate(text: str, rng: random.Random, zh: bool) -> str:
    """Cut inside a sentence: at a space (English) or between two CJK characters (Chinese), 40–85 %."""
    if rng.random() < 0.2:
        return text + "\n\n```python\ndef solve(items):\n    result = []\n    for item in items:"
    lo, hi = int(len(text) * 0.4), int(len(text) * 0.85)
    if zh:
        cuts = [i for i in range(lo, hi) if re.match(r"[\u4e00-\u9fff]{2}", text[i - 1 : i + 1])]
    else:
        cuts = [i for i in range(lo, hi) if text[i] == " " and text[i - 1].isalpha() and text[i + 1].isalpha()]
    if not cuts:
        return text[: (lo + hi) // 2]
    return text[: rng.choice(cuts)]


def _mojibake(text: str, rng: random.Random, zh: bool) -> str:
    if re.search(r"[\u4e00-\u9fff]", text):
        return text.encode("utf-8").decode("gbk", errors="replace")
    if text.isascii():  # give the cp1252 mis-decoding something non-ASCII to mangle, as real text has
        text = text.replace("'", "’").replace(" - ", " — ")
        if text.isascii():
            text = "Café notes — " + text
    return text.encode("utf-8").decode("cp1252", errors="replace")


def _repeat(text: str, rng: random.Random, zh: bool) -> str:
    sents = [s for s in re.split(r"(?<=[.!?。！？])\s", text) if len(s.strip()) >= 6 and s.strip()[-1] in ".!?。！？"]
    sents = [s for s in sents if "`" not in s and "\n" not in s.strip()]
    mode = rng.randrange(3)
    if mode == 0 and sents:
        s = rng.choice(sents).strip()
        return text.rstrip() + (" " if not zh else "") + ((" " if not zh else "").join([s] * rng.randint(6, 12)))
    if mode == 1:
        loop = "然后我们再来一次，" if zh else "and then we do it again, "
        cut = len(text) // 2
        return text[:cut] + loop * rng.randint(8, 20) + ("。" if zh else "end.")
    return "\n\n".join([text.strip()] * 4)


def _pii(rng: random.Random, zh: bool) -> str:
    def id_card() -> str:
        from datamill.clean.checksums import ID_CHECK, ID_WEIGHTS

        body = f"{rng.choice(['110105', '310101', '440305', '510104'])}{rng.randint(1950, 2005)}"
        body += f"{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}{rng.randint(0, 999):03d}"
        return body + ID_CHECK[sum(int(d) * w for d, w in zip(body, ID_WEIGHTS, strict=True)) % 11]

    def card() -> str:
        from datamill.clean.checksums import luhn

        while True:
            n = "6222" + "".join(str(rng.randrange(10)) for _ in range(12))
            if luhn(n):
                return n if rng.random() < 0.5 else " ".join(n[i : i + 4] for i in range(0, 16, 4))

    kinds = [
        f"user{rng.randint(1, 999)}@example.com",
        f"1{rng.choice('3589')}{rng.randint(0, 9)}{rng.randint(10000000, 99999999)}",
        f"+86 13{rng.randint(0, 9)}-{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}",
        f"0{rng.choice(['10', '21', '755'])}-{rng.randint(2000000, 89999999)}",
        id_card(),
        card(),
        f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
        f"2001:db8:{rng.randint(1, 9999):x}::{rng.randint(1, 9999):x}",
    ]
    value = rng.choice(kinds)
    return (f"如有疑问请联系：{value}。" if zh else f" For questions, contact {value}.") + "\n"


def inject(records: list[Record], other: list[Record], seed: int = 0, per_class: int = 50):
    """Inject ``per_class`` defects of every class into distinct records of ``records``; ``other`` are
    records of the other language (their answers become the wrong-language answers)."""
    rng = random.Random(seed)
    pool = [r for r in records if r.messages and r.messages[-1].role == "assistant"]
    order = list(range(len(pool)))
    rng.shuffle(order)
    long_enough = [i for i in order if len(answer_of(pool[i])) >= 120]
    out: list[tuple[Record, str]] = []
    used: set[int] = set()

    def take(need_long: bool) -> int:
        for i in long_enough if need_long else order:
            if i not in used:
                used.add(i)
                return i
        raise ValueError("not enough records to inject into")

    other_lang = "en" if _is_zh(pool[0]) else "zh"
    other_answers = [
        answer_of(r)
        for r in other
        if r.messages and len(answer_of(r)) >= 60 and script_lang(answer_of(r), 20) == other_lang
    ]
    lang = "zh" if _is_zh(pool[0]) else "en"
    monolingual = [
        i
        for i in order
        if script_lang(_prompt(pool[i]), strict=False) == lang and script_lang(answer_of(pool[i]), 20) == lang
    ]

    def take_mono() -> int:
        for i in monolingual:
            if i not in used:
                used.add(i)
                return i
        raise ValueError("not enough records to inject into")

    for defect in DEFECTS:
        for _ in range(per_class):
            rec = pool[take_mono() if defect == "language" else take(defect in ("truncated", "repetition"))]
            zh, a = _is_zh(rec), answer_of(rec)
            if defect == "empty":
                text = rng.choice(["", " ", "\n\n", "...", "。", "  \t "])
            elif defect == "echo":
                p = _prompt(rec)
                text = rng.choice([p, p.upper(), p + " ", p.rstrip("?？。.") + ("。" if zh else ".")])
            elif defect == "truncated":
                text = _truncate(a, rng, zh)
            elif defect == "refusal":
                if rng.random() < 0.7:
                    text = rng.choice(REFUSALS_ZH if zh else REFUSALS_EN)
                else:
                    text = (DISCLAIMER_ZH if zh else DISCLAIMER_EN) + a
            elif defect == "placeholder":
                ph = rng.choice(PLACEHOLDERS_ZH if zh else PLACEHOLDERS_EN)
                text = a + ("\n\n此致\n" if zh else "\n\nBest regards,\n") + ph if rng.random() < 0.5 else f"{ph} {a}"
            elif defect == "html":
                text = rng.choice(HTML_WRAPS).format(a)
            elif defect == "language":
                text = rng.choice(other_answers)
            elif defect == "mojibake":
                text = _mojibake(a, rng, zh)
            elif defect == "repetition":
                text = _repeat(a, rng, zh)
            else:  # pii
                text = _pii(rng, zh) + a if rng.random() < 0.5 else a + "\n" + _pii(rng, zh)
            out.append((with_answer(rec, text), defect))
    out += [(pool[i], "clean") for i in order if i not in used]
    return out
