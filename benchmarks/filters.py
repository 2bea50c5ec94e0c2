"""Cleaning filters: drop-rate tables for docs/cleaning.md, and speed and decisions against datatrove.

    python benchmarks/filters.py table              # markdown: share of every demo file each filter drops
    python benchmarks/filters.py speed [N] [CORPUS] # docs/s per core and keep/drop agreement with datatrove
    python benchmarks/filters.py spacy-rules        # rewrite resources/spacy_en_tokenizer.txt from spaCy

``speed`` runs datatrove's GopherRepetitionFilter → GopherQualityFilter → C4QualityFilter (defaults) and
datamill's three filters with ``preset: datatrove`` in the same order on the same N documents (20,000 by
default), each in its own process on one core, and prints docs/s per core (CPU time), the ratio, the
share of identical keep/drop decisions (and of identical reasons) and the first disagreements. It also
times datamill's default pretraining set (six filters). CORPUS: ``mixed`` (default: N distinct documents
made from the English demo corpora with planted repetition, boilerplate, bullets and code, 5% Chinese)
or ``c4`` (c4_demo.jsonl repeated to N, the lines of every copy shuffled so that no two texts are equal).

datatrove is not a datamill dependency: it runs from the venv in ``DATATROVE_PYTHON`` (default
``/tmp/dtvenv/bin/python``; ``python3 -m venv /tmp/dtvenv && /tmp/dtvenv/bin/pip install datatrove spacy``),
which ``spacy-rules`` also uses.
"""

from __future__ import annotations

import copy
import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
LF = DATA / "llamafactory"
DATATROVE_PYTHON = Path(os.environ.get("DATATROVE_PYTHON", "/tmp/dtvenv/bin/python"))
RULES = ROOT / "src" / "datamill" / "resources" / "spacy_en_tokenizer.txt"
sys.path.insert(0, str(ROOT / "src"))

import datamill  # noqa: E402
from datamill import ops  # noqa: E402
from datamill.ops.base import OpContext  # noqa: E402
from datamill.record import Record  # noqa: E402

SFT_FILTERS = [
    "empty_answer_filter",
    "echo_answer_filter",
    "mojibake_filter",
    "refusal_filter",
    "placeholder_filter",
    "answer_language_filter",
    "repetition_filter",
    "truncated_answer_filter",
]
PRETRAIN_FILTERS = [
    "language_filter",
    "gopher_quality_filter",
    "gopher_repetition_filter",
    "c4_quality_filter",
    "char_ratio_filter",
    "bad_words_filter",
]
MAPPERS = [
    ("html_to_text", {}),
    ("fix_unicode", {}),
    ("normalize_whitespace", {}),
    ("mask_pii", {}),
    ("remove_urls", {}),
    ("normalize_dates", {}),
    ("convert_chinese", {"config": "t2s"}),
    ("normalize_width", {}),
]


def make(name: str, **options):
    cls = ops.get(name)
    return cls(cls.Config.model_validate(options), OpContext(seed=0, step=0, workdir=ROOT / "benchmarks" / "_work"))


def demo_sets() -> dict[str, list[Record]]:
    def read(name: str) -> list[Record]:
        return [r for r in datamill.read(LF / name) if isinstance(r, Record)]

    rows = json.loads((DATA / "zh" / "ruozhiba-title-good.json").read_text(encoding="utf-8"))
    ruozhiba = [
        Record(text=r["title"] if not r["abs"] or r["abs"] == r["title"] else f"{r['title']}\n{r['abs']}")
        for r in rows
        if r["title"]
    ]
    return {
        "alpaca_en": read("alpaca_en_demo.json"),
        "alpaca_zh": read("alpaca_zh_demo.json"),
        "dpo_en": read("dpo_en_demo.json"),
        "dpo_zh": read("dpo_zh_demo.json"),
        "kto_en (desirable)": [r for r in read("kto_en_demo.json") if r.label],
        "kto_en (undesirable)": [r for r in read("kto_en_demo.json") if not r.label],
        "glaive_toolcall_zh": read("glaive_toolcall_zh_demo.json"),
        "identity": read("identity.json"),
        "c4_demo": read("c4_demo.jsonl"),
        "wiki_demo": read("wiki_demo.txt"),
        "ruozhiba": ruozhiba,
    }


def table() -> None:
    sets = demo_sets()
    names = list(sets)
    print("| filter | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    examples: dict[str, tuple[str, str, str]] = {}
    for name in SFT_FILTERS + PRETRAIN_FILTERS:
        op = make(name)
        cells = []
        for set_name, recs in sets.items():
            hits = [(r, op.reason(r)) for r in recs]
            hits = [(r, why) for r, why in hits if why]
            cells.append(f"{100 * len(hits) / len(recs):.1f}%")
            if hits and name not in examples and set_name != "identity":
                r, why = hits[len(hits) // 2]
                text = r.part("answer") if r.text is None else r.text
                examples[name] = (set_name, why, text)
        print(f"| `{name}` | " + " | ".join(cells) + " |")
    print()
    print("| mapper | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for name, options in MAPPERS:
        op = make(name, **options)
        cells = []
        for recs in sets.values():
            changed = sum(bool(op.map(copy.deepcopy(r)).meta.keys() & {"cleaned", "pii"}) for r in recs)
            cells.append(f"{100 * changed / len(recs):.1f}%")
        print(f"| `{name}` | " + " | ".join(cells) + " |")
    print()
    for name, (set_name, why, text) in examples.items():
        snippet = " ".join(text.split())
        snippet = snippet[:160] + " …" if len(snippet) > 160 else snippet
        print(f"- `{name}` on {set_name}: *{why}* — `{snippet.replace('`', chr(39))}`")


def _english_sources() -> list[tuple[float, list[str]]]:
    """Real English text from the demo corpora, weighted towards web pages: (share, pieces)."""
    c4 = [json.loads(line)["text"] for line in (LF / "c4_demo.jsonl").open(encoding="utf-8")]
    wiki = [  # the articles are long: pieces of about 1,500 characters, cut after a sentence
        piece
        for article in (LF / "wiki_demo.txt").read_text(encoding="utf-8").split("\n")
        for piece in re.findall(r".{1,1500}(?:\. |$)", article)
        if piece.strip()
    ]
    answers = [
        r.part("answer")
        for name in ("alpaca_en_demo.json", "dpo_en_demo.json", "kto_en_demo.json")
        for r in datamill.read(LF / name)
        if isinstance(r, Record) and r.part("answer").strip()
    ]
    reasoning = [json.loads(line)["answer"] for line in (DATA / "gsm8k" / "train.jsonl").open(encoding="utf-8")]
    return [(0.55, c4), (0.15, wiki), (0.25, answers), (0.05, reasoning)]


FURNITURE = [
    "Privacy Policy | Terms of Use | Cookie Settings",
    "This site uses cookies to improve your experience. By continuing you accept our cookie policy.",
    "Please enable JavaScript in your browser to view this page.",
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt.",
    "function track() { window.dataLayer.push({event: 'view'}); }",
    "Share on Facebook | Share on Twitter | Email this story",
    "Read more...",
    "© 2024 All rights reserved.",
]


def mixed_docs(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct documents: 1–4 pieces of real English text (55% c4 pages, 15% Wikipedia, 25% answers,
    5% math reasoning) joined by line or paragraph breaks; some with a repeated line, page furniture (cookie
    and policy lines, JavaScript notices, lorem ipsum, code), bullet lists, trailing ellipses or citation
    marks; 5% Chinese (alpaca_zh answers)."""
    rng = random.Random(seed)
    sources = _english_sources()
    zh = [r.part("answer") for r in datamill.read(LF / "alpaca_zh_demo.json") if isinstance(r, Record)]
    docs: list[str] = []
    seen: set[str] = set()
    while len(docs) < n:
        if rng.random() < 0.05:
            parts = rng.sample(zh, rng.randint(1, 4))
        else:
            k = rng.choice([1, 1, 1, 2, 2, 3, 4])
            parts = [rng.choice(rng.choices([p for _, p in sources], [w for w, _ in sources])[0]) for _ in range(k)]
        lines = "\n".join(parts).split("\n")
        edit = rng.random()
        if edit < 0.12:  # a repeated line (menus, quotes, spam)
            line = rng.choice(lines)
            for _ in range(rng.randint(1, 6)):
                lines.insert(rng.randrange(len(lines) + 1), line)
        elif edit < 0.3:
            for _ in range(rng.randint(1, 3)):
                lines.insert(rng.randrange(len(lines) + 1), rng.choice(FURNITURE))
        elif edit < 0.36:
            lines = [f"- {ln}" if ln.strip() else ln for ln in lines]
        elif edit < 0.4:
            lines = [f"{ln[: rng.randint(10, 80)]}..." if ln.strip() else ln for ln in lines]
        elif edit < 0.45:
            lines = [f"{ln}[{rng.randint(1, 30)}]" if ln.endswith(".") else ln for ln in lines]
        doc = rng.choice(["\n", "\n\n"]).join(lines)
        if doc not in seen:
            seen.add(doc)
            docs.append(doc)
    return docs


def c4_docs(n: int, seed: int = 0) -> list[str]:
    """c4_demo.jsonl repeated to ``n`` documents; every copy after the first has its lines shuffled (and a
    space appended while that is not enough), so no two texts are equal and no cache keyed on the text can
    answer for a copy."""
    rng = random.Random(seed)
    base = [json.loads(line)["text"] for line in (LF / "c4_demo.jsonl").read_text(encoding="utf-8").splitlines()]
    docs, seen = list(base[:n]), set(base)
    while len(docs) < n:
        lines = base[len(docs) % len(base)].split("\n")
        rng.shuffle(lines)
        doc = "\n".join(lines)
        while doc in seen:
            doc += " "
        seen.add(doc)
        docs.append(doc)
    return docs


DT_ORDER = ["gopher_repetition_filter", "gopher_quality_filter", "c4_quality_filter"]


def ours(docs: list[str], steps: list[tuple[str, dict]], chunk: int = 10_000) -> tuple[float, list[str | None]]:
    """CPU seconds and each document's first reason (``op: reason``) or None, applying the filters as the
    runner does: each filter over a whole chunk of records, then the next over the records it kept."""
    filters = [make(name, **options) for name, options in steps]
    for f in filters:
        f.reason(Record(text=docs[0]))  # load rules and models outside the timing
    reasons: list[str | None] = [None] * len(docs)
    start = time.process_time()
    for lo in range(0, len(docs), chunk):
        alive = [(i, Record(text=docs[i])) for i in range(lo, min(lo + chunk, len(docs)))]
        for f in filters:
            kept = []
            for i, rec in alive:
                why = f.reason(rec)
                if why is None:
                    kept.append((i, rec))
                else:
                    reasons[i] = f"{f.name}: {why}"
            alive = kept
    return time.process_time() - start, reasons


DATATROVE = r"""
import json, sys, time
from datatrove.data import Document
from datatrove.pipeline.filters import C4QualityFilter, GopherQualityFilter, GopherRepetitionFilter
docs = json.load(open(sys.argv[1], encoding="utf-8"))
filters = [GopherRepetitionFilter(), GopherQualityFilter(), C4QualityFilter()]
names = ["gopher_repetition_filter", "gopher_quality_filter", "c4_quality_filter"]
for f in filters:
    f.filter(Document(text=docs[0], id="warm-up"))
reasons = []
start = time.process_time()
for i, text in enumerate(docs):
    doc, why = Document(text=text, id=str(i)), None
    for name, f in zip(names, filters):
        r = f.filter(doc)
        if r is not True:
            why = f"{name}: {r[1] if isinstance(r, tuple) else 'dropped'}"
            break
    reasons.append(why)
print(json.dumps({"seconds": time.process_time() - start, "reasons": reasons}))
"""


def theirs(docs: list[str]) -> tuple[float, list[str | None]] | None:
    if not DATATROVE_PYTHON.exists():
        print(f"datatrove: no {DATATROVE_PYTHON} (set DATATROVE_PYTHON; see the module docstring)")
        return None
    path = ROOT / "benchmarks" / "_work" / "filters_docs.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(docs), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [str(DATATROVE_PYTHON), "-c", DATATROVE, str(path)], capture_output=True, text=True, env=env, check=True
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["seconds"], result["reasons"]


def _load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def _agreement(a: list[str | None], b: list[str | None]) -> float:
    """Share of documents both keep or both drop."""
    return sum((x is None) == (y is None) for x, y in zip(a, b, strict=True)) / len(a)


def speed(n: int, corpus: str) -> None:
    docs = mixed_docs(n) if corpus == "mixed" else c4_docs(n)
    print(f"{corpus}: {n:,} documents, {sum(map(len, docs)) / n:,.0f} characters on average; {_load()}")
    runs = {
        "datamill, preset: datatrove (Gopher repetition, Gopher quality, C4)": [
            (name, {"preset": "datatrove"}) for name in DT_ORDER
        ],
        f"datamill, default set ({', '.join(PRETRAIN_FILTERS)})": [(name, {}) for name in PRETRAIN_FILTERS],
    }
    results = {}
    for label, steps in runs.items():
        seconds, reasons = ours(docs, steps)
        results[label] = (n / seconds, reasons)
        print(f"{label}: {n / seconds:,.0f} docs/s/core, kept {reasons.count(None):,}; {_load()}")
    peer = theirs(docs)
    if peer is None:
        return
    seconds, dt = peer
    print(
        f"datatrove 0.10.1 (GopherRepetition, GopherQuality, C4Quality): {n / seconds:,.0f} docs/s/core, "
        f"kept {dt.count(None):,}; {_load()}"
    )
    for label, (rate, reasons) in results.items():
        same = sum(x == y for x, y in zip(reasons, dt, strict=True)) / n
        print(
            f"{label} / datatrove: {rate * seconds / n:.1f}x; keep/drop agreement {100 * _agreement(reasons, dt):.2f}%"
            f", same filter and reason {100 * same:.2f}%"
        )
    mine = next(iter(results.values()))[1]
    wrong = [(d, x, y) for d, x, y in zip(docs, mine, dt, strict=True) if (x is None) != (y is None)]
    print(f"first disagreements of the preset ({len(wrong)} in all):")
    for doc, x, y in wrong[:10]:
        print(f"  - datamill: {x or 'kept'} | datatrove: {y or 'kept'} | {' '.join(doc.split())[:160]!r}")


SPACY_RULES = r"""
import importlib.metadata, json
import spacy
from spacy.attrs import ORTH
from spacy.pipeline import Sentencizer
from spacy.tokenizer import Tokenizer
from datatrove.utils.text import PUNCTUATION_SET
nlp = spacy.blank("en")
t = nlp.tokenizer
assert t.token_match is None and t.faster_heuristics
bare = Tokenizer(nlp.vocab, rules={}, prefix_search=t.prefix_search, suffix_search=t.suffix_search,
                 infix_finditer=t.infix_finditer, url_match=t.url_match)
rows = [["version", "spacy " + spacy.__version__, "datatrove " + importlib.metadata.version("datatrove")]]
patterns = {"prefix": t.prefix_search, "suffix": t.suffix_search, "infix": t.infix_finditer, "url": t.url_match}
for kind, f in patterns.items():
    assert f.__self__.flags == 32, kind  # re.UNICODE only
    rows.append([kind, f.__self__.pattern])
# datamill matches the prefix pattern at the start only, and searches the suffix pattern in the last
# characters first: check that the patterns allow it, and how many characters that takes
from re import _constants as c, _parser
assert _parser.parse(t.prefix_search.__self__.pattern).data[0] == (c.AT, c.AT_BEGINNING)
suffixes = _parser.parse(t.suffix_search.__self__.pattern).data[0][1][1]
runs = [a for a in suffixes if a.getwidth()[1] >= c.MAXREPEAT]  # unbounded: only a run of one character
assert all(len(a.data) == 3 and a.data[1][1][2][0] == a.data[0] and a.data[2] == (c.AT, c.AT_END) for a in runs)
rows.append(["suffix_window", max(a.getwidth()[1] for a in suffixes if a not in runs)])
rows.append(["sentence_punct", "".join(sorted(Sentencizer.default_punct_chars))])
rows.append(["datatrove_punct", "".join(sorted(PUNCTUATION_SET))])
for chunk, toks in sorted(t.rules.items()):
    if any(c.isspace() for c in chunk):
        continue  # never a chunk: whitespace splits chunks before the rules apply
    rows.append(["special", chunk, [x[ORTH] for x in toks]])
    if t.find_prefix(chunk) or t.find_infix(chunk) or t.find_suffix(chunk):  # what spaCy's matcher re-merges
        rows.append(["merge", [x.text for x in bare(chunk)], [x[ORTH] for x in toks]])
for row in rows:
    print(json.dumps(row))
"""


def spacy_rules() -> None:
    out = subprocess.run([str(DATATROVE_PYTHON), "-c", SPACY_RULES], capture_output=True, text=True, check=True)
    header = [line for line in RULES.read_text(encoding="utf-8").splitlines(keepends=True) if line.startswith("#")]
    RULES.write_text("".join(header) + out.stdout, encoding="utf-8")
    print(f"wrote {RULES} ({len(out.stdout.splitlines())} rules)")


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else "table"
    if cmd == "table":
        table()
    elif cmd == "spacy-rules":
        spacy_rules()
    else:
        speed(int(sys.argv[2]) if len(sys.argv) > 2 else 20_000, sys.argv[3] if len(sys.argv) > 3 else "mixed")
