"""minhash_dedup and its vectorized MinHash/LSH core, on real data: alpaca demos with injected
edits (English words, Chinese characters), the T0 ground truth, and inside a real recipe."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import orjson
import pytest
import yaml
from conftest import DATA, LF, same_run_without_precompute

import datamill
from datamill import ops
from datamill.dedup import minhash as mh
from datamill.dedup.evaluate import load_t0, pair_scores
from datamill.dedup.unionfind import find, union
from datamill.ops.base import OpContext
from datamill.pipeline import recipe as recipes
from datamill.pipeline.runner import Runner
from datamill.record import Message, Record
from datamill.results import Drop


def make(tmp_path: Path, **options):
    cls = ops.get("minhash_dedup")
    return cls(cls.Config.model_validate(options), OpContext(seed=0, step=0, workdir=tmp_path / "w"))


def demo(name: str) -> list[Record]:
    return [r for r in datamill.read(LF / name) if isinstance(r, Record)]


def sft(q: str, a: str, rid: str | None = None) -> Record:
    rec = Record(messages=[Message("user", q), Message("assistant", a)])
    rec.id = rid or rec.compute_id()
    return rec


def edit_words(text: str, rng: random.Random, k: int) -> str:
    words = text.split()
    for _ in range(k):
        i = rng.randrange(len(words))
        words[i] = rng.choice(["very", "quite", "the", "really", "also"]) + " " + words[i]
    return " ".join(words)


def edit_chars(text: str, rng: random.Random, k: int) -> str:
    chars = list(text)
    for _ in range(k):
        i = rng.randrange(len(chars))
        op = rng.choice(["replace", "insert", "delete"])
        if op == "replace":
            chars[i] = rng.choice("的了是在不我有这个们")
        elif op == "insert":
            chars.insert(i, rng.choice("的了是在不我有这个们"))
        else:
            del chars[i]
    return "".join(chars)


def with_copies(originals: list[Record], edit, rng: random.Random) -> tuple[list[Record], dict[str, str]]:
    """Originals plus an edited copy of each (inserted right after a random later position);
    returns the stream and copy id → original id."""
    stream, copy_of = list(originals), {}
    for rec in originals:
        copy = sft(edit(rec.messages[0].content), edit(rec.messages[-1].content), rid=f"copy-{rec.id}")
        copy_of[copy.id] = rec.id
        stream.insert(rng.randrange(stream.index(rec) + 1, len(stream) + 1), copy)
    return stream, copy_of


def jaccard(a: str, b: str, n: int = 5) -> float:
    """Exact Jaccard of the word 5-gram sets, tokenized as minhash_dedup does."""

    def shingles(t: str) -> set[tuple[str, ...]]:
        toks = [w for w in (mh.normalize_token(x) for x in t.split()) if w]
        return {tuple(toks[i : i + n]) for i in range(max(1, len(toks) - n + 1))}

    x, y = shingles(a), shingles(b)
    return len(x & y) / len(x | y)


def split(out) -> tuple[list[Record], list[Drop]]:
    return [x for x in out if isinstance(x, Record)], [x for x in out if isinstance(x, Drop)]


# ---- the core -----------------------------------------------------------------------------------
def test_optimal_bands_balance_the_s_curve():
    for threshold, num_perm in [(0.5, 128), (0.8, 128), (0.9, 256)]:
        b, r = mh.optimal_bands(threshold, num_perm)
        assert b * r <= num_perm
        err = mh.false_positive_area(threshold, b, r) + mh.false_negative_area(threshold, b, r)
        for nb, nr in [(b + 1, r), (b - 1, r), (b, r + 1), (b, r - 1)]:
            if nb >= 1 and nr >= 1 and nb * nr <= num_perm:
                assert err <= mh.false_positive_area(threshold, nb, nr) + mh.false_negative_area(threshold, nb, nr)
        assert abs((1 / b) ** (1 / r) - threshold) < 0.12  # the S-curve's steep part sits near the threshold
    b_fp, r_fp = mh.optimal_bands(0.8, 128, fp_weight=0.9, fn_weight=0.1)
    assert mh.false_positive_area(0.8, b_fp, r_fp) < mh.false_positive_area(0.8, *mh.optimal_bands(0.8, 128))


def test_signatures_estimate_jaccard_on_real_text():
    recs = demo("alpaca_en_demo.json")
    rng = random.Random(3)
    texts = [r.part("all") for r in recs if len(r.part("all").split()) > 60][:150]
    edited = [edit_words(t, rng, rng.randrange(0, 25)) for t in texts]

    true = np.array([jaccard(a, b) for a, b in zip(texts, edited, strict=True)])
    a, b = mh.permutations(256)
    sig = mh.signatures(mh.shingle(texts + edited), a, b)
    est = (sig[: len(texts)] == sig[len(texts) :]).mean(axis=1)
    assert true.min() < 0.5 < 0.9 < true.max()  # the edits span a real range of similarities
    assert np.abs(est - true).mean() < 0.04
    assert abs((est - true).mean()) < 0.02  # unbiased


def test_script_decides_word_or_character_shingles():
    sh = mh.shingle(
        ["今天天气很好，我们去公园散步吧", "The weather is nice today", "用 Python 写一个排序函数", "", "!!! ..."]
    )
    assert sh.char_mode.tolist() == [True, False, True, False, False]
    assert sh.n_tokens.tolist() == [14, 5, 14, 0, 0]
    assert sh.count.tolist()[3:] == [0, 0]
    # case, width, punctuation and spacing do not change the signature
    a, b = mh.permutations(64)
    sig = mh.signatures(mh.shingle(["Hello, World!  How are you today?", "hello world how ARE you ＴＯＤＡＹ"]), a, b)
    assert (sig[0] == sig[1]).all()


def test_vectorized_union_find_matches_a_plain_one():
    rng = np.random.default_rng(5)
    n = 2000
    u, v = rng.integers(0, n, 1500), rng.integers(0, n, 1500)
    parent = np.arange(n)
    union(parent, u, v)
    roots = find(parent, np.arange(n))
    ref = list(range(n))

    def ref_find(x):
        while ref[x] != x:
            ref[x] = ref[ref[x]]
            x = ref[x]
        return x

    for a, b in zip(u.tolist(), v.tolist(), strict=True):
        ra, rb = ref_find(a), ref_find(b)
        ref[max(ra, rb)] = min(ra, rb)
    assert roots.tolist() == [ref_find(x) for x in range(n)]
    assert all(roots[i] <= i for i in range(n))  # every root is its cluster's first record


# ---- the operator -------------------------------------------------------------------------------
def test_english_near_duplicates_are_dropped_in_order_with_clusters(tmp_path):
    rng = random.Random(0)
    originals = [r for r in demo("alpaca_en_demo.json") if len(r.part("all").split()) >= 80][:120]
    stream, copy_of = with_copies(originals, lambda t: edit_words(t, rng, 2), rng)
    baseline = split(make(tmp_path / "base", threshold=0.7).run(originals))[1]
    op = make(tmp_path, threshold=0.7, batch_size=37, partitions=3)  # several batches and partitions
    out = list(op.run(stream))
    assert [x.id if isinstance(x, Record) else x.record.id for x in out] == [r.id for r in stream]  # order, once
    kept, drops = split(out)
    dropped_copies = {d.record.id for d in drops if d.record.id in copy_of}
    by_id = {r.id: r for r in stream}
    sim = {c: jaccard(by_id[c].part("all"), by_id[o].part("all")) for c, o in copy_of.items()}
    similar = {c for c, j in sim.items() if j >= 0.8}
    assert len(similar) > 60 and len(dropped_copies & similar) >= 0.95 * len(similar)
    assert not {c for c, j in sim.items() if j < 0.5} & dropped_copies
    assert len([d for d in drops if d.record.id not in copy_of]) == len(baseline)  # no new original dropped
    for d in drops:
        assert d.reason == "near duplicate (minhash J≥0.7)"
        assert isinstance(d.record.meta["near_dup_cluster"], int)
        if d.record.id in copy_of and not any(b.record.id == copy_of[d.record.id] for b in baseline):
            assert d.record.meta["near_duplicate_of"] == copy_of[d.record.id]  # keep=first: the original
    clusters = [orjson.loads(x) for x in (tmp_path / "w" / "clusters.jsonl").read_bytes().splitlines()]
    assert len(clusters) == len(kept) - (len(stream) - len(drops) - len(clusters)) == len({c["kept"] for c in clusters})
    members = [m for c in clusters for m in c["members"]]
    assert len(members) == len(set(members)) and sum(len(c["members"]) - 1 for c in clusters) == len(drops)
    assert all(c["kept"] in c["members"] for c in clusters)


def test_keep_longest_and_score(tmp_path):
    base = "Explain how photosynthesis turns light water and carbon dioxide into sugar and oxygen in green plants"
    recs = [
        sft(base, "Plants use light to make sugar from water and carbon dioxide, releasing oxygen.", "a"),
        sft(base, "Plants use light to make sugar from water and carbon dioxide, releasing oxygen. " * 2, "b"),
        sft(base, "Plants use light to make sugar from water and carbon dioxide, releasing oxygen!", "c"),
        sft("Write a haiku about the sea", "Waves fold into foam", "d"),
    ]
    recs[2].meta["quality_score"] = 0.9
    recs[0].meta["quality_score"] = 0.3
    first = [x.id for x in make(tmp_path, threshold=0.5).run(recs) if isinstance(x, Record)]
    longest = [x.id for x in make(tmp_path, threshold=0.5, keep="longest").run(recs) if isinstance(x, Record)]
    score = [x.id for x in make(tmp_path, threshold=0.5, keep="score").run(recs) if isinstance(x, Record)]
    assert first == ["a", "d"] and longest == ["b", "d"] and score == ["c", "d"]
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == ["clusters.jsonl", "summary.json"]  # no leftovers
    assert list(make(tmp_path / "empty").run([])) == []


def test_chinese_near_duplicates_are_caught_with_character_shingles(tmp_path):
    rng = random.Random(1)
    originals = [r for r in demo("alpaca_zh_demo.json") if len(r.part("all")) >= 150][:150]
    stream, copy_of = with_copies(originals, lambda t: edit_chars(t, rng, max(1, len(t) // 100)), rng)
    baseline = split(make(tmp_path / "base", threshold=0.7).run(originals))[1]
    out = list(make(tmp_path, threshold=0.7).run(stream))
    drops = split(out)[1]
    caught = {d.record.id for d in drops} & set(copy_of)
    assert len(caught) >= 0.9 * len(copy_of)
    assert len([d for d in drops if d.record.id not in copy_of]) == len(baseline)
    # word shingles would see each Chinese answer as a handful of "words": the character mode matters
    assert mh.shingle([originals[0].part("all")]).char_mode.all()


def test_bands_rows_validation():
    cls = ops.get("minhash_dedup")
    with pytest.raises(ValueError):
        cls.Config(bands=20, rows=10, num_perm=128)
    with pytest.raises(ValueError):
        cls.Config(bands=4)
    assert cls.Config(bands=16, rows=8).rows == 8


def test_t0_ground_truth_precision_and_recall(tmp_path):
    rows = list(load_t0(DATA / "t0"))
    recs = [sft(p, c.replace("<|endoftext|>", ""), rid=str(i)) for i, (_, p, c, _) in enumerate(rows)]
    truth = [key for *_, key in rows]
    assert len(set(truth)) == 799  # 4 datasets × 200 source examples; two app reviews are both "good"

    def scores(threshold: float) -> dict[str, float]:
        list(make(tmp_path, threshold=threshold).run(recs))
        pred: list[object] = list(range(len(recs)))
        for line in (tmp_path / "w" / "clusters.jsonl").read_bytes().splitlines():
            c = orjson.loads(line)
            for m in c["members"]:
                pred[int(m)] = f"c{c['cluster']}"
        return pair_scores(pred, truth)

    low, high = scores(0.5), scores(0.8)
    assert low["f1"] > 0.3 and low["recall"] > high["recall"]
    assert high["precision"] > 0.7 and high["precision"] > low["precision"]


# ---- in a real recipe ---------------------------------------------------------------------------
def test_minhash_and_decontaminate_in_a_recipe_keep_the_books_balanced(tmp_path):
    rows = json.loads((LF / "alpaca_en_demo.json").read_text(encoding="utf-8"))[:300]
    rng = random.Random(2)
    gsm = [json.loads(x) for x in (DATA / "gsm8k" / "test.jsonl").read_text(encoding="utf-8").splitlines()[:5]]
    extra = [dict(r, output=edit_words(r["output"], rng, 1)) for r in rows[:40] if len(r["output"].split()) > 60]
    extra += [{"instruction": g["question"], "input": "", "output": "Let me think."} for g in gsm]
    (tmp_path / "in.json").write_text(json.dumps(rows + extra, ensure_ascii=False), encoding="utf-8")
    body = {
        "name": "dedup",
        "chunk_size": 100,
        "workers": 1,
        "inputs": [str(tmp_path / "in.json")],
        "steps": [
            {"op": "decontaminate", "benchmarks": [str(DATA / "gsm8k" / "test.jsonl")]},
            {"op": "minhash_dedup", "threshold": 0.7, "part": "answer", "clusters": str(tmp_path / "clusters.jsonl")},
        ],
        "output": {"path": str(tmp_path / "out"), "format": "alpaca"},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(body), encoding="utf-8")
    result = Runner(recipes.load(path)).run()
    stats = json.loads((tmp_path / "out" / "stats.json").read_text(encoding="utf-8"))
    assert stats["balanced"] and stats["input"] == len(rows) + len(extra) == result.stats["input"]
    assert stats["input"] == stats["kept"] + stats["dropped"] + stats["quarantined"]
    decon, near = stats["steps"][0], stats["steps"][1]
    assert decon["op"] == "decontaminate" and sum(decon["dropped"].values()) == len(gsm)
    assert set(decon["dropped"]) == {f"benchmark overlap: test.jsonl#{i}" for i in range(len(gsm))}
    assert near["op"] == "minhash_dedup" and near["dropped"]["near duplicate (minhash J≥0.7)"] >= len(extra) - len(gsm)
    dropped = [orjson.loads(x) for x in (tmp_path / "out" / "dropped.jsonl").read_bytes().splitlines()]
    assert len(dropped) == stats["dropped"]
    near_drops = [d for d in dropped if d["op"] == "minhash_dedup"]
    clusters = [orjson.loads(x) for x in (tmp_path / "clusters.jsonl").read_bytes().splitlines()]
    kept_ids = {c["kept"] for c in clusters}
    assert all(d["record"]["meta"]["near_duplicate_of"] in kept_ids for d in near_drops)
    assert sum(len(c["members"]) - 1 for c in clusters) == len(near_drops)


@pytest.mark.parametrize("verify", [False, True])
def test_signatures_from_the_workers_give_the_same_run(tmp_path, monkeypatch, verify):
    """With a chunk stage before it, minhash_dedup's signatures are computed by that stage's workers, chunk
    by chunk (2 workers here); the run's data, drops (each naming the record it duplicates) and lineage
    are those of the op computing them itself, byte for byte."""
    rows = json.loads((LF / "alpaca_en_demo.json").read_text(encoding="utf-8"))[:300]
    rng = random.Random(5)
    rows += [dict(r, output=edit_words(r["output"], rng, 1)) for r in rows[:60] if len(r["output"].split()) > 40]
    rows += [dict(r, output=edit_chars(r["output"], rng, 2)) for r in rows[:20]]
    steps = [{"op": "length_filter", "min": 5}, {"op": "minhash_dedup", "threshold": 0.7, "verify": verify}]
    stats = same_run_without_precompute(tmp_path, monkeypatch, rows, steps, ops.get("minhash_dedup"))
    assert stats["steps"][1]["counters"]["signatures_from_workers"] == stats["steps"][1]["in"]
    assert stats["steps"][1]["dropped"]  # near duplicates found


def test_a_forked_worker_hashes_after_its_parent_did(tmp_path):
    """The signature thread pool of a parent that hashed is not inherited by a forked worker (its threads
    are gone there): a pipeline run in worker processes after an in-process run finishes."""
    import multiprocessing

    texts = ["the quick brown fox jumps over the lazy dog " * 3, "a b c d e f g h"]
    a, b = mh.permutations(16)
    expected = mh.signatures(mh.shingle(texts), a, b)  # the parent now has a pool with threads
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        got = pool.apply_async(_hash_in_child, (texts,)).get(timeout=60)
    assert np.array_equal(got, expected)


def _hash_in_child(texts: list[str]) -> np.ndarray:
    a, b = mh.permutations(16)
    return mh.signatures(mh.shingle(texts), a, b)
