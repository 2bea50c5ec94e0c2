"""SFT answer filters: empty, echoed, truncated, refusal/AI-disclaimer, unreplaced placeholders,
wrong language, mojibake and runaway repetition. Each drops a record with one short, stable reason.

They look at every assistant answer of a conversation (each paired with the user turn before it), at
the ``chosen`` side of a preference pair (``rejected`` is meant to be bad; ``rejected: true`` checks it
too) and at KTO answers whatever their label. Pretraining documents have no answer and are kept.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterator

import numpy as np

from datamill.arrays import windows
from datamill.clean.text import CJK, CODE_FENCE, script_lang, words
from datamill.ops import register
from datamill.ops.base import Filter, OpConfig
from datamill.record import Record


def answer_pairs(record: Record, rejected: bool = False) -> Iterator[tuple[str, str]]:
    """(prompt, answer) for every assistant turn, the chosen side and optionally the rejected side."""
    prompt = record.system or ""
    for m in record.messages:
        if m.role == "user":
            prompt = m.content
        elif m.role == "assistant":
            yield prompt, m.content
    if record.chosen is not None:
        yield prompt, record.chosen.content
    if rejected and record.rejected is not None:
        yield prompt, record.rejected.content


class AnswerFilter(Filter):
    """A filter that drops a record when any of its answers fails ``check(prompt, answer)``."""

    class Config(OpConfig):
        rejected: bool = False  # also check the rejected side of preference pairs

    def check(self, prompt: str, answer: str) -> str | None:
        raise NotImplementedError

    def reason(self, record: Record) -> str | None:
        for prompt, answer in answer_pairs(record, self.config.rejected):
            why = self.check(prompt, answer)
            if why:
                return why
        return None


# ----------------------------------------------------------------------------------------------- empty


@register
class EmptyAnswerFilter(AnswerFilter):
    """Drop records with an empty, whitespace-only or punctuation-only answer.

    Drop records with an empty, whitespace-only or punctuation-only answer."""

    name = "empty_answer_filter"

    def check(self, prompt: str, answer: str) -> str | None:
        if not any(ch.isalnum() for ch in answer):
            return "empty answer"
        return None


# ------------------------------------------------------------------------------------------------ echo

_NORM_DROP = re.compile(r"[\W_]+", re.U)


def _norm(s: str) -> str:
    return _NORM_DROP.sub("", unicodedata.normalize("NFKC", s).lower())


@register
class EchoAnswerFilter(AnswerFilter):
    """Drop answers that only repeat the instruction.

    Drop records whose answer only repeats the instruction (same text up to case, spacing and
    punctuation, or the instruction with at most ``max_extra`` added characters)."""

    name = "echo_answer_filter"

    class Config(AnswerFilter.Config):
        max_extra: float = 0.1  # share of the answer allowed to be new

    def check(self, prompt: str, answer: str) -> str | None:
        a, p = _norm(answer), _norm(prompt)
        if len(a) < 4 or not p:
            return None
        if a == p:
            return "answer repeats the instruction"
        if a in p and len(a) >= 0.8 * len(p):
            return "answer repeats the instruction"
        if p in a and len(a) - len(p) <= self.config.max_extra * len(a):
            return "answer repeats the instruction"
        return None


# ------------------------------------------------------------------------------------------- truncated

TERMINAL = set(".!?。！？…;；:：\"'”’」』）)]】}>`*~|") | set("0123456789%")
PAIRS = {"(": ")", "[": "]", "{": "}", "（": "）", "【": "】", "「": "」", "《": "》"}
CONNECTORS_EN = frozenset(
    [
        "the",
        "a",
        "an",
        "and",
        "or",
        "but",
        "of",
        "to",
        "in",
        "on",
        "for",
        "with",
        "that",
        "which",
        "is",
        "are",
        "was",
        "were",
        "be",
        "by",
        "as",
        "at",
        "from",
        "this",
        "these",
        "their",
        "its",
        "his",
        "her",
        "our",
        "your",
        "my",
        "into",
        "than",
        "because",
        "while",
        "although",
        "if",
        "when",
        "can",
        "will",
        "would",
        "should",
        "could",
        "may",
        "might",
        "must",
        "has",
        "have",
        "had",
        "do",
        "does",
        "not",
        "very",
        "more",
        "most",
        "such",
        "about",
        "like",
        "approximately",
        "around",
        "between",
        "both",
        "each",
        "every",
        "some",
        "any",
        "many",
        "several",
    ]
)
_LIST_ITEM = re.compile(r"^\s*(?:[-*•]|\d+[.)、]|[A-Za-z][.)])\s")
_LAST_WORD = re.compile(r"([A-Za-z]+)\W*$")


_WIDTH = str.maketrans("（）【】［］｛｝", "()[][]{}")


def _unbalanced(text: str) -> bool:
    """More openers than closers for (), [], {}, 「」, 《》 (full- and half-width alike) — counted outside
    code fences, where a bracket left open means the answer stopped early."""
    text = text.translate(_WIDTH)
    return any(text.count(o) > text.count(c) for o, c in PAIRS.items())


# a Chinese sentence does not end on these (的 of a noun phrase, a conjunction, a preposition) …
_ZH_OPEN_END = re.compile(f"[{CJK}](?:的|或|把|被|从|并且|而且|但是|因为|所以|如果|虽然|以及|和)$")
# … unless they end a word that can end one (是的, 目的, 好的, 总和 …)
_ZH_WORD_END = re.compile("(?:是|目|好|似|真|有|别|对|之|总|温|平|缓|柔|谐|讲|共|暖)[的和]$")
_INLINE_CODE = re.compile(r"`[^`]*`")


def _open_quote(line: str) -> bool:
    """The last line opens a quotation it does not close (curly quotes, or an odd number of ")."""
    line = _INLINE_CODE.sub(" ", line)
    return line.count("“") > line.count("”") or line.count('"') % 2 == 1


@register
class TruncatedAnswerFilter(AnswerFilter):
    """Drop answers that stop early (unclosed code fence or bracket, cut mid-sentence).

    Drop answers that stop early: an unclosed code fence, an unclosed bracket, or a final sentence
    that ends mid-word/mid-clause (no terminal punctuation and, for English, a last word that cannot end
    a sentence, or a half sentence after several finished ones)."""

    name = "truncated_answer_filter"

    class Config(AnswerFilter.Config):
        min_chars: int = 40  # shorter answers (labels, names, numbers) are not judged

    def check(self, prompt: str, answer: str) -> str | None:
        text = answer.rstrip()
        if len(text) < self.config.min_chars:
            return None
        if text.endswith("\ufffd"):
            return "truncated: ends in a half character"  # a multi-byte character cut at the end
        if "\ufffd" in text:
            return None  # broken encoding, not a cut: left to mojibake_filter
        if text.count("```") % 2 == 1:
            return "truncated: unclosed code fence"
        prose = CODE_FENCE.sub(" ", text)
        if _unbalanced(prose):
            return "truncated: unclosed bracket"
        if text.endswith("```"):
            return None
        last_line = text.splitlines()[-1].strip()
        end = last_line[-1]
        if end in "，、,":
            return "truncated: ends mid-sentence"
        if _open_quote(CODE_FENCE.sub(" ", last_line)):
            return "truncated: unclosed quotation"
        if _ZH_OPEN_END.search(last_line) and not _ZH_WORD_END.search(last_line):
            return "truncated: ends mid-sentence"
        if end in TERMINAL:
            return None
        lines = [ln.strip() for ln in prose.splitlines() if ln.strip()][:-1]
        finished = len(lines) >= 1 and sum(ln[-1] in TERMINAL for ln in lines) >= 0.7 * len(lines)
        if re.search(f"[{CJK}]$", last_line):
            if _LIST_ITEM.match(last_line):  # an item of a list of sentences, or of names
                return "truncated: ends mid-sentence" if lines and lines[-1][-1] in "。！？" else None
            after_colon = re.split("[：:]", last_line)[-1]
            if len(last_line) < 4 or (after_colon != last_line and len(after_colon.strip()) <= 6):
                return None  # a signature or a "label：value" line
            # Chinese prose ends with 。！？ etc.; a bare character after finished sentences is a cut
            if re.search("[。！？：]", text) and (
                len(last_line) >= 8 or finished or (lines and lines[-1][-1] in "。！？")
            ):
                return "truncated: ends mid-sentence"
            return None
        if last_line.startswith("|"):
            return None if last_line.endswith("|") else "truncated: ends mid-sentence"
        m = _LAST_WORD.search(last_line)
        if m is None or not last_line.endswith(m.group(1)):
            return None
        last = m.group(1)
        if last.lower() in CONNECTORS_EN:
            return "truncated: ends mid-sentence"
        # a word at the end, where the writer otherwise finishes sentences and lines
        if re.search(r"[.!?] +[A-Za-z]", last_line) and len(last_line) >= 40 and not re.search(r"[#@]\w+$", last_line):
            return "truncated: ends mid-sentence"
        is_item = bool(_LIST_ITEM.match(last_line)) or last_line.startswith(("-", "—", "–", "#", "~"))
        prev_done = bool(lines) and lines[-1][-1] in ".!?。！？"
        if last.islower() and (prev_done if is_item else finished and len(last_line.split()) >= 4):
            return "truncated: ends mid-sentence"
        # one unfinished prose sentence: starts like a sentence, 8+ words, ends on a lowercase word
        if not lines and last.islower() and re.match(r"[A-Z][a-z]", last_line) and len(last_line.split()) >= 8:
            return "truncated: ends mid-sentence"
        return None


# ------------------------------------------------------------------------------------------- refusals

REFUSAL_EN = re.compile(
    r"\bas an ai\b|\bas a(?:n)? (?:ai|artificial intelligence|large)? ?(?:language )?model\b"
    r"|\bi(?:'m| am) (?:just |only )?an? (?:ai|artificial intelligence|language model|virtual assistant)\b"
    r"|\b(?:i(?:'m| am) sorry|i apologi[sz]e|my apologies|unfortunately),? (?:but )?(?:as an ai\b|i (?:cannot|can't|"
    r"can not|am unable|am not able|do not have|don't have|do not possess)\b)"
    r"|\bi (?:cannot|can't|can not|am unable to|am not able to|won't) (?:fulfil|fulfill|comply|assist|help|"
    r"provide|answer|generate|create|write|do that|browse|access)\b"
    r"|\bi do(?:n't| not) have (?:personal (?:opinions|feelings|experiences|preferences|beliefs)|"
    r"the ability to|access to (?:real-time|the internet|current))\b"
    r"|\b(?:i was|i am|i'm) (?:trained|developed|created) by openai\b|\bmy (?:training data|knowledge cutoff)\b",
    re.I,
)
REFUSAL_ZH = re.compile(
    r"作为(?:一[个名款]|个)?(?:人工智能|AI|ai|语言模型|大语言模型|AI语言模型|人工智能语言模型|人工智能助手|AI助手|智能助手)"
    r"|我(?:只是|是)一[个名款]?(?:人工智能|AI|语言模型|计算机程序|虚拟助手)"
    r"|(?:抱歉|对不起|很遗憾)[，,]?\s*(?:我|但我)(?:无法|不能|没有办法|不可以)"
    r"|我(?:无法|不能)(?:提供|回答|满足|帮助|协助|完成)(?:您|你)?的?(?:请求|要求|这个问题|此类)"
    r"|我没有(?:个人的?(?:观点|感情|情感|意见|经历|喜好)|能力)|我的(?:训练数据|知识截止)",
)


@register
class RefusalFilter(AnswerFilter):
    """Drop refusals and AI disclaimers, English and Chinese.

    Drop refusals and AI disclaimers in English and Chinese ("As an AI language model",
    "I'm sorry, but I cannot", "作为一个人工智能语言模型", "抱歉，我无法" …)."""

    name = "refusal_filter"

    class Config(AnswerFilter.Config):
        head_chars: int | None = None  # only look at the first N characters (None: the whole answer)

    def check(self, prompt: str, answer: str) -> str | None:
        text = answer if self.config.head_chars is None else answer[: self.config.head_chars]
        if REFUSAL_EN.search(text) or REFUSAL_ZH.search(text):
            return "refusal or AI disclaimer"
        return None


# ---------------------------------------------------------------------------------------- placeholders

PLACEHOLDER = re.compile(
    r"\{\{\s*[\w.]+\s*\}\}|\{\s*(?:name|user|username|company|date|city|product)\s*\}"
    r"|<\s*/?\s*no\s*_?(?:input|output)\s*>"
    r"|\[\s*(?:your|insert|recipient|company|customer|product|enter|add|name of|sender|"
    r"first name|last name|full name|name|date|address|phone|email|city|title|organization|job title)"
    r"(?:['’]s)?[^\]\n]{0,40}\]"
    r"|[\[【［]\s*(?:你的|您的|在此|此处|插入|填写|输入|请填写|收件人|公司|姓名|名字|日期|地址|电话)[^\]】］\n]{0,20}[\]】］]",
    re.I,
)


@register
class PlaceholderFilter(Filter):
    """Drop records with unreplaced placeholders ({{name}}, <noinput>, [Your Name], 【姓名】).

    Drop records with unreplaced template placeholders: ``{{name}}``, ``<noinput>``, ``[Your Name]``,
    ``[Company Name]``, ``[插入日期]``, ``【你的名字】`` … in the answer (or wherever ``part`` says)."""

    name = "placeholder_filter"

    class Config(OpConfig):
        part: str = "answer"  # answer | prompt | all

    def reason(self, record: Record) -> str | None:
        if record.text is not None and self.config.part == "answer":
            return None
        if PLACEHOLDER.search(record.part(self.config.part)):
            return "unreplaced placeholder"
        return None


# -------------------------------------------------------------------------------------------- language

TRANSLATE = re.compile(
    r"translat|in chinese|into chinese|to chinese|chinese (?:word|version|character|name|sentence)|mandarin|pinyin|"
    r"翻译|译成|译为|英文|英语|英译|中译|中文|汉语|拼音|用英|以英|English",
    re.I,
)


QUOTED_LATIN = re.compile(r"[“\"'‘「《][A-Za-z][A-Za-z .,'-]{1,40}[”\"'’」》]")


@register
class AnswerLanguageFilter(AnswerFilter):
    """Drop answers in another language (zh/en) than the instruction.

    Drop answers written in another language than the instruction (Chinese vs English, decided by
    script and English function words; code is ignored), unless the instruction asks for a translation
    or names a language."""

    name = "answer_language_filter"

    def check(self, prompt: str, answer: str) -> str | None:
        p = script_lang(prompt, strict=False)
        if p is None or TRANSLATE.search(prompt) or (p == "zh" and QUOTED_LATIN.search(prompt)):
            return None
        a = script_lang(answer, min_letters=20)
        if a is not None and a != p:
            return f"answer language {a} != instruction {p}"
        return None


# -------------------------------------------------------------------------------------------- mojibake

# utf-8 read as cp1252/latin-1: "â€™", "Ã©", "Ã¤" … ; utf-8 read as GBK: "鈥", "锟斤拷", "鍙" …
LATIN_MOJIBAKE = re.compile(r"(?:Ã[\x80-\xbf€‚ƒ„…†‡ˆ‰Š‹ŒŽ‘’“”•–—˜™š›œžŸ¡-¿]|â€[™œ\x9d“”˜¦¢¡]|Â[\xa0-\xbf]|ï»¿|ï¿½)")
GBK_MOJIBAKE = re.compile("锟斤拷|烫烫烫|屯屯屯|鈥[檚渀溿]|�")
_CJK_RUN = re.compile(f"[{CJK}\u3000-\u303f\uff00-\uffef]{{4,}}")


def _gbk_mojibake(text: str) -> bool:
    """UTF-8 bytes decoded as GBK turn into runs of rare CJK characters; re-encoding a run as GBK gives
    back valid UTF-8 (genuine Chinese almost never does)."""
    for run in _CJK_RUN.findall(text):
        try:
            fixed = run.encode("gbk").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            continue
        if fixed != run and len(fixed) < len(run):
            return True
    return False


def is_mojibake(text: str) -> bool:
    if LATIN_MOJIBAKE.search(text) or GBK_MOJIBAKE.search(text):
        return True
    return _gbk_mojibake(text)


@register
class MojibakeFilter(Filter):
    """Drop records with mojibake (UTF-8 read as cp1252/GBK, U+FFFD).

    Drop records with mojibake: UTF-8 decoded as cp1252/latin-1 ("â€™", "Ã©"), UTF-8 decoded as GBK
    ("鍦ㄨ繖", "锟斤拷") or replacement characters (U+FFFD). Fixable latin-1 mojibake can be repaired
    with ``fix_unicode`` before this filter."""

    name = "mojibake_filter"

    class Config(OpConfig):
        part: str = "all"

    def reason(self, record: Record) -> str | None:
        return "mojibake" if is_mojibake(record.part(self.config.part)) else None


# ------------------------------------------------------------------------------------------ repetition

_LOOP = re.compile(r"(.{3,80}?)(?:\s*\1){4,}", re.S)
_TOKEN = re.compile(f"[{CJK}]|[^\\s{CJK}]+")
_LONG_TOKEN = re.compile(f"[^\\s{CJK}]{{30,}}")  # the _TOKEN matches of 30+ characters


def _loop_ok(unit_chars: int, alnum: int, span: int, total: int) -> bool:
    return alnum >= 2 and (span >= 0.2 * total or span >= 80)


def _token_ids(tokens: list[str]) -> np.ndarray:
    """Each token's 64-bit string hash, so comparisons run in numpy (two different tokens share one
    with odds of 2⁻⁶⁴ a pair: at worst a loop found that is not one)."""
    return np.fromiter(map(hash, tokens), np.int64, len(tokens))


def _runs(equal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) of every run of True in a 1-D bool array."""
    edges = np.diff(np.concatenate(([0], equal.view(np.int8), [0])))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def _has_loop(text: str, toks: list[str], max_period: int = 20) -> bool:
    """A unit of 1–20 tokens (CJK characters count one each) repeated 5+ times in a row, covering 80+
    characters or a fifth of the text. Linear in the text per period, unlike a backtracking regex:
    token ``i`` equal to token ``i + p`` for ``4p`` positions in a row is the unit of ``p`` tokens five
    times; all periods are compared at once in numpy. ``toks``: the text's ``_TOKEN`` matches."""
    total = len(text.strip())
    n = len(toks)
    top = min(max_period, n // 5)
    if n >= 10 and top >= 1:
        ids = _token_ids(toks)
        padded = np.concatenate((ids, -1 - np.arange(top)))  # never equal to a token
        ahead = windows(padded, top + 1)[:n]
        equal = ahead[:, 1:] == ahead[:, :1]  # equal[i, p - 1]: token i is token i + p
        spans = None
        for p in np.flatnonzero(equal.sum(axis=0) >= 4 * np.arange(1, top + 1)) + 1:
            starts, ends = _runs(equal[: n - p, p - 1])
            for start, end in zip(starts, ends, strict=True):
                if end - start < 4 * p:
                    continue
                if spans is None:
                    spans = [m.span() for m in _TOKEN.finditer(text)]
                unit = toks[start : start + p]
                span = spans[end - 1 + p][1] - spans[start][0]  # the whole run: the unit 5+ times
                if _loop_ok(p, sum(ch.isalnum() for t in unit for ch in t), span, total):
                    return True
    for tok in _LONG_TOKEN.findall(text):  # units glued together without spaces ("```python```python…")
        m = _LOOP.search(tok)
        if m and _loop_ok(0, sum(ch.isalnum() for ch in m.group(1)), m.end() - m.start(), total):
            return True
    return False


def repeated_ngram_words(ws: list[str], n: int = 10) -> int:
    """Words inside an n-gram that occurred earlier in the text (Gopher's duplicate n-gram fraction):
    the n-grams are built by ``zip`` (no slicing per position), the covered words counted from the
    sorted starts."""
    seen: set[tuple[str, ...]] = set()
    repeats: list[int] = []
    for i, gram in enumerate(zip(*(ws[k:] for k in range(n)), strict=False)):  # ends with the shortest
        if gram in seen:
            repeats.append(i)
        else:
            seen.add(gram)
    covered, end = 0, 0
    for start in repeats:  # the union of [start, start + n)
        covered += start + n - max(start, end)
        end = start + n
    return covered


def _all_one_unit(toks: list[str], max_period: int = 3, min_reps: int = 4) -> bool:
    """The whole answer is one unit of 1–3 tokens repeated 4+ times ("1. 1. 1. 1.", "- - - -",
    "哈哈哈哈哈哈"): too short and too poor in letters for ``_has_loop``, and never an answer."""
    for p in range(1, max_period + 1):
        if len(toks) >= min_reps * p and len(toks) % p == 0 and toks == toks[:p] * (len(toks) // p):
            return True
    return False


_SENT_SPLIT = re.compile(r"(?<=[.!?。！？\n])\s*")


def repetition_reason(text: str, max_dup_ngram: float = 0.3, max_dup_sentence: float = 0.3) -> str | None:
    """Gopher-style duplicate fractions on one answer: characters inside repeated 10-word n-grams
    (a CJK character is a word) and inside repeated sentences; plus one unit repeated 4+ times in a row,
    or an answer that is nothing but one short unit repeated."""
    toks = _TOKEN.findall(text)
    if _has_loop(text, toks) or _all_one_unit(toks):
        return "repetitive answer"
    prose = CODE_FENCE.sub(" ", text)
    sents = [s.strip() for s in _SENT_SPLIT.split(prose) if len(s.strip()) >= 8]
    if len(sents) >= 4:
        counts = Counter(sents)
        dup = sum(len(s) * (n - 1) for s, n in counts.items() if n > 1)
        if dup > max_dup_sentence * sum(len(s) for s in sents):
            return "repetitive answer"
    ws = words(text)
    if len(ws) >= 30 and repeated_ngram_words(ws, 10) > max_dup_ngram * len(ws):
        return "repetitive answer"
    return None


@register
class RepetitionFilter(AnswerFilter):
    """Drop answers that loop or repeat sentences/n-grams.

    Drop answers that repeat themselves: a phrase looping 5+ times in a row, repeated sentences over
    ``max_dup_sentence`` of the text, or repeated 10-grams (CJK characters as words) over
    ``max_dup_ngram`` of the words."""

    name = "repetition_filter"

    class Config(AnswerFilter.Config):
        max_dup_ngram: float = 0.3
        max_dup_sentence: float = 0.3

    def check(self, prompt: str, answer: str) -> str | None:
        return repetition_reason(answer, self.config.max_dup_ngram, self.config.max_dup_sentence)
