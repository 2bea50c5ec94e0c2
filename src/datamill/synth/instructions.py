"""Heuristic filters for machine-written instructions (the Self-Instruct rules, in English and
Chinese): too short or long, banned keywords (tasks a text model cannot do), non-text, punctuation
starts. Each returns a short drop reason or None."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from datamill.synth.rouge import CJK, tokenize

# Self-Instruct's list (tasks about images, files, audio … a language model cannot do)
BANNED_EN = (
    "image", "images", "graph", "graphs", "picture", "pictures", "file", "files", "map", "maps", "draw",
    "plot", "go to", "video", "audio", "music", "flowchart", "diagram",
)  # fmt: skip
BANNED_ZH = ("图片", "图像", "图表", "照片", "画一", "绘制", "视频", "音频", "音乐", "文件", "地图", "流程图", "示意图")
CJK_CHAR = re.compile(f"[{CJK}]")


def is_zh(text: str) -> bool:
    return bool(CJK_CHAR.search(text))


def banned_keyword(text: str, keywords: Iterable[str]) -> str | None:
    """The first keyword found: whole words for Latin keywords, substrings for CJK ones."""
    low = text.lower()
    for kw in keywords:
        k = kw.lower()
        if is_zh(k):
            if k in low:
                return kw
        elif re.search(rf"(?<![a-z0-9]){re.escape(k)}(?![a-z0-9])", low):
            return kw
    return None


def instruction_problem(
    text: str, min_tokens: int = 3, max_tokens: int = 150, banned: Iterable[str] = BANNED_EN + BANNED_ZH
) -> str | None:
    """Why a candidate instruction is unusable (a drop reason), or None. Length is in tokens: words,
    and each CJK character counts as one."""
    text = text.strip()
    if not text:
        return "empty instruction"
    n = len(tokenize(text))
    if n < min_tokens:
        return "instruction too short"
    if n > max_tokens:
        return "instruction too long"
    if unicodedata.category(text[0]).startswith(("P", "S")) and text[0] not in "\"'“‘(（《【":
        return "starts with punctuation"
    symbols = sum(not (ch.isalnum() or ch.isspace()) for ch in text)
    if not any(ch.isalpha() for ch in text) or symbols / len(text) > 0.3:  # numbers, code, markup
        return "non-text"
    if not is_zh(text) and not text[0].isascii():
        return "non-text"
    if banned_keyword(text, banned) is not None:
        return "banned keyword"
    if text.lower().startswith("write a program"):  # Self-Instruct drops these: unverifiable code tasks
        return "banned keyword"
    return None
