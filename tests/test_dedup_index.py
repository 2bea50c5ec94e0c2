"""Dedup a new batch against a persistent MinHash index of an earlier corpus, without re-hashing it."""

from __future__ import annotations

import copy
import random

import pytest
from test_dedup_minhash import demo, edit_words, make

from datamill.errors import DatamillError
from datamill.record import Message, Record
from datamill.results import Drop


def outcome(op, records):
    out = list(op.run(records))
    assert [getattr(x, "record", x).id for x in out] == [r.id for r in records]  # each once, in order
    return [x for x in out if isinstance(x, Record)], [x for x in out if isinstance(x, Drop)]


def near_copy(rec: Record, rng: random.Random) -> Record:
    new = copy.deepcopy(rec)
    new.messages = [Message(m.role, edit_words(m.content, rng, 1) if m.role == "assistant" else m.content)
                    for m in new.messages]  # fmt: skip
    new.id = "copy-of-" + rec.id
    return new


def test_new_batch_against_a_persisted_corpus_index(tmp_path):
    records = [r for r in demo("alpaca_en_demo.json") if len(r.part("all").split()) >= 80]  # one edit keeps J > 0.8
    corpus, fresh = records[:300], records[300:500]
    index = tmp_path / "index"
    kept, drops = outcome(make(tmp_path / "a", index=str(index), update_index=True), corpus)
    segments = sorted(p.name for p in index.glob("seg-*"))
    assert segments == ["seg-000001"] and (index / "params.json").exists()

    rng = random.Random(3)
    copies = [near_copy(r, rng) for r in rng.sample(kept, 40)]
    batch = fresh + copies
    rng.shuffle(batch)
    kept2, drops2 = outcome(make(tmp_path / "b", index=str(index)), batch)
    of_index = {d.record.id: d.record.meta["near_duplicate_of"] for d in drops2 if d.reason.endswith("of the index")}
    caught = [c for c in copies if c.id in of_index]
    assert len(caught) >= 38 and all(of_index[c.id] == c.id.removeprefix("copy-of-") for c in caught)
    # the same records a single run over corpus + batch drops as near duplicates of the corpus
    corpus_ids = {r.id for r in kept}
    _, one_run = outcome(make(tmp_path / "one"), kept + batch)
    assert set(of_index) == {d.record.id for d in one_run if d.record.meta["near_duplicate_of"] in corpus_ids}
    assert sorted(p.name for p in index.glob("seg-*")) == segments  # read-only without update_index

    # appending: the fresh batch becomes a second segment and is found next time
    outcome(make(tmp_path / "c", index=str(index), update_index=True), fresh)
    assert len(list(index.glob("seg-*"))) == 2
    _, drops3 = outcome(make(tmp_path / "d", index=str(index)), [near_copy(r, rng) for r in fresh[:20]])
    assert len(drops3) == 20


def test_index_built_with_other_settings_is_refused(tmp_path):
    records = demo("alpaca_en_demo.json")[:50]
    outcome(make(tmp_path / "a", index=str(tmp_path / "ix"), update_index=True), records)
    with pytest.raises(DatamillError, match="num_perm: index has 128, step has 64"):
        list(make(tmp_path / "b", index=str(tmp_path / "ix"), num_perm=64).run(records))
    with pytest.raises(ValueError, match="update_index needs index"):
        make(tmp_path / "c", update_index=True)
