"""mix: 969:30:1 by tokens on three real sources, up-sampling, and a full recipe run."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import pytest
import yaml
from conftest import LF

import datamill
from datamill import ops
from datamill.ops.base import OpContext
from datamill.record import Record
from datamill.results import Drop, Generated
from datamill.select.mixing import effective_ratio, fill

pytest.importorskip("llama_cpp")
SOURCES = {"web": ["*c4_demo*"], "instructions": ["*alpaca_en*"], "code": ["*glaive_toolcall_en*"]}
FILES = ("c4_demo.jsonl", "alpaca_en_demo.json", "glaive_toolcall_en_demo.json")


def make(name: str, tmp_path: Path, seed: int = 0, **options):
    cls = ops.get(name)
    return cls(cls.Config.model_validate(options), OpContext(seed=seed, step=0, workdir=tmp_path / name))


@pytest.fixture(scope="module")
def three_sources(tmp_path_factory) -> list[Record]:
    """The three files, with meta.tokens from count_tokens (mix reads it instead of counting again)."""
    counter = make("count_tokens", tmp_path_factory.mktemp("tokens"))
    return [counter.map(r) for f in FILES for r in datamill.read(LF / f) if isinstance(r, Record)]


def test_fill_meets_a_target_closely():
    size = [5, 7, 11, 13, 40]
    assert sum(size[i] for i in fill([4, 3, 2, 1, 0], size, 25)) == 24  # 13 + 11, gap 1: nothing closes it
    assert sum(size[i] for i in fill([4, 0, 1, 2, 3], size, 25)) == 25  # 5 + 7 + 13 after a swap
    assert fill([0, 1], [10, 10], 0) == []


def test_mix_969_30_1_by_tokens(three_sources, tmp_path):
    op = make("mix", tmp_path, ratio={"web": 969, "instructions": 30, "code": 1}, sources=SOURCES, by="tokens")
    out = list(op.run(three_sources))
    kept = [r for r in out if not isinstance(r, Drop)]
    assert len(out) == len(three_sources)  # every record accounted for
    assert {d.reason for d in out if isinstance(d, Drop)} == {"not selected for the mix"}
    # measure the shares from the records themselves, not from the op's counters
    tokens = collections.Counter()
    for r in kept:
        name = next(n for n, pats in SOURCES.items() if pats[0].strip("*") in r.meta["source"])
        tokens[name] += r.meta["tokens"]["total"]
    total = sum(tokens.values())
    for name, want in {"web": 0.969, "instructions": 0.030, "code": 0.001}.items():
        share = tokens[name] / total
        assert abs(share / want - 1) < 0.01, (name, share, want)
    ratio = effective_ratio(op.counters)
    assert ratio["web"]["units"] == tokens["web"] == ratio["web"]["available"]  # web is the limit: all of it
    assert abs(ratio["code"]["share"] - tokens["code"] / total) < 1e-6
    assert ratio["code"]["target"] == 0.001


def test_mix_by_records_with_up_sampling(three_sources, tmp_path):
    op = make(
        "mix",
        tmp_path,
        ratio={"web": 1, "instructions": 1, "code": 2},
        sources=SOURCES,
        total=2000,
        max_epochs=3,
    )
    out = list(op.run(three_sources))
    assert sum(isinstance(r, Generated) for r in out) == 200 + 600  # the repeats, as the runner counts them
    kept = [r.record if isinstance(r, Generated) else r for r in out if not isinstance(r, Drop)]
    by_source = collections.Counter(
        next(n for n, p in SOURCES.items() if p[0].strip("*") in r.meta["source"]) for r in kept
    )
    # web has 300 records: 500 wanted, so 1 full epoch + 200 repeats; code: 1000 of 300 → capped at 3 epochs = 900
    assert by_source == {"web": 500, "instructions": 500, "code": 900}
    epochs = collections.Counter(r.meta.get("epoch", 0) for r in kept if "c4_demo" in r.meta["source"])
    assert epochs == {0: 300, 1: 200}
    assert op.counters["added"] == 200 + 600


def test_mix_others_and_config_errors(three_sources, tmp_path):
    op = make("mix", tmp_path, ratio={"web": 1}, sources={"web": ["*c4_demo*"]}, others="keep")
    out = list(op.run(three_sources))
    assert not any(isinstance(r, Drop) for r in out)
    dropped = make("mix", tmp_path, ratio={"web": 1}, sources={"web": ["*c4_demo*"]}).run(three_sources)
    assert sum(isinstance(r, Drop) and r.reason == "source not in the mix" for r in dropped) == 1299
    with pytest.raises(ValueError, match="not in ratio"):
        ops.get("mix").Config.model_validate({"ratio": {"a": 1}, "sources": {"b": ["x"]}})


def test_recipe_count_tokens_mix_split_runs_and_balances(tmp_path):
    """The ops inside the real runner: token counts, a 969:30:1 mix and a split, in stats.json."""
    from datamill.pipeline import recipe as recipes
    from datamill.pipeline.runner import Runner

    body = {
        "name": "mix-demo",
        "seed": 3,
        "chunk_size": 400,
        "workers": 1,
        "inputs": [str(LF / f) for f in FILES],
        "steps": [
            {"op": "count_tokens"},
            {"op": "mix", "ratio": {"web": 969, "instructions": 30, "code": 1}, "sources": SOURCES, "by": "tokens"},
            {"op": "split", "fractions": {"train": 0.9, "test": 0.1}},
            {
                "op": "mix",
                "ratio": {"web": 1, "instructions": 1},
                "sources": {"web": SOURCES["web"], "instructions": SOURCES["instructions"]},
                "total": 800,
                "max_epochs": 3,
            },
        ],
        "output": {"path": str(tmp_path / "out")},  # datamill format: holds text and conversations
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(body), encoding="utf-8")
    result = Runner(recipes.load(path)).run()
    stats = json.loads((tmp_path / "out" / "stats.json").read_text(encoding="utf-8"))
    assert stats["balanced"] and stats["input"] == 1599
    steps = {s["op"]: s for s in stats["steps"]}
    assert steps["count_tokens"]["counters"]["total_tokens"] > 400_000
    mix = effective_ratio(stats["steps"][1]["counters"])
    assert abs(mix["instructions"]["share"] / 0.03 - 1) < 0.01
    split = steps["split"]["counters"]
    assert split["split:train"] + split["split:test"] == steps["split"]["out"]
    # the second mix up-samples the 37 instruction records to 400 (capped at 3 epochs: 111)
    upsample = stats["steps"][3]
    assert upsample["op"] == "mix" and upsample["generated"] == upsample["counters"]["added"] > 0
    assert upsample["counters"]["records:web"] == 400 and upsample["counters"]["records:instructions"] == 111
    assert result.stats["kept"] == 511


def test_mix_source_that_matches_nothing_is_a_clear_error(three_sources, tmp_path):
    from datamill.errors import DatamillError

    op = make("mix", tmp_path, ratio={"web": 9, "books": 1}, sources={"web": ["*c4_demo*"]})
    with pytest.raises(DatamillError, match=r"no record matched source\(s\) \['books'\].*\*books\*"):
        list(op.run(three_sources))
