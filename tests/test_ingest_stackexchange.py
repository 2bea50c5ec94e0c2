"""Stack Exchange dumps (issue 19, item 3): a Posts.xml written here in the dump's own schema — one
``<row>`` per line, HTML bodies escaped in attributes, newlines as ``&#xA;``, both tag styles — read as
question + accepted (else best-scored) answer pairs and as threads; a malformed row and a cut-off file
quarantined with file and line while the rest is read; the same dump inside a .7z; a recipe run that
accounts for every row."""

from __future__ import annotations

import json
from pathlib import Path
from xml.sax.saxutils import quoteattr

import pytest
import yaml

from datamill.dataset import Quarantined
from datamill.ingest import read_documents
from datamill.ingest.stackexchange import StackStats, post_to_text, read
from datamill.pipeline import recipe as recipes
from datamill.pipeline.runner import Runner
from datamill.record import Record

Q1_BODY = (
    "<p>My loaf comes out dense. I weigh the flour with this script:</p>\n\n"
    '<pre class="lang-py prettyprint-override"><code>grams = cups * 120\nif grams &lt; 500 and hydration &gt; 0.7:\n'
    '    print("wet &amp; sticky")\n</code></pre>\n\n<p>Is <code>120</code> right?</p>\n'
)
ACCEPTED = (
    "<p>Use <strong>125 g</strong> per cup for bread flour &mdash; see "
    '<a href="https://example.org/flour" rel="nofollow">this chart</a>.</p>\n'
    "<ol>\n<li>Weigh, don't scoop.</li>\n<li>Rest the dough.</li>\n</ol>\n"
    "<pre><code>grams = cups * 125\n</code></pre>\n"
)


def row(**attrs: object) -> str:
    """One dump line: attributes XML-escaped the way the dumps are (newlines as &#xA;)."""
    parts = " ".join(f"{k}={quoteattr(str(v), {chr(10): '&#xA;', chr(13): '&#xD;'})}" for k, v in attrs.items())
    return f"  <row {parts} />"


ROWS = [
    row(
        Id=1,
        PostTypeId=1,
        AcceptedAnswerId=3,
        CreationDate="2011-02-03T10:00:00.000",
        Score=10,
        ViewCount=900,
        Body=Q1_BODY,
        OwnerUserId=7,
        Title="Why is my bread dense?",
        Tags="|baking|bread|",
        AnswerCount=2,
        CommentCount=1,
        ContentLicense="CC BY-SA 2.5",
    ),
    row(
        Id=2,
        PostTypeId=2,
        ParentId=1,
        CreationDate="2011-02-03T11:00:00.000",
        Score=25,
        Body="<p>Knead it longer.</p>",
        OwnerUserId=8,
        ContentLicense="CC BY-SA 2.5",
    ),
    row(
        Id=3,
        PostTypeId=2,
        ParentId=1,
        CreationDate="2011-02-03T12:00:00.000",
        Score=7,
        Body=ACCEPTED,
        OwnerUserId=9,
        ContentLicense="CC BY-SA 3.0",
    ),
    row(
        Id=4,
        PostTypeId=1,
        CreationDate="2012-05-01T09:00:00.000",
        Score=3,
        Body="<p>How long to boil an egg?</p>",
        Title="Soft-boiled eggs",
        Tags="<eggs><boiling>",
        AnswerCount=2,
        ContentLicense="CC BY-SA 3.0",
    ),
    row(Id=5, PostTypeId=2, ParentId=4, Score=0, Body="<p>Ten minutes.</p>", ContentLicense="CC BY-SA 3.0"),
    '  <row Id="50" PostTypeId="2" ParentId="4" Score="9" Body="<p>broken: a raw < in an attribute</p>" />',
    row(
        Id=6,
        PostTypeId=2,
        ParentId=4,
        Score=4,
        Body="<p>Six and a half minutes, then ice water.</p>",
        ContentLicense="CC BY-SA 3.0",
    ),
    row(
        Id=7,
        PostTypeId=1,
        Score=1,
        Body="<p>Best knife?</p>",
        Title="Best knife brand?",
        Tags="|knives|",
        ClosedDate="2013-01-01T00:00:00.000",
        AnswerCount=1,
    ),
    row(Id=8, PostTypeId=2, ParentId=7, Score=5, Body="<p>Any sharp one.</p>"),
    row(Id=9, PostTypeId=1, Score=2, Body="<p>No answers yet.</p>", Title="Unanswered", Tags="|misc|"),
    row(Id=10, PostTypeId=5, Body="<p>Tag wiki body.</p>"),
    row(Id=11, PostTypeId=4, Body="<p>Tag excerpt.</p>"),
    row(Id=12, PostTypeId=2, ParentId=13, Score=3, Body="<p>Salt the water.</p>"),  # before its question
    row(
        Id=13,
        PostTypeId=1,
        AcceptedAnswerId=99,
        Score=6,
        Body="<p>Pasta water?</p>",
        Title="Pasta water",
        Tags="|pasta|",
        CommunityOwnedDate="2014-01-01T00:00:00.000",
    ),  # its accepted answer was deleted
    row(Id=14, PostTypeId=2, ParentId=1000, Score=3, Body="<p>An answer whose question is gone.</p>"),
]


def write_dump(folder: Path, rows: list[str] = ROWS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "Posts.xml"
    path.write_text('<?xml version="1.0" encoding="utf-8"?>\n<posts>\n' + "\n".join(rows) + "\n</posts>\n")
    return path


@pytest.fixture
def dump(tmp_path) -> Path:
    return write_dump(tmp_path / "cooking.stackexchange.com")


def _split(items):
    return [i for i in items if isinstance(i, Record)], [i for i in items if isinstance(i, Quarantined)]


def test_sft_pairs_prefer_the_accepted_answer_and_convert_the_html(dump):
    stats = StackStats()
    records, bad = _split(list(read(dump, stats=stats)))
    pairs = [(r.meta["post_id"], r.meta["answer_id"]) for r in records]
    assert pairs == [(1, 3), (4, 6), (13, 12)]
    first = records[0]
    question, answer = first.messages[0].content, first.messages[1].content
    assert question.startswith("Why is my bread dense?\n\nMy loaf comes out dense.")
    assert '```py\ngrams = cups * 120\nif grams < 500 and hydration > 0.7:\n    print("wet & sticky")\n```' in question
    assert "Is `120` right?" in question
    assert "Use 125 g per cup for bread flour — see [this chart](https://example.org/flour)." in answer
    assert "1. Weigh, don't scoop.\n2. Rest the dough." in answer
    assert "```\ngrams = cups * 125\n```" in answer
    for r in records:
        for m in r.messages:
            assert "<p>" not in m.content and "&lt;" not in m.content and "&amp;" not in m.content
    meta = first.meta
    assert meta["site"] == "cooking.stackexchange.com" and meta["url"] == "https://cooking.stackexchange.com/q/1"
    assert (meta["question_score"], meta["answer_score"], meta["accepted"]) == (10, 7, True)
    assert meta["tags"] == ["baking", "bread"] and records[1].meta["tags"] == ["eggs", "boiling"]
    assert meta["license"] == "CC BY-SA 2.5" and meta["answer_license"] == "CC BY-SA 3.0"
    assert meta["creation_date"] == "2011-02-03T10:00:00.000" and meta["line"] == 3
    eggs, pasta = records[1].meta, records[2].meta
    assert eggs["accepted"] is False and eggs["answer_score"] == 4  # the 0-score answer is below min_score
    assert pasta["community_wiki"] is True and pasta["accepted_answer_id"] is None
    assert [(b.line, b.where) for b in bad] == [(8, f"{dump}:8")]
    assert "malformed row" in bad[0].error
    assert stats.questions == 5 and stats.answers == 7
    assert stats.skipped == {
        "closed question": 1,
        "no answer": 1,
        "tag wiki": 1,
        "tag wiki excerpt": 1,
        "answer to a question not in the dump": 1,
        "accepted answer not in the dump": 1,
    }


def test_options_prefer_score_keep_closed_min_score(dump):
    by_score = [r.meta["answer_id"] for r in read(dump, prefer="score", keep_closed=True) if isinstance(r, Record)]
    assert by_score == [2, 6, 8, 12]
    strict = [r.meta["post_id"] for r in read(dump, min_score=5) if isinstance(r, Record)]
    assert strict == [1]  # accepted answers whatever their score; 6 (4) and 12 (3) are below 5
    with pytest.raises(ValueError, match="unknown option"):
        list(read(dump, minscore=3))


def test_thread_mode_is_one_text_with_every_answer_by_score(dump):
    records, _ = _split(list(read(dump, mode="thread", min_score=0)))
    bread = records[0]
    assert bread.text.startswith("# Why is my bread dense?\n\nMy loaf comes out dense.")
    i_top, i_acc = bread.text.index("## Answer (score 25)"), bread.text.index("## Answer (score 7, accepted)")
    assert i_top < i_acc and "Knead it longer." in bread.text[i_top:i_acc]
    assert bread.meta["answer_ids"] == [2, 3] and bread.meta["answer_scores"] == [25, 7]
    eggs = records[1]
    assert eggs.meta["answer_ids"] == [6, 5]  # min_score 0 keeps the 0-score answer


def test_a_cut_off_dump_keeps_the_rows_before_the_cut(tmp_path):
    path = write_dump(tmp_path / "x")
    data = path.read_bytes()
    cut = data.index(b'<row Id="13"') + 40
    path.write_bytes(data[:cut])
    records, bad = _split(list(read(path)))
    assert [r.meta["post_id"] for r in records] == [1, 4]  # 13 is cut off; 12 answers it, so no pair
    assert [b.line for b in bad] == [8, 16] and "malformed row" in bad[1].error


def test_inside_a_7z_with_the_other_tables(tmp_path, dump):
    py7zr = pytest.importorskip("py7zr")
    archive = tmp_path / "cooking.stackexchange.com.7z"
    users = tmp_path / "Users.xml"
    users.write_text('<?xml version="1.0" encoding="utf-8"?>\n<users>\n  <row Id="7" DisplayName="a" />\n</users>\n')
    with py7zr.SevenZipFile(archive, "w") as z:
        z.write(users, "Users.xml")
        z.write(dump, "Posts.xml")
    plain = [r.messages for r in read(dump) if isinstance(r, Record)]
    packed = list(read(archive))
    assert [r.messages for r in packed if isinstance(r, Record)] == plain
    assert packed[1].meta["site"] == "cooking.stackexchange.com" and packed[1].meta["source"] == str(archive)
    assert [b.line for b in packed if isinstance(b, Quarantined)] == [8]
    empty = tmp_path / "none.7z"
    with py7zr.SevenZipFile(empty, "w") as z:
        z.write(users, "Users.xml")
    (only,) = read(empty, site="x")
    assert isinstance(only, Quarantined) and "no Posts.xml" in only.error


def test_post_html_edge_cases():
    assert post_to_text("<p>a &lt;b&gt; &amp;amp; c</p>") == "a <b> &amp; c"
    assert post_to_text("<p>x</p><pre><code>has ``` inside\n</code></pre>") == "x\n\n````\nhas ``` inside\n````"
    assert post_to_text("<p>run <code>a`b</code></p>") == "run ``a`b``"
    assert post_to_text("<h2>Update</h2><ul><li><p>one</p></li><li>two</li></ul>") == "## Update\n\n- one\n- two"


def test_read_documents_and_a_recipe_account_for_every_row(dump, tmp_path):
    (dump.parent / "Users.xml").write_text('<?xml version="1.0"?>\n<users>\n  <row Id="7" />\n</users>\n')
    for declared in (None, "stackexchange"):  # the site's other tables are not posts: not read
        items = list(read_documents([dump.parent], source_format=declared))
        assert sum(isinstance(i, Record) for i in items) == 3
        assert [i.where for i in items if isinstance(i, Quarantined)] == [f"{dump}:8"]
    out = tmp_path / "out"
    body = {
        "inputs": [str(dump)],
        "steps": [{"op": "length_filter", "part": "answer", "unit": "chars", "min": 30}],
        "output": {"path": str(out), "format": "sharegpt"},
    }
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(body), encoding="utf-8")
    stats = Runner(recipes.load(tmp_path / "r.yaml")).run().stats
    dropped = sum(sum(s["dropped"].values()) for s in stats["steps"])
    assert (stats["input"], stats["kept"], dropped, stats["quarantined"]) == (4, 2, 1, 1)
    assert stats["input"] == stats["kept"] + dropped + stats["quarantined"]
    (q,) = [json.loads(line) for line in (out / "quarantine.jsonl").read_text().splitlines()]
    assert q["file"] == str(dump) and q["line"] == 8 and q["error"].startswith(f"{dump}:8: malformed row")
    rows = [json.loads(line) for line in (out / "data-00000.jsonl").read_text().splitlines()]
    assert rows[0]["conversations"][0]["value"].startswith("Why is my bread dense?")
