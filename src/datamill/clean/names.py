"""Person-name detection for mask_pii, offline and model-free.

Chinese: jieba's part-of-speech tagger (``nr`` = person name), kept only when the word starts with a
common surname (Hundred Family Surnames, single and compound) and is 2–4 characters long — the tagger
alone also tags rare words. English: two or three capitalized words where the first is a first name
and the last a surname from the US Census name lists (shipped in the PyPI package ``names``),
optionally after a title ("Dr. Smith" needs only the surname). No NER model can be installed from
PyPI without a model download here (spaCy's and presidio's models come from other hosts), so this is
the measured trade-off: see docs/cleaning.md for precision on the demo data.
"""

from __future__ import annotations

import logging
import re
from functools import cache
from importlib import resources

SURNAMES_1 = set(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔"
    "钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤常温康施文牛樊葛"
    "邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝"
    "路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂"
    "全佟应臧闵苟邬边卞姬师仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝"
)
SURNAMES_2 = {
    "欧阳",
    "司马",
    "上官",
    "诸葛",
    "东方",
    "皇甫",
    "尉迟",
    "公孙",
    "慕容",
    "长孙",
    "宇文",
    "司徒",
    "夏侯",
    "令狐",
}
TITLES = r"(?:Mr|Mrs|Ms|Miss|Dr|Prof|Sir|Madam|Mx)\.?"
CAP = r"[A-Z][a-z]+(?:[-'][A-Z][a-z]+)?"
EN_CANDIDATE = re.compile(rf"\b(?:({TITLES})[ \t]+)?({CAP})(?:[ \t]+([A-Z]\.|{CAP}))?(?:[ \t]+({CAP}))?\b")
# first names that are mostly ordinary words at the start of a phrase
NOT_FIRST = {
    "may", "june", "april", "august", "will", "bill", "grace", "hope", "joy", "faith", "rose", "mark", "art",
    "guy", "young", "long", "major", "king", "page", "sunny", "summer", "china", "paris", "florida", "georgia",
    "virginia", "carolina", "dakota", "india", "jordan", "chase", "price", "rich", "miles", "else", "ever",
    "in", "so", "my", "love", "roman", "an", "the", "dear", "happy", "merry", "lady", "queen", "sir",
}  # fmt: skip


@cache
def _census(name: str, top: int) -> frozenset[str]:
    text = resources.files("names").joinpath(name).read_text(encoding="ascii")
    return frozenset(line.split()[0].lower() for line in text.splitlines()[:top] if line.strip())


def first_names() -> frozenset[str]:
    return (_census("dist.male.first", 1219) | _census("dist.female.first", 4275)) - NOT_FIRST


def last_names() -> frozenset[str]:
    return _census("dist.all.last", 88799)


def english_names(text: str) -> list[tuple[int, int]]:
    """Spans of English person names."""
    if not any(c.isupper() for c in text):
        return []
    firsts, lasts = first_names(), last_names()
    spans = []
    for m in EN_CANDIDATE.finditer(text):
        title, first, middle, last = m.groups()
        words = [w for w in (first, middle, last) if w]
        surname = (last or (middle if middle and not middle.endswith(".") else None) or "").lower()
        if title and words and words[-1].lower() in lasts:
            spans.append((m.start(), m.end()))
        elif first.lower() in firsts and surname and surname in lasts and surname not in firsts - lasts:
            spans.append((m.start(2), m.end()))
    return spans


@cache
def _jieba():
    import jieba
    import jieba.posseg

    jieba.setLogLevel(logging.WARNING)
    return jieba.posseg


NAME_BEFORE = {"记者", "作者", "名叫", "叫", "姓名", "主任", "经理", "总裁", "教练"}
NAME_AFTER = {"女士", "先生", "小姐", "老师", "教授", "同学", "医生", "博士", "说", "表示", "指出", "认为", "告诉"}


def chinese_names(text: str) -> list[tuple[int, int]]:
    """Spans of Chinese person names: words jieba tags ``nr`` that start with a common surname and
    either are *not* in its dictionary (found by its HMM), or sit next to a cue (记者…, …女士, …说) —
    the dictionary also tags many ordinary words nr (陈述, 阳光, 顾客)."""
    posseg = _jieba()
    known = posseg.dt.word_tag_tab
    words = [(w.word, w.flag) for w in posseg.cut(text)]
    spans, pos = [], 0
    for i, (word, flag) in enumerate(words):
        start = pos
        pos += len(word)
        if flag != "nr" or not 2 <= len(word) <= 4 or not (word[0] in SURNAMES_1 or word[:2] in SURNAMES_2):
            continue
        cued = (i and words[i - 1][0] in NAME_BEFORE) or (i + 1 < len(words) and words[i + 1][0] in NAME_AFTER)
        if word not in known or cued:
            spans.append((start, pos))
    return spans


def mask_names(text: str, placeholder: str = "<PERSON>") -> tuple[str, int]:
    """The text with person names replaced, and how many were."""
    spans = english_names(text)
    if re.search(r"[\u4e00-\u9fff]", text):
        spans += chinese_names(text)
    if not spans:
        return text, 0
    out, last = [], 0
    for start, end in sorted(spans):
        if start < last:
            continue
        out.append(text[last:start])
        out.append(placeholder)
        last = end
    out.append(text[last:])
    return "".join(out), len(out) // 2
