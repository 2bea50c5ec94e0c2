"""repetition_filter's loop and n-gram statistics, computed in numpy, give the answers of their
definitions (the per-position Python loops they replaced) on real answers and on planted loops."""

from __future__ import annotations

import json
import random

from conftest import LF

from datamill.clean import sft_filters as sf
from datamill.clean.text import words


def loop_by_definition(text: str, max_period: int = 20) -> bool:
    total = len(text.strip())
    tokens = [(m.group(0), m.start(), m.end()) for m in sf._TOKEN.finditer(text)]
    toks = [t[0] for t in tokens]
    n = len(toks)
    if n >= 10 and len(set(toks)) < n:
        for p in range(1, min(max_period, n // 5) + 1):
            run = 0
            for i in range(n - p):
                if toks[i] == toks[i + p]:
                    run += 1
                    if run >= 4 * p:
                        start = i + 1 - run
                        unit = toks[start : start + p]
                        span = tokens[i + p][2] - tokens[start][1]
                        if sf._loop_ok(p, sum(ch.isalnum() for t in unit for ch in t), span, total):
                            return True
                else:
                    run = 0
    for tok in toks:
        if len(tok) >= 30:
            m = sf._LOOP.search(tok)
            if m and sf._loop_ok(0, sum(ch.isalnum() for ch in m.group(1)), m.end() - m.start(), total):
                return True
    return False


def repeated_by_definition(ws: list[str], n: int = 10) -> int:
    seen: set[tuple[str, ...]] = set()
    dup: set[int] = set()
    for i in range(len(ws) - n + 1):
        g = tuple(ws[i : i + n])
        if g in seen:
            dup.update(range(i, i + n))
        else:
            seen.add(g)
    return len(dup)


def texts() -> list[str]:
    """Real answers (en and zh), and the same with a planted loop, repeated sentences or copied spans."""
    rng = random.Random(7)
    real = [r["output"] for name in ("alpaca_en_demo.json", "alpaca_zh_demo.json")
            for r in json.loads((LF / name).read_text(encoding="utf-8"))]
    out = list(real)
    for text in rng.sample(real, 1500):
        toks = text.split()
        if len(toks) < 12:
            continue
        p = rng.randint(1, min(22, len(toks) - 1))
        at = rng.randrange(len(toks) - p)
        unit = toks[at : at + p]
        out.append(" ".join(toks[:at] + unit * rng.randint(2, 7) + toks[at:]))
        a, b = sorted(rng.sample(range(len(toks)), 2))
        out.append(" ".join(toks + toks[a:b] + toks[: rng.randint(0, len(toks))]))
        out.append(text[: len(text) // 2] + text[: rng.randint(0, len(text))])
    return out


def test_loops_and_repeated_ngrams_match_their_definitions():
    cases = texts()
    loops = [sf._has_loop(t, sf._TOKEN.findall(t)) for t in cases]
    assert loops == [loop_by_definition(t) for t in cases]
    assert 300 < sum(loops) < len(cases) - 1000  # both answers are common
    counts = [sf.repeated_ngram_words(words(t)) for t in cases]
    assert counts == [repeated_by_definition(words(t)) for t in cases]
    assert sum(c > 0 for c in counts) > 1000
