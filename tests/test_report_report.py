"""report.html, the dataset card and the trainer hand-off, on a real run's output directory."""

from __future__ import annotations

import collections
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from conftest import LF

import datamill
from datamill.errors import DatamillError
from datamill.pipeline import recipe as recipes
from datamill.pipeline.runner import Runner
from datamill.report import write_handoff, write_report
from datamill.report.build import report_command

pytest.importorskip("llama_cpp")


@pytest.fixture(scope="module")
def outdir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("report")
    body = {
        "name": "report-demo",
        "description": "English and Chinese alpaca demo data, filtered, deduplicated and split.",
        "seed": 5,
        "chunk_size": 300,
        "workers": 1,
        "inputs": [str(LF / "alpaca_en_demo.json"), str(LF / "alpaca_zh_demo.json")],
        "steps": [
            {"op": "count_tokens"},
            {"op": "language_filter", "languages": ["zh", "en"], "min_score": 0.3},  # meta.lang, lang_score
            {"op": "length_filter", "part": "answer", "unit": "words", "min": 5},
            {"op": "cutoff_len", "cutoff_len": 512},
            {"op": "exact_dedup", "part": "prompt"},
            {"op": "split", "fractions": {"train": 0.9, "validation": 0.05, "test": 0.05}},
        ],
        "output": {"path": str(tmp / "out")},
    }
    path = tmp / "recipe.yaml"
    path.write_text(yaml.safe_dump(body, allow_unicode=True), encoding="utf-8")
    Runner(recipes.load(path)).run()
    return tmp / "out"


class Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def parse(html: str) -> list[tuple[str, dict[str, str]]]:
    p = Collect()
    p.feed(html)
    return p.tags


def test_report_numbers_match_stats_json(outdir):
    html_path, card_path = write_report(outdir)
    html = html_path.read_text(encoding="utf-8")
    stats = json.loads((outdir / "stats.json").read_text(encoding="utf-8"))
    tags = parse(html)
    # summary cards
    for key in ("input", "kept", "dropped", "quarantined", "generated"):
        assert re.search(rf'data-stat="{key}">{stats[key]:,}<', html), key
    # funnel: one row per step with its in / out / dropped
    rows = {int(a["data-step"]): a for t, a in tags if t == "tr" and "data-in" in a}
    assert len(rows) == len(stats["steps"])
    for st in stats["steps"]:
        row = rows[st["step"]]
        assert (int(row["data-in"]), int(row["data-out"])) == (st["in"], st["out"])
        assert int(row["data-dropped"]) == sum(st["dropped"].values())
    # the wall time of every phase and its cores, as stats.json has them
    phases = {a["data-phase"] for t, a in tags if t == "tr" and "data-phase" in a}
    assert stats["phases"] and phases == {p["phase"] for p in stats["phases"]}
    for p in stats["phases"]:
        assert f"<td class=n>{p['seconds']:,.1f}</td><td class=n>{p['cores']}</td>" in html
    # every drop reason with its count, and real examples of the dropped records
    details = [a for t, a in tags if t == "details"]
    expected = {(st["step"], r): n for st in stats["steps"] for r, n in st["dropped"].items()}
    assert {(int(a["data-step"]), a["data-reason"]): int(a["data-count"]) for a in details} == expected
    assert ("3", "longer than cutoff_len 512 tokens") in {(a["data-step"], a["data-reason"]) for a in details}
    dropped_short = [json.loads(line) for line in (outdir / "dropped.jsonl").open(encoding="utf-8")]
    example = next(d for d in dropped_short if d["reason"] == "answer shorter than 5 words")
    assert example["record"]["messages"][-1]["content"][:20] in html
    # split sizes as the split step counted them
    split = next(st for st in stats["steps"] if st["op"] == "split")["counters"]
    for name in ("train", "validation", "test"):
        assert re.search(rf'<tr data-split="{name}"><td>{name}</td><td class=n>{split["split:" + name]:,}</td>', html)
    # self-contained: no scripts, no external resources, charts inline
    assert not any(t in ("script", "link", "iframe", "img") for t, _ in tags)
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", html)
    assert html.count("<svg") >= 6
    assert "Lengths (tokens)" in html
    assert "<h3>en: root verbs" in html and "<h3>zh: root verbs" in html
    # language from meta.lang (language_filter), and its score's distribution
    kept = [json.loads(line) for f in outdir.glob("data-*") for line in f.open(encoding="utf-8")]
    zh = sum(r["meta"]["lang"] == "zh" for r in kept)
    assert f"<title>zh: {zh:,}</title>" in html
    assert "<h3>lang_score</h3>" in html
    # the source mix names the input files (not the output file the report read them from)
    assert "<title>alpaca_en_demo.json: " in html and "<title>alpaca_zh_demo.json: " in html


def test_dataset_card_from_the_lock_file(outdir):
    write_report(outdir, license="apache-2.0")
    card = (outdir / "README.md").read_text(encoding="utf-8")
    front = yaml.safe_load(card.split("---")[1])
    assert front["license"] == "apache-2.0" and set(front["language"]) == {"en", "zh"}
    assert front["pretty_name"] == "report-demo"
    stats = json.loads((outdir / "stats.json").read_text(encoding="utf-8"))
    assert f"| {stats['input']:,} | 0 | {stats['kept']:,} | {stats['dropped']:,} | 0 |" in card
    ops = re.findall(r"^\d+\. `(\w+)`", card, flags=re.M)
    assert ops == ["count_tokens", "language_filter", "length_filter", "cutoff_len", "exact_dedup", "split"]
    assert "English and Chinese alpaca demo data" in card
    assert "alpaca_zh_demo.json" in card


def test_report_command_and_missing_outdir(outdir, tmp_path):
    import typer
    from typer.testing import CliRunner

    app = typer.Typer()
    app.command()(report_command)
    ok = CliRunner().invoke(app, [str(outdir), "--tokenizer", "embedded"])
    assert ok.exit_code == 0 and "report.html" in ok.output
    bad = CliRunner().invoke(app, [str(tmp_path)])
    assert bad.exit_code == 1 and "no stats.json" in bad.output
    with pytest.raises(DatamillError, match="no stats.json"):
        write_report(tmp_path)


def test_handoff_sft_dpo_kto(tmp_path):
    sft_dir = tmp_path / "sft"
    sft_dir.mkdir()
    datamill.convert(LF / "alpaca_zh_demo.json", sft_dir / "sft.jsonl", "sharegpt")
    lf_path, trl_path = write_handoff(sft_dir, template="qwen", cutoff_len=1024)
    cfg = yaml.safe_load(lf_path.read_text(encoding="utf-8"))
    info = json.loads((sft_dir / "dataset_info.json").read_text(encoding="utf-8"))
    assert cfg["stage"] == "sft" and cfg["finetuning_type"] == "lora" and cfg["cutoff_len"] == 1024
    assert cfg["dataset"] == "sft" and info["sft"]["file_name"] == "sft.jsonl"
    assert Path(cfg["dataset_dir"]) == sft_dir.resolve()
    compile(trl_path.read_text(encoding="utf-8"), str(trl_path), "exec")
    assert "SFTTrainer" in trl_path.read_text(encoding="utf-8")
    # a preference dataset written for LLaMA-Factory gets a DPO config
    dpo_dir = tmp_path / "dpo"
    dpo_dir.mkdir()
    datamill.convert(LF / "dpo_en_demo.json", dpo_dir / "pairs.json", "sharegpt")
    lf_path, trl_path = write_handoff(dpo_dir)
    cfg = yaml.safe_load(lf_path.read_text(encoding="utf-8"))
    assert cfg["stage"] == "dpo" and cfg["pref_beta"] == 0.1 and cfg["dataset"] == "pairs"
    assert "DPOTrainer" in trl_path.read_text(encoding="utf-8")
    kto_dir = tmp_path / "kto"
    kto_dir.mkdir()
    datamill.convert(LF / "kto_en_demo.json", kto_dir / "kto.json", "alpaca")
    assert yaml.safe_load(write_handoff(kto_dir)[0].read_text(encoding="utf-8"))["stage"] == "kto"
    with pytest.raises(DatamillError, match="no dataset_info.json"):
        write_handoff(tmp_path)
    import typer
    from typer.testing import CliRunner

    from datamill.report import handoff_command

    app = typer.Typer()
    app.command()(handoff_command)
    ok = CliRunner().invoke(app, [str(kto_dir), "--stage", "sft", "--model", "Qwen/Qwen2.5-7B-Instruct"])
    assert ok.exit_code == 0, ok.output
    cfg = yaml.safe_load((kto_dir / "train_llamafactory.yaml").read_text("utf-8"))
    assert cfg["stage"] == "sft" and cfg["model_name_or_path"] == "Qwen/Qwen2.5-7B-Instruct"
    assert CliRunner().invoke(app, [str(kto_dir), "--stage", "ppo"]).exit_code != 0
    assert CliRunner().invoke(app, [str(tmp_path)]).exit_code == 1


def test_instruction_types_en_and_zh():
    from datamill.report.instruction_types import chinese, english, instruction_types

    assert english("Write a short story about a robot.") == ("write", "story")
    assert english("Please give me three examples of renewable energy.") == ("give", "examples")
    assert english("Given a sentence, rewrite it in the passive voice.") == ("rewrite", "passive")
    assert english("What is the capital of France?") == ("(question)", "")
    pytest.importorskip("jieba")
    assert chinese("请写一篇关于人工智能的文章") == ("写", "人工智能")
    assert chinese("什么是机器学习？") == ("(问题)", "")
    en = json.loads((LF / "alpaca_en_demo.json").read_text("utf-8"))
    zh = json.loads((LF / "alpaca_zh_demo.json").read_text("utf-8"))
    types = instruction_types([("en", d["instruction"]) for d in en] + [("zh", d["instruction"]) for d in zh])
    verbs = {lang: collections.Counter() for lang in types}
    for lang, pairs in types.items():
        for (verb, _), n in pairs.items():
            verbs[lang][verb] += n
    # measured: en generate 98, (question) 89, create 78, describe 77; zh (问题) 123, 写 59, 生成 55
    assert {v for v, _ in verbs["en"].most_common(5)} >= {"generate", "create", "describe"}
    assert {v for v, _ in verbs["zh"].most_common(4)} >= {"写", "生成"}
    assert types["en"][("rewrite", "sentence")] >= 10
