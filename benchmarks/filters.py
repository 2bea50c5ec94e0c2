"""Cleaning filters: drop-rate tables for docs/cleaning.md, and throughput against datatrove.

    python benchmarks/filters.py table          # markdown: share of every demo file each filter drops
    python benchmarks/filters.py speed [N]      # docs/s/core of the pretrain filter set vs datatrove
                                                # (Gopher quality + repetition + C4) on c4_demo x N (100k)

datatrove is not a datamill dependency: ``speed`` looks for it in benchmarks/_work/venv (created with
``python -m venv benchmarks/_work/venv && benchmarks/_work/venv/bin/pip install datatrove``) and runs it
there in a subprocess on the same documents, one core each.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
LF = DATA / "llamafactory"
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


def c4_docs(n: int) -> list[str]:
    base = [json.loads(line)["text"] for line in (LF / "c4_demo.jsonl").read_text(encoding="utf-8").splitlines()]
    return [base[i % len(base)] for i in range(n)]


def ours(docs: list[str]) -> tuple[float, int]:
    filters = [make(n) for n in PRETRAIN_FILTERS]
    start = time.perf_counter()
    kept = 0
    for d in docs:
        rec = Record(text=d)
        if all(f.reason(rec) is None for f in filters):
            kept += 1
    return time.perf_counter() - start, kept


DATATROVE = r"""
import json, sys, time
from datatrove.data import Document
from datatrove.pipeline.filters import C4QualityFilter, GopherQualityFilter, GopherRepetitionFilter
n = int(sys.argv[1]); path = sys.argv[2]
base = [json.loads(l)["text"] for l in open(path, encoding="utf-8")]
docs = [Document(text=base[i % len(base)], id=str(i)) for i in range(n)]
filters = [GopherRepetitionFilter(), GopherQualityFilter(), C4QualityFilter(filter_no_terminal_punct=False)]
start = time.perf_counter()
kept = 0
for d in docs:
    ok = True
    for f in filters:
        r = f.filter(d)
        if r is not True and (r is False or (isinstance(r, tuple) and r[0] is False)):
            ok = False
            break
    kept += ok
print(json.dumps({"seconds": time.perf_counter() - start, "kept": kept}))
"""


def speed(n: int) -> None:
    docs = c4_docs(n)
    seconds, kept = ours(docs)
    print(f"datamill pretrain filters ({', '.join(PRETRAIN_FILTERS)}): {n / seconds:,.0f} docs/s/core, kept {kept}")
    venv = ROOT / "benchmarks" / "_work" / "venv" / "bin" / "python"
    if not venv.exists():
        print(f"datatrove: not installed in {venv.parent.parent} (see the module docstring)")
        return
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [str(venv), "-c", DATATROVE, str(n), str(LF / "c4_demo.jsonl")],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    theirs = json.loads(out.stdout.strip().splitlines()[-1])
    rate = n / theirs["seconds"]
    print(f"datatrove Gopher repetition + Gopher quality + C4: {rate:,.0f} docs/s/core, kept {theirs['kept']}")
    print(f"ratio datamill/datatrove: {(n / seconds) / rate:.2f}x")


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else "table"
    if cmd == "table":
        table()
    else:
        speed(int(sys.argv[2]) if len(sys.argv) > 2 else 100_000)
