"""The review web app in real headless Chromium (Debian's /usr/bin/chromium through Playwright's
``executable_path``; no browser download; under ``CI=true`` a missing browser fails, see
test_report_browser.py): log in by link, accept with the keyboard, edit with the mouse, reject with a
reason, walk back and forth, filter the table, two annotators choose in a pairwise task, answer a
questions form with the keyboard — then export and check the files record by record. The item whose
text holds ``<script>`` and ``<img onerror>`` shows that text literally and runs nothing.

Set DATAMILL_REVIEW_SCREENSHOTS=docs to (re)write docs/review-*.png."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from conftest import LF
from sqlalchemy import select
from test_report_browser import CHROMIUM, _require_browser, sync_api
from test_review_http import serving
from test_review_projects import XSS, alpaca_sample
from test_review_questions import QUESTIONS, data_with_candidates, write_yaml
from typer.testing import CliRunner

from datamill.cli import app
from datamill.review import questions
from datamill.review.answers import submit
from datamill.review.project import add_annotator, start
from datamill.review.schema import Annotator, Answer, Assignment, Item
from datamill.review.store import Project

VIEWPORT = {"width": 1000, "height": 700}
# pairwise: what each annotator does per item — prefer candidate 0/1 (wherever it is shown), or a key
PLAN = {("alice", 0): 0, ("bob", 0): 0, ("alice", 1): 1, ("bob", 1): "b", ("alice", 2): "t", ("bob", 2): "t"}


@pytest.fixture(scope="module")
def browser():
    _require_browser()
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("DATAMILL_REVIEW_SCREENSHOTS") or tmp_path / "shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def open_page(browser, base: str):
    """A fresh context (its own cookies) that records dialogs and requests outside the server."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.dialogs, page.foreign = [], []
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    page.on("request", lambda r: None if r.url.startswith(base) else page.foreign.append(r.url))
    return context, page


def login(page, base: str, token: str) -> None:
    page.goto(f"{base}/login?token={token}")
    page.wait_for_selector("#item .turn")


def wait_item(page, n: int) -> None:
    sync_api.expect(page.locator("#item-title")).to_have_text(re.compile(f"^Item {n} "))


def test_sft_review_in_chromium(browser, shots, tmp_path):
    db = tmp_path / "alpaca-demo.db"
    guide = "Accept answers that are correct and helpful.\nEdit small mistakes; reject the rest with a reason."
    s = start(alpaca_sample(tmp_path / "in.jsonl", 4), db, "sft", annotators=["alice"], guidelines=guide)
    with serving(db) as base:
        context, page = open_page(browser, base)
        login(page, base, s.tokens["alice"])
        assert page.url == f"{base}/#a=1"
        item = page.locator("#item")
        item.get_by_text(XSS["instruction"], exact=True).wait_for()  # the markup shows as text
        item.get_by_text(XSS["output"], exact=True).wait_for()
        assert item.locator("script").count() == 0 and item.locator("img").count() == 0
        assert page.evaluate("document.querySelectorAll('img').length") == 0
        page.keyboard.press("g")
        guidelines = page.locator("#guidelines")
        assert guidelines.is_visible() and "Edit small mistakes" in guidelines.inner_text()
        page.screenshot(path=str(shots / "review-focus.png"))
        page.keyboard.press("g")
        page.keyboard.press("?")
        assert page.locator("#help").is_visible() and "edit every turn" in page.locator("#help").inner_text()
        page.screenshot(path=str(shots / "review-help.png"))
        page.keyboard.press("Escape")
        assert not page.locator("#help").is_visible()

        page.keyboard.press("a")  # accept with the keyboard
        wait_item(page, 2)
        assert page.locator("#progress").inner_text() == "1 of 4 done"

        page.locator("button[data-action=edit]").click()  # edit with the mouse
        answer = page.locator("textarea[data-key='messages.1']")
        assert page.locator("textarea.edit").count() == 2  # every turn is editable in place
        answer.click()
        answer.fill("Edited in the browser: <b>bold?</b>")
        page.screenshot(path=str(shots / "review-edit.png"))
        page.locator("button[data-action=save]").click()
        wait_item(page, 3)

        page.keyboard.press("r")  # reject with a reason, from the keyboard
        page.locator("#reason").wait_for()
        page.keyboard.type("not helpful")
        page.keyboard.press("Enter")
        wait_item(page, 4)
        page.keyboard.press("k")  # back to the rejected one: the answer is shown
        wait_item(page, 3)
        assert "Your answer: reject" in page.locator("#actions").inner_text()
        page.keyboard.press("j")
        wait_item(page, 4)

        page.goto(f"{base}/table")
        page.wait_for_selector("#rows tr")
        assert page.locator("#rows tr").count() == 4
        page.select_option("select[name=status]", "answered")
        page.locator("#filters button[type=submit]").click()
        sync_api.expect(page.locator("#rows tr")).to_have_count(3)
        page.fill("input[name=q]", "script")
        page.locator("#filters button[type=submit]").click()
        sync_api.expect(page.locator("#rows tr")).to_have_count(1)
        page.locator("#rows").get_by_text("<script>alert(1)</script>", exact=False).wait_for()
        page.fill("input[name=q]", "")
        page.select_option("select[name=status]", "")
        page.locator("#filters button[type=submit]").click()
        sync_api.expect(page.locator("#rows tr")).to_have_count(4)
        page.screenshot(path=str(shots / "review-table.png"))
        assert page.dialogs == [] and page.foreign == []  # nothing ran, nothing was fetched from elsewhere
        context.close()

    result = CliRunner().invoke(app, ["review", "export", str(db), "-o", str(tmp_path / "out"), "--to", "sharegpt"])
    assert result.exit_code == 0, result.output
    assert "items 4 = written 2 + dropped 1 + pending 1" in result.output
    rows = [json.loads(x) for x in (tmp_path / "out" / "data-00000.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 2
    first, second = rows
    assert [t["value"] for t in first["conversations"]] == [XSS["instruction"], XSS["output"]]
    assert first["meta"]["review"]["decision"] == "accept"
    assert second["conversations"][-1]["value"] == "Edited in the browser: <b>bold?</b>"
    assert second["meta"]["review"]["decision"] == "edit"
    assert second["meta"]["review"]["after"]["messages"][1]["content"] == "Edited in the browser: <b>bold?</b>"
    assert second["meta"]["review"]["before"]["messages"][0]["content"] == second["conversations"][0]["value"]
    dropped = [json.loads(x) for x in (tmp_path / "out" / "dropped.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [d["reason"] for d in dropped] == ["rejected by review: alice: not helpful"]


def test_pairwise_review_by_two_annotators_in_chromium(browser, shots, tmp_path):
    rows = json.loads((LF / "dpo_en_demo.json").read_text(encoding="utf-8"))[:3]
    src = tmp_path / "dpo.json"
    src.write_text(json.dumps(rows), encoding="utf-8")
    db = tmp_path / "dpo-demo.db"
    s = start(src, db, "pairwise", annotators=["alice", "bob"], overlap=2, seed=11)
    shown = _orders(Project(db))
    with serving(db) as base:
        picked = {}
        for name in ("alice", "bob"):
            context, page = open_page(browser, base)
            login(page, base, s.tokens[name])
            for seq in range(3):
                wait_item(page, seq + 1)
                order, cands = shown[(name, seq)]
                for side, index in zip("AB", order, strict=True):  # each side shows the candidate stored for it
                    text = page.locator(f".candidate[data-side={side}]").inner_text()
                    assert " ".join(cands[index]["text"].split())[:60] in " ".join(text.split())
                if name == "alice" and seq == 0:
                    page.screenshot(path=str(shots / "review-pairwise.png"))
                want = PLAN[(name, seq)]
                if isinstance(want, str):
                    page.keyboard.press(want)  # t: tie, b: both bad
                else:
                    side = "ab"[order.index(want)]  # where this annotator sees the candidate to prefer
                    picked[(name, seq)] = want
                    if name == "alice" and seq == 0:
                        page.locator(f"button[data-action={side}]").click()  # the mouse
                    else:
                        page.keyboard.press("1" if side == "a" else "2")  # the keyboard
                sync_api.expect(page.locator("#item-title")).not_to_have_text(re.compile(f"^Item {seq + 1} "))
            assert "Your queue is done" in page.locator("#done-all").inner_text()
            if name == "bob":
                page.goto(f"{base}/stats")
                page.wait_for_selector("#agreement tbody tr")
                assert page.locator("#people tbody tr").count() == 2
                page.screenshot(path=str(shots / "review-stats.png"))
            assert page.dialogs == [] and page.foreign == []
            context.close()

    result = CliRunner().invoke(app, ["review", "export", str(db), "-o", str(tmp_path / "out"), "--to", "trl"])
    assert result.exit_code == 0, result.output
    assert "items 3 = written 1 + dropped 2 + pending 0" in result.output
    pairs = [json.loads(x) for x in (tmp_path / "out" / "data-00000.jsonl").read_text(encoding="utf-8").splitlines()]
    cands = shown[("alice", 0)][1]
    assert len(pairs) == 1 and picked[("alice", 0)] == picked[("bob", 0)] == 0
    assert pairs[0]["chosen"][-1]["content"] == cands[0]["text"]
    assert pairs[0]["rejected"][-1]["content"] == cands[1]["text"]
    assert [a["name"] for a in pairs[0]["meta"]["review"]["annotators"]] == ["alice", "bob"]
    dropped = [json.loads(x) for x in (tmp_path / "out" / "dropped.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [d["reason"] for d in dropped] == [
        "reviewers disagree (1 × candidate 1 (rejected), 1 × both_bad)",
        "tie: reviewers found neither answer better",
    ]


def test_rating_in_chromium(browser, shots, tmp_path):
    db = tmp_path / "rating-demo.db"
    criteria = ["helpfulness", "harmlessness"]
    s = start(alpaca_sample(tmp_path / "in.jsonl", 3), db, "rating", annotators=["alice"], criteria=criteria, scale=5)
    with serving(db) as base:
        context, page = open_page(browser, base)
        login(page, base, s.tokens["alice"])
        page.keyboard.press("4")  # helpfulness, then the highlight moves on
        sync_api.expect(page.locator(".criterion.active")).to_have_attribute("data-criterion", "harmlessness")
        page.keyboard.press("2")
        page.screenshot(path=str(shots / "review-rating.png"))
        page.keyboard.press("Enter")
        wait_item(page, 2)
        page.locator("[data-criterion=helpfulness] button[data-score='5']").click()
        page.locator("[data-criterion=harmlessness] button[data-score='5']").click()
        page.locator("button[data-action=rate]").click()
        wait_item(page, 3)
        page.locator("button[data-action=rate]").click()  # not every criterion rated: refused on the page
        sync_api.expect(page.locator("#status")).to_have_text(re.compile("helpfulness, harmlessness"))
        assert page.dialogs == [] and page.foreign == []
        context.close()
    result = CliRunner().invoke(app, ["review", "export", str(db), "-o", str(tmp_path / "out"), "--to", "datamill"])
    assert "items 3 = written 2 + dropped 0 + pending 1" in result.output
    rows = [json.loads(x) for x in (tmp_path / "out" / "data-00000.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["meta"]["scores"] for r in rows] == [{"helpfulness": 4, "harmlessness": 2}, {"helpfulness": 5,
                                                   "harmlessness": 5}]  # fmt: skip
    assert rows[0]["messages"][0]["content"] == XSS["instruction"]


def _orders(project: Project) -> dict[tuple[str, int], tuple[list[int], list[dict]]]:
    """(annotator, item seq) → the A/B order stored for them and the item's two candidates."""
    with project.read() as ses:
        rows = ses.execute(
            select(Annotator.name, Item.seq, Assignment.shown, Item.payload)
            .join(Assignment, Assignment.annotator_id == Annotator.id)
            .join(Item, Item.id == Assignment.item_id)
        ).all()
    return {(name, seq): (shown, payload["candidates"]) for name, seq, shown, payload in rows}


def test_questions_form_by_keyboard_in_chromium(browser, shots, tmp_path):
    src, recs = data_with_candidates(tmp_path / "in.jsonl", 2)
    asked = [q for q in QUESTIONS if q["name"] in ("topic", "flaws", "quality", "note", "best")]
    db = tmp_path / "questions-demo.db"
    s = start(src, db, "sft", annotators=["alice"], questions=questions.load(write_yaml(tmp_path, asked), "sft"))
    with serving(db) as base:
        context, page = open_page(browser, base)
        login(page, base, s.tokens["alice"])
        assert page.locator("#questions fieldset").count() == 5 and page.locator("#item .rank .candidate").count() == 3
        page.keyboard.press("q")  # into the questions: the first label has the focus
        sync_api.expect(page.locator("[data-question=topic] input").first).to_be_focused()
        page.keyboard.press("ArrowDown")  # radio group: the next label, chosen
        page.keyboard.press("Tab")
        page.keyboard.press("Space")  # the first flaw ticked
        page.keyboard.press("Tab")
        page.keyboard.press("Tab")
        page.keyboard.press("Space")  # … and the third
        page.keyboard.press("Tab")
        for key in ("ArrowRight", "ArrowRight", "ArrowRight", "Tab", "ArrowRight"):  # helpfulness 4, clarity 2
            page.keyboard.press(key)
        page.keyboard.press("Tab")
        page.keyboard.type("fine <b>as is</b>")
        for rank in ("2", "3", "1"):  # each candidate's rank: Tab to its select, type the number
            page.keyboard.press("Tab")
            page.keyboard.type(rank)
        page.screenshot(path=str(shots / "review-questions.png"))
        page.keyboard.press("Escape")  # back out to the shortcuts
        page.keyboard.press("a")
        wait_item(page, 2)
        assert page.locator("[data-question=topic] input:checked").count() == 0  # a fresh form for item 2
        page.keyboard.press("a")  # topic is required: refused, said on the page
        sync_api.expect(page.locator("#status")).to_have_text(re.compile("question 'topic' needs an answer"))
        assert page.dialogs == [] and page.foreign == []
        context.close()
    with Project(db).read() as ses:
        (answer,) = ses.scalars(select(Answer)).all()
    assert answer.decision == "accept" and answer.responses == {
        "topic": "writing", "flaws": ["wrong", "too long"], "quality": {"helpfulness": 4, "clarity": 2},
        "note": "fine <b>as is</b>", "best": [2, 3, 1],
    }  # fmt: skip


def test_adjudicator_settles_a_conflict_in_chromium(browser, shots, tmp_path):
    db = tmp_path / "conflicts.db"
    start(alpaca_sample(tmp_path / "in.jsonl", 3), db, "sft", annotators=["alice", "bob"], overlap=2)
    judge = add_annotator(Project(db), "judge", role="adjudicator")
    project = Project(db)
    for name, body in (("alice", {"decision": "edit", "edits": {"messages.1": "Hello, fixed by alice."}}),
                       ("bob", {"decision": "reject", "reason": "unsafe markup"})):  # fmt: skip
        with project.read() as ses:
            who = ses.scalar(select(Annotator).where(Annotator.name == name))
            first = ses.scalar(select(Assignment.id).where(Assignment.annotator_id == who.id, Assignment.position == 0))
        submit(project, who, first, body)  # the XSS item: alice fixed it, bob rejected it
    with serving(db) as base:
        context, page = open_page(browser, base)
        page.goto(f"{base}/login?token={judge}")
        page.wait_for_url(f"{base}/")  # the login page moves on to the focus view
        page.goto(f"{base}/conflicts")
        page.locator("#conflict-rows tr").first.click()
        page.wait_for_selector(".vote[data-annotator=bob]")
        assert "unsafe markup" in page.locator(".vote[data-annotator=bob]").inner_text()
        assert "Hello, fixed by alice." in page.locator(".vote[data-annotator=alice]").inner_text()
        assert page.locator("#conflict-item img").count() == 0  # the record's <img onerror> is text
        page.screenshot(path=str(shots / "review-conflicts.png"))
        page.get_by_role("button", name="Use alice's edit").click()
        sync_api.expect(page.locator("#conflict-rows td").nth(1)).to_have_text("adjudicated")
        assert page.dialogs == [] and page.foreign == []
        context.close()
    out = tmp_path / "out"
    assert CliRunner().invoke(app, ["review", "export", str(db), "-o", str(out), "--to", "alpaca"]).exit_code == 0
    first = json.loads((out / "data-00000.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert first["output"] == "Hello, fixed by alice." and first["meta"]["review"]["adjudicator"] == "judge"
