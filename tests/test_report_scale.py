"""The report at scale: exact counts over every record, token lengths from meta.tokens or from a
seeded sample (stated in the report), the source mix from the run's own records when the output
format keeps no meta, and progress for the report phase."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from conftest import LF

from datamill.pipeline import recipe as recipes
from datamill.pipeline.runner import Runner
from datamill.report import write_report
from datamill.report.build import collect


def _run(tmp: Path, steps: list[dict], output: dict, progress=None) -> Path:
    body = {
        "name": "scale-demo",
        "seed": 3,
        "chunk_size": 200,
        "workers": 1,
        "inputs": [str(LF / "alpaca_en_demo.json"), str(LF / "alpaca_zh_demo.json")],
        "steps": steps,
        "output": {"path": str(tmp / "out"), **output},
    }
    path = tmp / "recipe.yaml"
    path.write_text(yaml.safe_dump(body), encoding="utf-8")
    Runner(recipes.load(path), progress=progress).run()
    return tmp / "out"


@pytest.fixture(scope="module")
def sharegpt_run(tmp_path_factory):
    """sharegpt jsonl (no meta in the output), no count_tokens, report written by the run."""
    events: list[tuple[str, int, int | None]] = []
    out = _run(
        tmp_path_factory.mktemp("sharegpt"),
        [
            {"op": "length_filter", "part": "answer", "unit": "words", "min": 3},
            {"op": "exact_dedup"},
            {"op": "shuffle"},
        ],
        {"format": "sharegpt", "container": "jsonl", "report": True},
        progress=lambda label, done, total: events.append((label, done, total)),
    )
    return out, events


def test_source_mix_names_the_inputs_when_the_output_keeps_no_meta(sharegpt_run):
    out, _ = sharegpt_run
    stats = json.loads((out / "stats.json").read_text(encoding="utf-8"))
    first = json.loads((out / "data-00000.jsonl").open(encoding="utf-8").readline())
    assert "meta" not in first  # the output itself cannot tell the sources
    html = (out / "report.html").read_text(encoding="utf-8")
    mix = {
        m[0]: int(m[1].replace(",", "")) for m in re.findall(r"<title>(alpaca_\w+_demo\.json): ([\d,]+)</title>", html)
    }
    assert set(mix) == {"alpaca_en_demo.json", "alpaca_zh_demo.json"}
    assert sum(mix.values()) == stats["kept"]
    assert "data-00000.jsonl" not in re.findall(r"<title>([^<:]+):", html)


def test_write_and_report_phases_show_progress(sharegpt_run):
    """The report's pass runs while the shards are written; its progress ends once they are."""
    out, events = sharegpt_run
    kept = json.loads((out / "stats.json").read_text(encoding="utf-8"))["kept"]
    write = [e for e in events if e[0] == "write"]
    assert write and write[0] == ("write", 0, kept) and write[-1] == ("write", kept, kept)
    report = [e for e in events if e[0] == "report"]
    assert report and report[-1] == ("report", kept, kept)
    assert events.index(write[-1]) < events.index(report[-1])
    lengths = [e for e in events if e[0] == "report: token lengths"]
    assert lengths and lengths[-1][1] == lengths[-1][2] > 0  # every record measured: fewer than the sample


def test_a_later_report_pass_shows_progress(sharegpt_run):
    out, _ = sharegpt_run
    kept = json.loads((out / "stats.json").read_text(encoding="utf-8"))["kept"]
    events: list = []
    collect(out, sample=50, progress=lambda label, done, total: events.append((label, done, total)))
    report = [e for e in events if e[0] == "report"]
    assert report and report[0][1] == 0 and report[-1] == ("report", kept, kept)


def test_sampled_lengths_are_stated_and_exact_counts_stay_exact(sharegpt_run, tmp_path):
    out, _ = sharegpt_run
    kept = json.loads((out / "stats.json").read_text(encoding="utf-8"))["kept"]
    full = collect(out, sample=10**9)
    data = collect(out, sample=50, seed=7)
    assert len(data.response_len) == len(data.prompt_len) == data.length_sample == 50
    assert full.length_sample == 0 and len(full.response_len) == kept
    # exact over every record, whatever the sample
    assert data.records == full.records == kept
    assert data.kinds == full.kinds and data.langs == full.langs and data.turns == full.turns
    assert sum(data.langs.values()) == kept
    assert data.instruction_sample == len(data.instructions) == 50  # fewer than INSTRUCTION_SAMPLE
    # seeded: the same sample again
    assert collect(out, sample=50, seed=7).response_len == data.response_len
    write_report(out, sample=50)
    html = (out / "report.html").read_text(encoding="utf-8")
    note = re.search(r'data-sample="lengths" data-n="(\d+)" data-of="(\d+)"', html)
    assert note and (int(note[1]), int(note[2])) == (50, kept)
    assert f"Token lengths from a seeded uniform sample of 50 of {kept:,} records (any share ±" in html
    card = (out / "README.md").read_text(encoding="utf-8")
    assert f"sample of 50 of {kept:,} records" in card
    write_report(out, sample=10**9)  # every record measured: no sample note
    assert 'data-sample="lengths"' not in (out / "report.html").read_text(encoding="utf-8")


def test_meta_tokens_give_exact_lengths_without_sampling(tmp_path):
    out = _run(tmp_path, [{"op": "count_tokens"}, {"op": "exact_dedup"}], {"report": True})
    kept = [json.loads(line) for line in (out / "data-00000.jsonl").open(encoding="utf-8")]
    data = collect(out, sample=10)
    assert data.length_sample == 0 and data.length_unit == "tokens"
    assert sorted(data.response_len) == sorted(r["meta"]["tokens"]["response"] for r in kept)
    assert data.instruction_sample == 10  # instruction types still come from the sample
    assert 'data-sample="lengths"' not in (out / "report.html").read_text(encoding="utf-8")
