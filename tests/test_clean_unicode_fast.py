"""fix_unicode asks ftfy only about text ftfy would change: ``untouched_by_ftfy`` must say "untouched"
exactly when ftfy gives the text back as it is, on real text and on text broken every way ftfy fixes."""

from __future__ import annotations

import json
import random

import ftfy
from conftest import DATA, LF

from datamill.clean.mappers import untouched_by_ftfy

BREAKS = [
    lambda t: t.encode("utf-8").decode("latin-1"),  # mojibake
    lambda t: t.encode("utf-8").decode("cp1252", errors="replace"),
    lambda t: t.replace("\n", "\r\n"),
    lambda t: t + "\x1b[31m red \x1b[0m",
    lambda t: t.replace(" ", "\x00 ", 1),
    lambda t: t.replace("fi", "ﬁ"),
    lambda t: t + " cafe\u0301",  # not NFC
    lambda t: t + "\u2028next",
    lambda t: t + " \x85",
    lambda t: t + "\ufeff",
    lambda t: t[: len(t) // 2] + "Ã©" + t[len(t) // 2 :],
]


def texts() -> list[str]:
    rng = random.Random(3)
    real = [r[k] for name in ("alpaca_en_demo.json", "alpaca_zh_demo.json")
            for r in json.loads((LF / name).read_text(encoding="utf-8")) for k in ("instruction", "output") if r[k]]
    real += [p.read_text(encoding="utf-8", errors="replace")[:3000] for p in sorted((DATA / "docs").rglob("*.md"))[:40]]
    out = [t for t in real if not t.isascii()]
    for t in rng.sample(real, 1500):
        out.append(rng.choice(BREAKS)(t))
    return out


def test_untouched_exactly_when_ftfy_returns_the_text():
    settings = {"unescape_html": False, "normalization": "NFC", "uncurl_quotes": False, "fix_character_width": False}
    cases = texts()
    untouched = [untouched_by_ftfy(t) for t in cases]
    wrong = [t for t, u in zip(cases, untouched, strict=True) if u and ftfy.fix_text(t, **settings) != t]
    assert not wrong, wrong[:3]
    assert sum(untouched) > 500 and len(cases) - sum(untouched) > 1000  # both answers are common
