"""decontaminate: GSM8K test items mixed into alpaca_en_demo — verbatim, paraphrased by whitespace,
punctuation and number format, and embedded in longer instructions — are caught; nothing else is.
(Semantic mode, the leakage report and C-Eval-style benchmarks: test_dedup_decontaminate_semantic.py
and test_dedup_decontaminate_zh.py.)"""

from __future__ import annotations

import gzip
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import DATA, LF, ROOT
from typer.testing import CliRunner

import datamill
from datamill import cli, ops
from datamill.dedup import benchmarks
from datamill.ops.base import OpContext
from datamill.pipeline import recipe as recipes
from datamill.pipeline.runner import Runner
from datamill.record import Message, Record
from datamill.results import Drop

GSM = DATA / "gsm8k" / "test.jsonl"


def make(tmp_path: Path, **options):
    cls = ops.get("decontaminate")
    return cls(cls.Config.model_validate({"benchmarks": [str(GSM)], **options}), OpContext(0, 0, tmp_path / "w"))


def run(op, records: list[Record]) -> tuple[dict[str, str | None], list[Record]]:
    """Record id → drop reason (None: kept), from the step run over copies of ``records`` (it sets
    meta.contamination on what it sees, and the fixtures are shared), and those copies afterwards."""
    copies = [Record.from_dict(r.to_dict()) for r in records]
    out = {}
    for item in op.check(copies):
        rec = item.record if isinstance(item, Drop) else item
        out[rec.id] = item.reason if isinstance(item, Drop) else None
    return out, copies


def reasons(op, records: list[Record]) -> dict[str, str | None]:
    return run(op, records)[0]


def sft(q: str, a: str, rid: str) -> Record:
    rec = Record(messages=[Message("user", q), Message("assistant", a)])
    rec.id = rid
    return rec


def gsm_items() -> list[dict]:
    return [json.loads(x) for x in GSM.read_text(encoding="utf-8").splitlines()]


def paraphrase(q: str, rng: random.Random) -> str:
    """Whitespace, punctuation and number-format changes only."""
    q = re.sub(r"\b(\d)(\d{3})\b", r"\1,\2", q)  # 1200 → 1,200
    q = re.sub(r"\$(\d+)\b(?![.,]\d)", r"$\1.00", q)  # $20 → $20.00
    q = q.replace(", ", " , ").replace("?", " ?!")
    return re.sub(" ", lambda _: rng.choice([" ", "  ", "\n", " \t"]), q)


WRAPPERS = [
    "Here is a math word problem from my homework. {q} Please explain each step and give the final number.",
    "You are a helpful tutor. A student asks the following question and wants a detailed answer:\n\n{q}\n\n"
    "Answer in a friendly tone.",
    "请用中文回答下面的数学题，并给出详细步骤：{q}",
]


@pytest.fixture(scope="module")
def mixed():
    rng = random.Random(7)
    alpaca = [r for r in datamill.read(LF / "alpaca_en_demo.json") if isinstance(r, Record)]
    items = gsm_items()
    chosen = rng.sample(range(len(items)), 60)
    planted: dict[str, tuple[str, int]] = {}
    stream = list(alpaca)
    for k, i in enumerate(chosen):
        q = items[i]["question"]
        kind = ["verbatim", "paraphrase", "embedded"][k % 3]
        if kind == "verbatim":
            rec = sft(q, "Let me solve it.", f"verbatim-{i}")
        elif kind == "paraphrase":
            rec = sft(paraphrase(q, rng), "Let me solve it.", f"paraphrase-{i}")
        else:
            rec = sft(rng.choice(WRAPPERS).format(q=q), "Sure, step by step.", f"embedded-{i}")
        planted[rec.id] = (kind, i)
        stream.insert(rng.randrange(len(stream) + 1), rec)
    # the answer leaks too: an alpaca-style record whose output is a GSM8K solution
    i = chosen[0] + 1
    leak = sft("Solve the problem.", items[i]["answer"], f"answer-{i}")
    planted[leak.id] = ("answer", i)
    stream.insert(100, leak)
    return alpaca, stream, planted


def test_every_planted_item_is_caught_and_nothing_else(tmp_path, mixed):
    alpaca, stream, planted = mixed
    drops, seen = run(make(tmp_path), stream)
    caught = {rid for rid, reason in drops.items() if reason is not None}
    assert caught == set(planted)  # verbatim, paraphrased, embedded and the leaked answer; no alpaca record
    for rid, (kind, i) in planted.items():
        assert drops[rid] == f"benchmark overlap: test.jsonl#{i}", (kind, rid)
    rec = next(r for r in seen if r.id.startswith("embedded-"))
    assert rec.meta["contamination"]["benchmark"] == "test.jsonl"
    assert rec.meta["contamination"]["mode"] == "ngram" and "13-word" in rec.meta["contamination"]["overlap"]
    assert len(alpaca) == len(stream) - len(planted)


def test_flag_keeps_the_record_and_marks_it(tmp_path, mixed):
    _, stream, planted = mixed
    drops, seen = run(make(tmp_path, action="flag"), stream)
    assert set(drops.values()) == {None}
    flagged = {r.id for r in seen if "contamination" in r.meta}
    assert flagged == set(planted)


def test_exact_mode_catches_normalized_copies_but_not_embedded_ones(tmp_path, mixed):
    _, stream, planted = mixed
    caught = {rid for rid, reason in reasons(make(tmp_path, mode="exact"), stream).items() if reason is not None}
    verbatim = {rid for rid, (kind, _) in planted.items() if kind in ("verbatim", "paraphrase", "answer")}
    assert caught == verbatim


def test_min_overlap_and_n_are_honoured(tmp_path):
    q = gsm_items()[3]["question"]
    words = q.split()
    fragment = " ".join(words[:14])  # exactly two 13-grams of the item
    rec = sft(f"Totally unrelated preamble. {fragment} and then something else entirely.", "ok", "x")
    assert reasons(make(tmp_path), [rec]) == {"x": "benchmark overlap: test.jsonl#3"}
    assert reasons(make(tmp_path, min_overlap=3), [rec]) == {"x": None}
    assert reasons(make(tmp_path, n=20), [rec]) == {"x": None}


def test_chinese_benchmark_uses_character_ngrams(tmp_path):
    zh = [r for r in datamill.read(LF / "alpaca_zh_demo.json") if isinstance(r, Record)]
    bench = tmp_path / "zh_bench.jsonl"
    items = [r.part("answer") for r in zh[:30] if len(r.part("answer")) > 80][:10]
    bench.write_text("\n".join(json.dumps({"question": t}, ensure_ascii=False) for t in items), encoding="utf-8")
    cls = ops.get("decontaminate")
    op = cls(cls.Config(benchmarks=[str(bench)]), OpContext(0, 0, tmp_path / "w"))
    inside = sft("请总结：" + items[0][10:60] + "。谢谢！", "好的", "inside")  # a 50-character excerpt
    drops = reasons(op, [inside, *zh[30:]])
    assert drops.pop("inside") == "benchmark overlap: zh_bench.jsonl#0"
    assert set(drops.values()) == {None}


def test_missing_benchmark_is_a_clear_error(tmp_path):
    cls = ops.get("decontaminate")
    op = cls(cls.Config(benchmarks=[str(tmp_path / "nope.jsonl")]), OpContext(0, 0, tmp_path / "w"))
    with pytest.raises(datamill.errors.DatamillError, match="nope.jsonl does not exist"):
        reasons(op, [sft("q", "a", "x")])


def reword(q: str) -> str:
    """A paraphrase that breaks every 13-word n-gram: every eighth word replaced."""
    words = q.split()
    return " ".join("several" if i % 8 == 5 else w for i, w in enumerate(words))


def test_fuzzy_mode_catches_rewordings_that_ngram_mode_misses(tmp_path, mixed):
    alpaca, _, _ = mixed
    rng = random.Random(11)
    items = gsm_items()
    chosen = [i for i in rng.sample(range(len(items)), 80) if len(items[i]["question"].split()) >= 16][:40]
    planted = [sft(reword(items[i]["question"]), "ok", f"reworded-{i}") for i in chosen[:20]]
    planted += [
        sft(rng.choice(WRAPPERS).format(q=reword(items[i]["question"])), "ok", f"wrapped-{i}") for i in chosen[20:]
    ]
    assert set(reasons(make(tmp_path / "n"), planted).values()) == {None}
    fuzzy, seen = run(make(tmp_path / "f", mode="fuzzy"), planted + alpaca)
    assert all(fuzzy[r.id] == f"benchmark overlap: test.jsonl#{r.id.split('-')[1]}" for r in planted), fuzzy
    assert "3-word n-grams" in seen[0].meta["contamination"]["overlap"]
    assert [r.id for r in alpaca if fuzzy[r.id] is not None] == []  # no false positive on alpaca


# ---- on every core: a filter the chunk workers run -------------------------------------------------


def chunked_recipe(tmp_path: Path, data: Path, out: Path, workers: int) -> Path:
    body = {
        "name": "decon-chunks",
        "workers": workers,
        "chunk_size": 100,  # 1,060 records: 11 chunks
        "inputs": [{"path": str(data), "format": "alpaca"}],
        "steps": [{"op": "decontaminate", "benchmarks": [str(GSM)], "mode": ["ngram", "fuzzy"]}],
        "output": {"path": str(out), "format": "alpaca"},
    }
    path = tmp_path / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(body), encoding="utf-8")
    return path


def cli_run(recipe: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "datamill", "run", str(recipe)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=ROOT,
        timeout=300,
    )


def test_on_two_workers_leakage_is_in_stream_order_and_kill_9_resumes_it_byte_for_byte(tmp_path, mixed):
    """The mixed stream in 11 chunks: each chunk's worker writes its own part of leakage.jsonl, the runner
    joins them in chunk order — the same bytes on 1 worker, on 2, and after a SIGKILL and a resume that
    redoes the unfinished chunks (whose stale parts it rewrites); the benchmark is counted once."""
    _, stream, planted = mixed
    data = tmp_path / "in.jsonl"
    rows = [{"instruction": r.messages[0].content, "output": r.messages[-1].content} for r in stream]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    outputs = ("leakage.jsonl", "dropped.jsonl", "data-00000.jsonl", "lineage.jsonl")
    one = tmp_path / "one"
    Runner(recipes.load(chunked_recipe(tmp_path, data, one, workers=1))).run()
    expected = {name: (one / name).read_bytes() for name in outputs}
    leaks = [json.loads(x) for x in expected["leakage.jsonl"].splitlines()]
    dropped = [json.loads(x)["id"] for x in expected["dropped.jsonl"].splitlines()]
    assert len(dropped) == len(planted) and list(dict.fromkeys(row["id"] for row in leaks)) == dropped
    step = json.loads((one / "stats.json").read_text(encoding="utf-8"))["steps"][0]
    assert step["counters"]["benchmark items: test.jsonl"] == 1319  # built per worker, said once
    assert sum(n for k, n in step["counters"].items() if k.startswith("leaked")) == len(leaks)

    two = tmp_path / "two"
    done = cli_run(chunked_recipe(tmp_path, data, two, workers=2))
    assert done.returncode == 0, done.stderr + done.stdout
    assert {name: (two / name).read_bytes() for name in outputs} == expected

    killed = tmp_path / "killed"
    recipe = chunked_recipe(tmp_path, data, killed, workers=2)
    crashed = cli_run(recipe, DATAMILL_TEST_KILL_AFTER="5")
    assert crashed.returncode == -9, crashed.stderr
    work = killed / ".datamill-work"
    parts = work / "step-000" / "publish" / "leakage"
    unfinished = [i for i in range(11) if not (work / "stage-00" / f"chunk-{i:06d}.stats.json").exists()]
    assert unfinished
    for i in unfinished:  # a part left by a chunk that did not finish is redone, not trusted
        (parts / f"chunk-{i:06d}.jsonl").write_text('{"stale": true}\n', encoding="utf-8")
        # as is an output piece its worker had written when the kill came (a work file, in no manifest)
        (work / "stage-00" / f"chunk-{i:06d}.out-0.jsonl").write_text('{"stale": true}\n', encoding="utf-8")
    resumed = cli_run(recipe)
    assert resumed.returncode == 0 and "resumed" in resumed.stdout, resumed.stderr + resumed.stdout
    assert {name: (killed / name).read_bytes() for name in outputs} == expected


# ---- the shipped default, missing files, the recipes -----------------------------------------------


def test_builtin_gsm8k_is_the_original_test_set():
    (bench,) = benchmarks.resolve("builtin:gsm8k")
    assert bench.shipped and bench.label == "gsm8k"
    assert gzip.decompress(bench.path.read_bytes()) == GSM.read_bytes()  # 1,319 items, byte for byte
    assert (bench.path.parent / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
    with pytest.raises(datamill.errors.DatamillError, match="shipped: builtin:gsm8k"):
        benchmarks.resolve("builtin:gsm8")


def test_builtin_gsm8k_catches_a_test_question(tmp_path):
    q = gsm_items()[42]["question"]
    drops = reasons(make(tmp_path, benchmarks=["builtin:gsm8k"]), [sft(f"New problem: {q}", "ok", "x")])
    assert drops == {"x": "benchmark overlap: gsm8k#42"}


def test_comma_separated_lists_from_one_variable(tmp_path):
    c = ops.get("decontaminate").Config.model_validate({"benchmarks": "a.jsonl, b.csv", "mode": "ngram,semantic"})
    assert c.benchmarks == ["a.jsonl", "b.csv"] and c.mode == ["ngram", "semantic"]
    with pytest.raises(ValueError, match="mode"):
        ops.get("decontaminate").Config.model_validate({"benchmarks": "a.jsonl", "mode": "ngram,typo"})


def recipe(tmp_path: Path, benchmark: str) -> Path:
    body = {
        "name": "decon",
        "workers": 1,
        "inputs": [str(LF / "alpaca_en_demo.json")],
        "steps": [{"op": "limit", "n": 20}, {"op": "decontaminate", "benchmarks": [benchmark]}],
        "output": {"path": str(tmp_path / "o"), "format": "alpaca", "report": True},
    }
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(body), encoding="utf-8")
    return path


def test_a_default_benchmark_that_is_not_installed_is_skipped_and_said(tmp_path, monkeypatch):
    monkeypatch.setattr(benchmarks, "SHIPPED_DIR", tmp_path / "not-installed")
    result = CliRunner().invoke(cli.app, ["run", str(recipe(tmp_path, "builtin:gsm8k"))])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())  # as printed, whatever the terminal width
    assert "step 1 decontaminate: 1 benchmark skipped: builtin:gsm8k is not installed with this datamill" in said
    stats = json.loads((tmp_path / "o" / "stats.json").read_text(encoding="utf-8"))
    assert stats["kept"] == 20
    html = (tmp_path / "o" / "report.html").read_text(encoding="utf-8")
    assert "skipped</b> builtin:gsm8k is not installed" in html
    assert (tmp_path / "o" / "leakage.jsonl").read_bytes() == b""


def test_a_named_benchmark_that_is_missing_fails_the_run(tmp_path):
    result = CliRunner().invoke(cli.app, ["run", str(recipe(tmp_path, str(tmp_path / "ceval_val.csv")))])
    assert result.exit_code == 1
    assert "ceval_val.csv does not exist" in " ".join(result.output.split())


def synthesis_recipes() -> dict[str, recipes.Recipe]:
    """Every shipped recipe with a step that makes records or calls an LLM (its steps: a shipped sample stands
    in for inputs that only ../shared/data has, as on a public clone)."""
    found = {}
    sample = [str(ROOT / "examples" / "alpaca_en_sample.json")]
    for path in sorted((ROOT / "recipes").glob("*.yaml")):
        try:
            r = recipes.load(path)
        except recipes.RecipeError as e:
            if "no readable file among the inputs" not in str(e):
                raise
            r = recipes.load(path, inputs=sample)
        if any(writes_text(s) for s in r.steps):
            found[path.stem] = r
    return found


def writes_text(step) -> bool:
    return step.kind == "generator" or "llm" in type(step.config).model_fields


def test_every_synthesis_recipe_ends_with_decontamination():
    """After the last step that writes text, a decontaminate step with the shipped defaults; after it
    only steps that choose records (select, split, shuffle …)."""
    found = synthesis_recipes()
    assert set(found) >= {
        "self-instruct", "evol-instruct", "doc-qa", "sft-from-docs", "backtranslate", "flan", "multiturn",
        "constraints", "dpo-from-answers", "dpo-teacher-student", "reasoning-distill",
    }  # fmt: skip
    for name, r in found.items():
        ops_ = [s.op for s in r.steps]
        at = ops_.index("decontaminate") if "decontaminate" in ops_ else -1
        assert at > max(i for i, s in enumerate(r.steps) if writes_text(s)), name
        assert not any(writes_text(s) or s.kind == "mapper" for s in r.steps[at + 1 :]), name
        step = r.steps[at]
        assert step.config.benchmarks == ["builtin:gsm8k"], name
        assert step.config.mode == ["ngram", "fuzzy"], name
        raw = r.raw["steps"][at]
        assert raw["benchmarks"] == ["${DATAMILL_BENCHMARKS:-builtin:gsm8k}"], name
        assert raw["mode"] == "${DATAMILL_DECONTAMINATE_MODES:-ngram,fuzzy}", name


def test_the_recipe_variables_point_decontamination_elsewhere(monkeypatch, tmp_path):
    monkeypatch.setenv("DATAMILL_BENCHMARKS", f"{GSM},{tmp_path / 'cmmlu.csv'}")
    monkeypatch.setenv("DATAMILL_DECONTAMINATE_MODES", "ngram,fuzzy,semantic")
    last = recipes.load(ROOT / "recipes" / "self-instruct.yaml").steps[-1]
    assert last.config.benchmarks == [str(GSM), str(tmp_path / "cmmlu.csv")]
    assert last.config.mode == ["ngram", "fuzzy", "semantic"]


def test_a_rerun_without_the_step_leaves_no_stale_leakage_or_report(tmp_path):
    """OUTDIR never mixes two runs: leakage.jsonl and the report of a first run go when a second run into
    the same folder does not write them; a file datamill did not write stays."""
    assert CliRunner().invoke(cli.app, ["run", str(recipe(tmp_path, "builtin:gsm8k"))]).exit_code == 0
    out = tmp_path / "o"
    assert {"leakage.jsonl", "report.html", "README.md"} <= {p.name for p in out.iterdir()}
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    body = yaml.safe_load((tmp_path / "r.yaml").read_text(encoding="utf-8"))
    body["steps"] = [s for s in body["steps"] if s["op"] != "decontaminate"]
    body["output"]["report"] = False
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(body), encoding="utf-8")
    result = CliRunner().invoke(cli.app, ["run", str(tmp_path / "r.yaml")])
    assert result.exit_code == 0, result.output
    names = {p.name for p in out.iterdir()}
    assert not names & {"leakage.jsonl", "report.html", "README.md"}
    assert {"notes.txt", "data-00000.jsonl", "stats.json", "lineage.jsonl"} <= names
