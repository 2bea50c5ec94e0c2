"""Planted-defect benchmark for the cleaning gaps of issue 16 (item 6), zh and en separately.

Plants each defect kind into a seeded sample of the alpaca demo records (``--per-kind`` per kind
and language), runs the operator that should catch it and prints, per kind and language, the recall
(planted defects caught) and the share of clean (unplanted) records kept.

    .venv/bin/python benchmarks/planted_defects.py [--per-kind 50] [--seed 0]

Kinds: ``repetition`` (answers like ``1. 1. 1. 1. 1.``), ``truncated`` (answers cut after ``的``,
in a half-decoded ``�``, inside a quotation or a code line), ``near_dup`` (a copy of a record whose
prompt differs in case and punctuation only) and ``boilerplate`` (a newsletter/cookie/share line
inside an HTML answer). Clean records for ``boilerplate`` are unplanted answers written as HTML
paragraphs; kept means every original line survived ``html_to_text``.
"""

from __future__ import annotations

import argparse
import copy
import random
import re
import tempfile
from pathlib import Path

import yaml

import datamill
from datamill import ops
from datamill.clean.inject import answer_of, with_answer
from datamill.ops.base import OpContext
from datamill.record import Message, Record
from datamill.results import Drop

ROOT = Path(__file__).resolve().parents[1]
LF = next(p for p in (ROOT / "tests/data/llamafactory", ROOT.parent / "shared/data/llamafactory") if p.exists())
FILES = {"en": "alpaca_en_demo.json", "zh": "alpaca_zh_demo.json"}
# minhash_dedup as clean-sft runs it
RECIPE_DEDUP = next(
    {k: v for k, v in step.items() if k != "op"}
    for step in yaml.safe_load((ROOT / "recipes/clean-sft.yaml").read_text())["steps"]
    if step["op"] == "minhash_dedup"
)

LOOPS = {
    "en": ["1. " * 5, "1. " * 8, "- " * 6, "A " * 6, "* * * * * *", "yes yes yes yes yes yes"],
    "zh": ["1. " * 5, "- " * 6, "哈" * 8, "对对对对对对对对", "好的好的好的好的好的", "A A A A A A"],
}
BOILER = {
    "en": [
        "Click here to subscribe to our newsletter!",
        "This website uses cookies to improve your experience. Accept all cookies",
        "Share this article on Facebook and Twitter",
        "Follow us on Instagram for more tips!",
        "All rights reserved.",
        "Sign up for our newsletter to get the latest updates.",
    ],
    "zh": [
        "点击订阅",
        "分享到微信",
        "版权所有，转载请注明出处",
        "扫码关注我们的公众号",
        "本网站使用Cookie",
        "点击这里订阅我们的新闻通讯！",
    ],
}


def make(name: str, work: Path | None = None, **options):
    cls = ops.get(name)
    return cls(cls.Config.model_validate(options), OpContext(seed=0, step=0, workdir=work or Path("w")))


# ---- planting --------------------------------------------------------------------------------------
def plant_loop(rec: Record, lang: str, rng: random.Random, k: int) -> Record | None:
    return with_answer(rec, rng.choice(LOOPS[lang]).strip())


def plant_cut(rec: Record, lang: str, rng: random.Random, k: int) -> Record | None:
    """Cut the answer mid-sentence: after 的 (zh) or a word (en), then a lone �, inside an opened
    quotation, inside a code line."""
    a = answer_of(rec).rstrip()
    if len(a) < 80 or "```" in a:
        return None
    lo, variant = len(a) // 2, k % 4
    if variant == 0:
        if lang == "zh":
            i = a.find("的", lo, len(a) - 2)
            return with_answer(rec, a[: i + 1]) if i > 0 else None
        m = re.search(r"\w \w", a[lo:])
        return with_answer(rec, a[: lo + m.start() + 1]) if m else None
    cut = a[: rng.randrange(lo, len(a) - 5)].rstrip()
    if not cut or not cut[-1].isalnum() and not "\u4e00" <= cut[-1] <= "\u9fff":
        return None
    if variant == 1:
        return with_answer(rec, cut + "\ufffd")
    if variant == 2:
        quote = "他说：“这" if lang == "zh" else 'As the saying goes, "the early'
        return with_answer(rec, cut + "。" + quote if lang == "zh" else cut + ". " + quote)
    code = (
        "例如：\n\n    for i in range(10):\n        print(i"
        if lang == "zh"
        else "For example:\n\n    total = sum(x for x in"
    )
    return with_answer(rec, a + "\n\n" + code)


def plant_near_dup(rec: Record, lang: str, rng: random.Random, k: int) -> Record | None:
    """The same record, its prompt changed in case and punctuation only."""
    q = rec.messages[0].content
    words = q.split()
    if lang == "en":
        if len(words) < 4:
            return None
        i = rng.randrange(len(words))
        words[i] = words[i].upper()
        j = rng.randrange(len(words) - 1)  # a comma glued between two words: "world,this"
        words[j : j + 2] = [words[j].rstrip(",.") + "," + words[j + 1]]
        q2 = " ".join(words)
        q2 = q2[:-1] + "!" if q2.endswith(".") else q2 + "!"
    else:
        q2 = q.replace("。", "！").replace("？", "?")
        if q2 == q:
            q2 = q + "！"
        k = rng.randrange(1, max(2, len(q2) - 1))
        q2 = q2[:k] + "，" + q2[k:]
        q2 = re.sub(r"[A-Za-z]+", lambda m: m.group(0).upper(), q2, count=1)
    out = copy.deepcopy(rec)
    out.messages[0] = Message("user", q2)
    out.id = out.compute_id()
    return out


def plant_boiler(rec: Record, lang: str, rng: random.Random, k: int) -> Record | None:
    lines = [ln for ln in answer_of(rec).split("\n") if ln.strip()]
    at = rng.randrange(len(lines) + 1)
    lines.insert(at, rng.choice(BOILER[lang]))
    return with_answer(rec, "".join(f"<p>{ln}</p>\n" for ln in lines))


# ---- measuring -------------------------------------------------------------------------------------
def sample(recs: list[Record], lang: str, rng: random.Random, n: int, plant) -> tuple[list[Record], set[int]]:
    order = list(range(len(recs)))
    rng.shuffle(order)
    planted, used = [], set()
    for i in order:
        if len(planted) == n:
            break
        p = plant(recs[i], lang, rng, len(planted))
        if p is not None:
            planted.append(p)
            used.add(i)
    return planted, used


def filter_kind(recs: list[Record], planted: list[Record], used: set[int], op) -> tuple[float, float]:
    caught = sum(bool(op.reason(r)) for r in planted)
    clean = [r for i, r in enumerate(recs) if i not in used]
    kept = sum(not op.reason(r) for r in clean)
    return caught / len(planted), kept / len(clean)


def near_dup_kind(recs: list[Record], planted: list[Record], used: set[int]) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        op = make("minhash_dedup", Path(tmp) / "w", **{**RECIPE_DEDUP, "keep": "first"})
        out = list(op.run(recs + planted))
    dropped = {o.record.id for o in out if isinstance(o, Drop)}
    caught = sum(p.id in dropped for p in planted)  # keep=first: the copy goes, its original stays
    clean = [r for i, r in enumerate(recs) if i not in used]
    return caught / len(planted), sum(r.id not in dropped for r in clean) / len(clean)


def boiler_kind(recs: list[Record], planted: list[Record], used: set[int], rng: random.Random, n: int):
    op = make("html_to_text", part="answer")
    caught = 0
    for p in planted:
        out = answer_of(op.map(copy.deepcopy(p)))
        caught += not any(b in out for b in BOILER["zh"] + BOILER["en"])
    clean = [recs[i] for i in range(len(recs)) if i not in used]
    control = rng.sample(clean, min(len(clean), 4 * n))
    kept = 0
    for r in control:
        lines = [ln.strip() for ln in answer_of(r).split("\n") if ln.strip()]
        html = with_answer(r, "".join(f"<p>{ln}</p>\n" for ln in lines))
        out = answer_of(op.map(html))
        kept += all(ln in out for ln in lines)
    return caught / len(planted), kept / len(control)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-kind", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    n = args.per_kind
    print(f"data: {LF}\n")
    print("| kind | lang | planted | recall | clean kept |")
    print("|---|---|---:|---:|---:|")
    for lang, name in FILES.items():
        recs = [r for r in datamill.read(LF / name) if isinstance(r, Record) and r.messages]
        for kind in ("repetition", "truncated", "near_dup", "boilerplate"):
            rng = random.Random(f"{args.seed}-{lang}-{kind}")
            if kind == "repetition":
                planted, used = sample(recs, lang, rng, n, plant_loop)
                recall, kept = filter_kind(recs, planted, used, make("repetition_filter"))
            elif kind == "truncated":
                planted, used = sample(recs, lang, rng, n, plant_cut)
                recall, kept = filter_kind(recs, planted, used, make("truncated_answer_filter"))
            elif kind == "near_dup":
                planted, used = sample(recs, lang, rng, n, plant_near_dup)
                recall, kept = near_dup_kind(recs, planted, used)
            else:
                planted, used = sample(recs, lang, rng, n, plant_boiler)
                recall, kept = boiler_kind(recs, planted, used, rng, n)
            print(f"| {kind} | {lang} | {len(planted)} | {recall:.0%} | {kept:.1%} |")


if __name__ == "__main__":
    main()
