"""The starter operators on real records, and the `datamill ops` listing."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import LF, same_run_without_precompute
from typer.testing import CliRunner

import datamill
from datamill import ops
from datamill.clean.length import count_words
from datamill.cli import app
from datamill.ops.base import OpContext
from datamill.record import Message, Record
from datamill.results import Drop


def make(name: str, tmp_path: Path | None = None, seed: int = 0, **options):
    cls = ops.get(name)
    return cls(cls.Config.model_validate(options), OpContext(seed=seed, step=0, workdir=(tmp_path or Path(".")) / "w"))


def demo(name: str) -> list[Record]:
    return [r for r in datamill.read(LF / name) if isinstance(r, Record)]


def sft(q: str, a: str) -> Record:
    rec = Record(messages=[Message("user", q), Message("assistant", a)])
    rec.id = rec.compute_id()
    return rec


def test_count_words_counts_cjk_characters_and_latin_words():
    assert count_words("Hello, world!") == 2
    assert count_words("你好世界") == 4
    assert count_words("用 Python 写代码") == 5


def test_count_words_matches_finding_every_word():
    """The one-pass count equals the definition: every CJK character, and every other non-space run."""
    import random
    import re

    word = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]|[^\s\u3400-\u9fff\uf900-\ufaff]+")
    alphabet = list("aZ9, \n\t\u3000\xa0你好\u3400\u9fff\uf900éー🙂")
    rng = random.Random(7)
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        assert count_words(text) == len(word.findall(text)), repr(text)


def test_length_filter_in_words_skips_counting_only_where_the_length_decides():
    f = make("length_filter", unit="words", min=3, max=4)
    assert f.reason(Record(text="你好")) == "all shorter than 3 words"  # 2 characters: at most 2 words
    assert f.reason(Record(text="one two")) == "all shorter than 3 words"  # 7 characters, still counted
    assert f.reason(Record(text="一二三四")) is None
    assert f.reason(Record(text="一二三四五")) == "all longer than 4 words"
    assert make("length_filter", unit="words", max=4).reason(Record(text="a b c d e")) == "all longer than 4 words"


def test_length_filter_bounds_and_reasons():
    f = make("length_filter", part="answer", unit="words", min=2, max=5)
    assert f.reason(sft("q", "好的")) is None
    assert f.reason(sft("q", "好")) == "answer shorter than 2 words"
    assert f.reason(sft("q", "one two three four five six")) == "answer longer than 5 words"
    assert make("length_filter", part="text", min=10).reason(Record(text="short")) == "text shorter than 10 chars"


def test_fill_placeholders_on_identity_json():
    recs = demo("identity.json")
    assert sum("{{name}}" in r.part("all") for r in recs) > 70
    op = make("fill_placeholders", values={"name": "小助手", "author": "Datamill"})
    filled = [op.map(r) for r in recs]
    assert not any("{{" in r.part("all") for r in filled)
    assert any("小助手" in r.part("answer") and "Datamill" in r.part("answer") for r in filled)
    keep = make("fill_placeholders", values={"name": "x"}).map(sft("{{unknown}}", "{{ name }}"))
    assert keep.messages[0].content == "{{unknown}}" and keep.messages[1].content == "x"


def test_set_system_modes():
    rec = sft("q", "a")
    assert make("set_system", prompt="S").map(rec).system == "S"
    assert make("set_system", prompt="T", mode="if_missing").map(rec).system == "S"
    assert make("set_system", mode="remove").map(rec).system is None
    assert make("set_system", prompt="S").map(Record(text="doc")).system is None


def test_sample_is_deterministic_and_close_to_the_fraction():
    recs = demo("alpaca_en_demo.json")
    a = [make("sample", seed=1, fraction=0.3).reason(r) is None for r in recs]
    b = [make("sample", seed=1, fraction=0.3).reason(r) is None for r in reversed(recs)]
    assert a == list(reversed(b))
    assert 0.25 < sum(a) / len(a) < 0.35
    other = [make("sample", seed=2, fraction=0.3).reason(r) is None for r in recs]
    assert other != a
    with pytest.raises(ValueError):
        make("sample", fraction=0)


def test_exact_dedup_normalizes_and_keeps_the_first(tmp_path):
    recs = [sft("Hello  World", "A"), sft("hello world", "a"), sft("ＨＥＬＬＯ world", "A "), sft("other", "A")]
    out = list(make("exact_dedup", tmp_path).run(recs))
    kept = [x for x in out if isinstance(x, Record)]
    drops = [x for x in out if isinstance(x, Drop)]
    assert [r.messages[0].content for r in kept] == ["Hello  World", "other"]
    assert all(d.record.meta["duplicate_of"] == recs[0].id for d in drops)
    strict = list(make("exact_dedup", tmp_path, lowercase=False, width=False).run(recs))
    assert sum(isinstance(x, Record) for x in strict) == 4


def test_exact_dedup_keep_best_by_length_or_score(tmp_path):
    recs = [sft("Same question", "short"), sft("other", "x"), sft("same  question", "a much longer answer")]
    recs += [sft("SAME QUESTION", "mid answer")]
    for r, score in zip(recs, (2, 9, 1, 5), strict=True):
        r.meta["quality"] = {"score": score}
    for keep, winner in (("longest", 2), ("score", 3)):
        out = list(make("exact_dedup", tmp_path, part="prompt", keep=keep, score_key="quality.score").run(recs))
        assert [getattr(x, "record", x).id for x in out] == [r.id for r in recs]  # each once, input order
        kept = [x.id for x in out if isinstance(x, Record)]
        assert kept == sorted([recs[1].id, recs[winner].id], key=[r.id for r in recs].index)
        assert {x.record.meta["duplicate_of"] for x in out if isinstance(x, Drop)} == {recs[winner].id}


def test_exact_dedup_on_demo_data_finds_the_known_duplicates(tmp_path):
    recs = demo("alpaca_en_demo.json") + demo("alpaca_en_demo.json")[:100]
    out = list(make("exact_dedup", tmp_path, part="all").run(recs))
    assert sum(isinstance(x, Drop) for x in out) >= 100


@pytest.mark.parametrize("keep", ["first", "longest"])
def test_exact_dedup_keys_from_the_workers_give_the_same_run(tmp_path, monkeypatch, keep):
    """With a chunk stage before it, exact_dedup's keys are computed by that stage's workers, chunk by
    chunk; the run is the one of the op computing them itself."""
    import json

    rows = json.loads((LF / "alpaca_en_demo.json").read_text(encoding="utf-8"))[:150]
    rows += [dict(r, output=r["output"] + " More.") for r in rows[:30]]  # the same prompt: duplicates
    rows += [dict(r, instruction=r["instruction"].upper()) for r in rows[30:50]]  # the same once lowercased
    steps = [{"op": "length_filter", "min": 2}, {"op": "exact_dedup", "part": "prompt", "keep": keep}]
    stats = same_run_without_precompute(tmp_path, monkeypatch, rows, steps, ops.get("exact_dedup"))
    assert stats["steps"][1]["counters"]["keys_from_workers"] == stats["steps"][1]["in"]
    assert sum(stats["steps"][1]["dropped"].values()) >= 50


def test_limit_and_shuffle(tmp_path):
    recs = demo("alpaca_zh_demo.json")
    ids = [r.id for r in recs]
    limited = list(make("limit", n=10).run(recs))
    assert [x.id for x in limited[:10]] == ids[:10] and all(isinstance(x, Drop) for x in limited[10:])
    one = [r.id for r in make("shuffle", tmp_path, seed=3, buckets=8).run(recs)]
    two = [r.id for r in make("shuffle", tmp_path, seed=3, buckets=8).run(recs)]
    three = [r.id for r in make("shuffle", tmp_path, seed=4, buckets=8).run(recs)]
    assert one == two and sorted(one) == sorted(ids) and one != ids and one != three


def test_ops_command_lists_and_describes():
    runner = CliRunner()
    listing = runner.invoke(app, ["ops"])
    assert listing.exit_code == 0
    for name in ops.load_all():
        assert name in listing.output
    one = runner.invoke(app, ["ops", "length_filter"])
    assert one.exit_code == 0 and "min" in one.output and "filter" in one.output
    bad = runner.invoke(app, ["ops", "nope"])
    assert bad.exit_code == 1 and "unknown operator" in bad.output


def test_every_operator_belongs_to_the_capability_package_that_holds_it():
    import importlib

    registry = ops.load_all()
    modules = [m for ms in ops.MODULES.values() for m in ms]
    assert len(modules) == len(set(modules))
    for cap, listed in ops.MODULES.items():
        for module in listed:
            assert module.split(".")[0] == cap  # an operator module lives in its capability's package
            assert any(cls.__module__ == f"datamill.{module}" for cls in registry.values()), module
            importlib.import_module(f"datamill.{module}")
    shipped = [cls for cls in registry.values() if cls.__module__.startswith("datamill.")]  # not tests' own ops
    assert {ops.capability(cls) for cls in shipped} == set(ops.MODULES)
    assert ops.capability(registry["minhash_dedup"]) == "dedup" and ops.capability(registry["split"]) == "select"
    listing = CliRunner().invoke(app, ["ops"], env={"COLUMNS": "200"})
    rows = [line for line in listing.output.splitlines() if "│" in line]
    caps = [row.split("│")[1].strip() for row in rows if row.split("│")[1].strip()]
    assert caps == sorted(caps, key=[*ops.MODULES, "other"].index)  # grouped, in MODULES order
