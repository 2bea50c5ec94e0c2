"""Reddit / Pushshift dumps (issue 19, item 5): RS_/RC_ .zst files written here with ``zstandard`` in
Pushshift's field layout (id, name, link_id, parent_id, author, body/selftext, score, created_utc,
subreddit), with deleted and removed posts, a bot, a low-scored reply, a thread whose submission is
missing and a broken line → the expected multi-turn dialogues and drop counters; files joined by name
beside each other or in submissions/ and comments/ folders; a cut-off .zst; a recipe's accounting."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
import yaml
import zstandard

from datamill.dataset import Quarantined
from datamill.ingest import is_pipeline_document, read_documents
from datamill.ingest.reddit import RedditStats, read, read_files
from datamill.pipeline import recipe as recipes
from datamill.pipeline.runner import Runner
from datamill.record import Record

T0 = 1554076800  # 2019-04-01


def sub(id_: str, title: str, selftext: str = "", author: str = "op", score: int = 10, **extra) -> dict:
    return {
        "id": id_,
        "name": f"t3_{id_}",
        "title": title,
        "selftext": selftext,
        "author": author,
        "score": score,
        "created_utc": T0,
        "subreddit": "AskScience",
        "subreddit_id": "t5_2qm4e",
        "num_comments": 3,
        "over_18": False,
        "is_self": True,
        "permalink": f"/r/AskScience/comments/{id_}/",
        **extra,
    }


def com(id_: str, link: str, parent: str, body: str, score: int, author: str = "user", t: int = 0) -> dict:
    return {
        "id": id_,
        "name": f"t1_{id_}",
        "link_id": f"t3_{link}",
        "parent_id": parent,
        "author": author,
        "body": body,
        "score": score,
        "created_utc": T0 + 60 + t,
        "subreddit": "AskScience",
        "subreddit_id": "t5_2qm4e",
        "controversiality": 0,
    }


SUBMISSIONS = [
    sub("a1", "Why is the sky blue?", "Asking for my kid &amp; me."),
    sub("a2", "Removed post", "[removed]"),
    sub("a3", "Post by a deleted account", "Some text", author="[deleted]"),
    sub("a4", "Nobody answered"),
]
COMMENTS = [
    com("c1", "a1", "t3_a1", "Rayleigh scattering: shorter wavelengths scatter more.", 120, t=1),
    com("c2", "a1", "t3_a1", "Because of the ocean.", 3, t=2),
    com("c3", "a1", "t1_c1", "Then why isn't it violet?", 40, t=3),
    com("c4", "a1", "t1_c3", "Our eyes are less sensitive to violet &gt; the sun emits less of it.", 30, t=4),
    com("c5", "a1", "t1_c4", "[deleted]", 50, author="[deleted]", t=5),
    com("c6", "a1", "t1_c4", "Thanks, makes sense!", 12, t=6),
    com("c7", "a1", "t1_c6", "I am a bot, beep.", 99, author="AutoModerator", t=7),
    com("c8", "a1", "t1_c1", "Meh.", -4, t=8),
    com("c9", "a2", "t3_a2", "What was it about?", 5, t=9),
    com("d1", "zz", "t3_zz", "Top comment of a thread whose submission is not in the dump.", 8, t=10),
    com("d2", "zz", "t1_d1", "A reply to it.", 6, t=11),
    com("e1", "a1", "t3_a1", "[removed]", 200, author="mod", t=12),
]


def zst(rows: list[dict], tail: bytes = b"") -> bytes:
    data = b"".join(orjson.dumps(r) + b"\n" for r in rows) + tail
    return zstandard.ZstdCompressor(level=3, write_content_size=False).compress(data)


@pytest.fixture
def month(tmp_path) -> tuple[Path, Path]:
    rs, rc = tmp_path / "RS_2019-04.zst", tmp_path / "RC_2019-04.zst"
    rs.write_bytes(zst(SUBMISSIONS))
    rc.write_bytes(zst(COMMENTS[:5] + [{"id": "broken"}] + COMMENTS[5:], b'{"id": "x", "body": "cut\n'))
    return rs, rc


def turns(rec: Record) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in rec.messages]


def test_threads_become_dialogues_along_the_best_scored_chain(month):
    rs, rc = month
    stats = RedditStats()
    assert list(read(rs, stats)) == []  # read with its comments file
    items = list(read(rc, stats))
    records = [i for i in items if isinstance(i, Record)]
    bad = [i for i in items if isinstance(i, Quarantined)]
    assert turns(records[0]) == [
        ("user", "Why is the sky blue?\n\nAsking for my kid & me."),
        ("assistant", "Rayleigh scattering: shorter wavelengths scatter more."),
        ("user", "Then why isn't it violet?"),
        ("assistant", "Our eyes are less sensitive to violet > the sun emits less of it."),
    ]  # c6 would be a user turn with no answer after it (the bot's reply is dropped): cut to end on the assistant
    meta = records[0].meta
    assert meta["subreddit"] == "AskScience" and meta["submission_id"] == "a1" and meta["with_submission"]
    assert meta["comment_ids"] == ["c1", "c3", "c4"] and meta["scores"] == [10, 120, 40, 30]
    assert meta["created_utc"] == T0 and meta["source"] == str(rs) and meta["line"] == 1
    assert meta["permalink"] == "https://www.reddit.com/r/AskScience/comments/a1/"
    assert turns(records[1]) == [
        ("user", "Top comment of a thread whose submission is not in the dump."),
        ("assistant", "A reply to it."),
    ]
    assert records[1].meta["with_submission"] is False and records[1].meta["source"] == str(rc)
    assert len(records) == 2
    assert [(b.file, b.line) for b in bad] == [(str(rc), 6), (str(rc), 14)]
    assert "neither a submission" in bad[0].error and "invalid JSON" in bad[1].error
    assert (stats.submissions, stats.comments, stats.dialogues) == (4, 12, 2)
    assert stats.dropped == {
        "submission body [removed]": 1,
        "submission author [deleted]": 1,
        "comment body [deleted]": 1,
        "comment body [removed]": 1,
        "comment by a skipped author": 1,
        "comment below min_score": 1,
        "thread without a reply chain passing the filters": 1,  # a4: no replies
    }


def test_filters_are_options(month):
    _, rc = month
    longer = [r for r in read(rc, max_turns=6, min_score=1, skip_authors=[]) if isinstance(r, Record)]
    assert [m.content for m in longer[0].messages][-2:] == ["Thanks, makes sense!", "I am a bot, beep."]
    strict = [turns(r) for r in read(rc, min_score=50) if isinstance(r, Record)]
    assert [len(t) for t in strict] == [2]  # c3 (40) ends a1's chain after c1; zz's comments are below 50
    chars = [r for r in read(rc, max_chars=40) if isinstance(r, Record)]
    assert chars == []  # a1 itself (47 chars) and d1 are too long, and d2 hangs under d1
    four = [r for r in read(rc, min_turns=4) if isinstance(r, Record)]
    assert [r.meta["submission_id"] for r in four] == ["a1"]
    with pytest.raises(ValueError, match="unknown option"):
        list(read(rc, min_scor=1))


def test_separate_folders_jsonl_and_a_cut_off_zst(tmp_path):
    (tmp_path / "submissions").mkdir()
    (tmp_path / "comments").mkdir()
    (tmp_path / "submissions" / "RS_2019-04.zst").write_bytes(zst(SUBMISSIONS))
    filler = [com(f"f{i}", "zz", "t3_zz", f"filler comment number {i} " * 8, 0) for i in range(4000)]
    data = zst(COMMENTS + filler)  # several zstd blocks, so that the cut loses only the last
    cut = tmp_path / "comments" / "RC_2019-04.zst"
    cut.write_bytes(data[: len(data) - 20])
    items = list(read(cut))
    bad = [i for i in items if isinstance(i, Quarantined)]
    assert len(bad) == 1 and "truncated zstd stream" in bad[0].error and bad[0].where.startswith(f"{cut}@")
    assert any(isinstance(i, Record) and i.meta["with_submission"] for i in items)  # joined across folders
    plain = tmp_path / "mixed.jsonl"  # one file holding both kinds, as a converted dump might
    plain.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in COMMENTS + SUBMISSIONS))
    assert not is_pipeline_document(plain) and is_pipeline_document(plain, "reddit")
    records = [r for r in read_files([plain]) if isinstance(r, Record)]
    assert [r.meta["submission_id"] for r in records] == ["a1", "zz"]


def test_ingest_and_a_recipe_account_for_every_row(month, tmp_path):
    rs, rc = month
    items = list(read_documents([rs.parent]))
    assert sum(isinstance(i, Record) for i in items) == 2 and sum(isinstance(i, Quarantined) for i in items) == 2
    out = tmp_path / "out"
    body = {
        "inputs": [str(rs), str(rc)],
        "steps": [{"op": "length_filter", "part": "answer", "unit": "chars", "min": 20}],
        "output": {"path": str(out), "format": "sharegpt"},
    }
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(body), encoding="utf-8")
    stats = Runner(recipes.load(tmp_path / "r.yaml")).run().stats
    dropped = sum(sum(s["dropped"].values()) for s in stats["steps"])
    assert (stats["input"], stats["kept"], dropped, stats["quarantined"]) == (4, 1, 1, 2)
    assert stats["input"] == stats["kept"] + dropped + stats["quarantined"]
    quarantined = [json.loads(line) for line in (out / "quarantine.jsonl").read_text().splitlines()]
    assert [(q["file"], q["line"]) for q in quarantined] == [(str(rc), 6), (str(rc), 14)]
    (row,) = [json.loads(line) for line in (out / "data-00000.jsonl").read_text().splitlines()]
    assert [t["from"] for t in row["conversations"]] == ["human", "gpt", "human", "gpt"]


def test_recipe_input_options_reach_the_reader_and_are_checked(month, tmp_path):
    rs, rc = month
    body = {
        "inputs": [{"path": str(rc), "format": "reddit", "options": {"min_turns": 4, "skip_authors": []}}],
        "output": {"path": str(tmp_path / "out"), "format": "sharegpt"},
    }
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(body), encoding="utf-8")
    result = Runner(recipes.load(tmp_path / "r.yaml")).run()
    assert (result.stats["input"], result.stats["kept"], result.stats["quarantined"]) == (3, 1, 2)
    (row,) = [json.loads(line) for line in (tmp_path / "out" / "data-00000.jsonl").read_text().splitlines()]
    assert len(row["conversations"]) == 6  # the bot's reply is a turn now, so c6 has its answer
    assert "min_turns: 4" in (tmp_path / "out" / "recipe.lock.yaml").read_text()
    body["inputs"] = [{"path": str(rc), "options": {"min_turn": 4, "max_chars": "long"}}, {"path": str(rs)}]
    body["inputs"].append({"path": str(rs.with_name("x.jsonl")), "options": {"min_turns": 2}, "optional": True})
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(body), encoding="utf-8")
    with pytest.raises(recipes.RecipeError) as e:
        recipes.load(tmp_path / "r.yaml")
    assert "unknown option(s) min_turn" in str(e.value)


def test_ingest_command_options_and_conversation_output(month, tmp_path):
    from typer.testing import CliRunner

    from datamill.cli import app

    _, rc = month
    out = tmp_path / "d.jsonl"
    refused = CliRunner().invoke(app, ["ingest", str(rc), "-o", str(out)])
    assert refused.exit_code == 1 and "conversations" in refused.output and not out.exists()
    ok = CliRunner().invoke(app, ["ingest", str(rc), "-o", str(out), "--to", "sharegpt", "-O", "min_turns=4"])
    assert ok.exit_code == 0, ok.output
    assert len(out.read_text().splitlines()) == 1 and "reddit 1" in ok.output
    bad = CliRunner().invoke(app, ["ingest", str(rc), "-o", str(out), "--from", "reddit", "-O", "min_turns=x"])
    assert bad.exit_code == 1 and "min_turns takes an int" in bad.output
    assert CliRunner().invoke(app, ["ingest", str(rc), "-o", str(out), "--from", "usenet"]).exit_code == 2
