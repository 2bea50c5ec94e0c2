"""Web archives (issue 19, items 1–2): WARC files written here with warcio from the real HTML documents
in tests/data/docs (UTF-8, UTF-16, cp1252) plus a GBK Chinese page from alpaca_zh_demo, a request
record, an image, a 404, a member with a bad header and truncated members; WET, ARC and an
uncompressed WARC. Every page is accounted for, the bad members are quarantined with file and byte
offset and the rest is still read; then url_filter and URL dedup in a recipe."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pytest
import yaml
from conftest import DATA, LF
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from datamill.clean.url_filter import Rules, UrlFilter, normalize_url, url_language
from datamill.dataset import Quarantined
from datamill.ingest import read_documents
from datamill.ingest.warc import WarcStats, read_archive
from datamill.ops.base import OpContext
from datamill.pipeline import recipe as recipes
from datamill.pipeline.runner import Runner
from datamill.record import Record

DOCS = DATA / "docs"
PAGES = {  # file → a phrase of its main text
    "example-10k-1p.html": "TRANSITION REPORT PURSUANT",
    "example-steelJIS-datasheet-utf-16.html": "Japanese Steels and Alloys",
    "example-with-scripts.html": "Russian Offensive Campaign Assessment",
    "fake-html-cp1252.html": "CP1252",
}


def _member(url: str, body: bytes, ctype: str = "text/html", status: str = "200 OK", kind: str = "response") -> bytes:
    buf = io.BytesIO()
    writer = WARCWriter(buf, gzip=True)
    if kind == "conversion":
        rec = writer.create_warc_record(url, "conversion", payload=io.BytesIO(body), warc_content_type="text/plain")
    else:
        http = StatusAndHeaders(
            status, [("Content-Type", ctype)], protocol="HTTP/1.1", is_http_request=kind == "request"
        )
        rec = writer.create_warc_record(url, kind, payload=io.BytesIO(body), http_headers=http)
    writer.write_record(rec)
    return buf.getvalue()


def _chinese_page() -> tuple[bytes, str]:
    rows = json.loads((LF / "alpaca_zh_demo.json").read_text(encoding="utf-8"))
    text = rows[3]["output"]
    nav = "<nav>首页 | 关于</nav>"
    html = f"<html><head><title>问答</title></head><body>{nav}<article><p>{text}</p></article></body></html>"
    return html.encode("gbk", errors="ignore"), text.encode("gbk", errors="ignore").decode("gbk")[:20]


@pytest.fixture
def crawl(tmp_path) -> tuple[Path, dict]:
    """A .warc.gz of every kind of member, and what each member is (by order)."""
    zh_body, zh_phrase = _chinese_page()
    good = [_member(f"https://www.example.com/{name}?utm_source=x", (DOCS / name).read_bytes()) for name in PAGES]
    bad_header = gzip.compress(
        gzip.decompress(_member("https://bad.example/x", b"<html>x</html>")).replace(b"WARC/1", b"WARX/9", 1)
    )
    truncated = _member(
        "https://trunc.example/y", b"<html><body>" + b"<p>words and words</p>" * 400 + b"</body></html>"
    )
    members = [
        good[0],
        _member("https://www.example.com/a", b"", kind="request"),
        bad_header,
        good[1],
        _member("https://img.example.com/1.png", b"\x89PNG\r\n\x1a\n", ctype="image/png"),
        truncated[: len(truncated) // 2],  # cut short, followed by more members
        good[2],
        _member("https://www.example.com/gone", b"<html>not found</html>", status="404 Not Found"),
        _member("https://news.example.cn/zh-cn/1", zh_body, ctype="text/html; charset=GBK"),
        good[3],
        _member("http://example.com/example-10k-1p.html/", (DOCS / "example-10k-1p.html").read_bytes()),  # same URL
        truncated[: len(truncated) // 3],  # the file ends inside a member
    ]
    path = tmp_path / "crawl.warc.gz"
    path.write_bytes(b"".join(members))
    offsets, at = [], 0
    for m in members:
        offsets.append(at)
        at += len(m)
    return path, {"offsets": offsets, "zh": zh_phrase}


def test_every_member_is_a_page_a_skip_or_a_quarantined_entry_with_its_offset(crawl):
    path, info = crawl
    stats = WarcStats()
    items = list(read_archive(path, extract=True, stats=stats))
    pages = [i for i in items if isinstance(i, Record)]
    bad = [i for i in items if isinstance(i, Quarantined)]
    offsets = info["offsets"]
    assert [p.meta["offset"] for p in pages] == [offsets[i] for i in (0, 3, 6, 8, 9, 10)]
    assert [b.where for b in bad] == [f"{path}@{offsets[i]}" for i in (2, 5, 11)]
    assert "malformed record" in bad[0].error and "corrupt gzip member" in bad[1].error
    assert "truncated gzip member" in bad[2].error
    assert stats.pages == 6
    assert stats.skipped == {"request record": 1, "image/png response": 1, "HTTP status 404": 1}
    texts = [p.text for p in pages]
    for (name, phrase), text in zip(PAGES.items(), [texts[0], texts[1], texts[2], texts[4]], strict=True):
        assert phrase in text, name
        assert "<" not in text[:200]  # extracted, not markup
    zh = pages[3]
    assert info["zh"] in zh.text and zh.meta["charset"] == "gbk" and "首页" not in zh.text  # navigation removed
    assert zh.meta["url"] == "https://news.example.cn/zh-cn/1" and zh.meta["domain"] == "news.example.cn"
    first = pages[0].meta
    assert first["warc_record_id"].startswith("<urn:uuid:") and first["warc_date"].startswith("20")
    assert first["source"] == str(path) and first["doc_type"] == "html"


def test_wet_arc_and_uncompressed_warc(tmp_path):
    wet = tmp_path / "c.warc.wet.gz"
    text = "Plain extracted text of a page, as Common Crawl's WET files carry it.\n第二行中文。"
    wet.write_bytes(_member("https://example.org/p", text.encode(), kind="conversion"))
    (rec,) = read_archive(wet)
    assert rec.text == text and rec.meta["doc_type"] == "wet"

    body = (
        b"<html><head><title>ARC page</title></head><body><p>"
        + b"An old page about rivers. " * 30
        + b"</p></body></html>"
    )
    http = b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n" + body
    desc_body = b"1 0 Test\nURL IP-address Archive-date Content-type Archive-length\n"
    desc = b"filedesc://t.arc 0.0.0.0 20050614070159 text/plain %d\n" % len(desc_body) + desc_body + b"\n"
    page = b"http://old.example.org/p.html 10.0.0.1 20050614070200 text/html %d\n" % len(http) + http + b"\n"
    arc = tmp_path / "t.arc.gz"
    arc.write_bytes(gzip.compress(desc) + gzip.compress(page))
    stats = WarcStats()
    (rec,) = read_archive(arc, extract=True, stats=stats)
    assert "An old page about rivers." in rec.text and rec.meta["url"] == "http://old.example.org/p.html"
    assert rec.meta["warc_date"] == "2005-06-14T07:02:00Z" and rec.meta["warc_record_id"] is None
    assert stats.skipped == {"warcinfo record": 1}

    plain = tmp_path / "p.warc"
    members = [gzip.decompress(_member(f"https://example.com/{n}", (DOCS / n).read_bytes())) for n in PAGES]
    plain.write_bytes(members[0] + b"garbage that is no record\r\n" + b"".join(members[1:]))
    items = list(read_archive(plain, extract=True))
    assert [type(i).__name__ for i in items] == ["Record", "Quarantined", "Record", "Record", "Record"]
    assert items[1].where == f"{plain}@{len(members[0])}"


def test_ingest_command_reads_archives_streaming(crawl):
    path, _ = crawl
    items = list(read_documents([path]))
    assert sum(isinstance(i, Record) for i in items) == 6 and sum(isinstance(i, Quarantined) for i in items) == 3


def test_url_rules_normalization_and_language_hints(tmp_path):
    listing = tmp_path / "block.txt"
    listing.write_text(
        "# ads and gambling\nads.example.net\nsubstring:/banner/\nregex:casino|poker\n", encoding="utf-8"
    )
    rules = Rules([f"file:{listing}", "spam.org"])
    assert rules.match("https://x.ads.example.net/p", "x.ads.example.net") == "domain"
    assert rules.match("https://ads.example.net.evil.com/", "ads.example.net.evil.com") is None
    assert rules.match("https://www.spam.org/", "www.spam.org") == "domain"
    assert rules.match("https://site.com/img/banner/1", "site.com") == "substring or regex"
    assert rules.match("https://site.com/Online-Casino", "site.com") == "substring or regex"
    assert rules.match("https://site.com/news", "site.com") is None
    assert (
        normalize_url("HTTPS://WWW.Example.com:443/a/b/?utm_source=t&b=2&a=1#top") == "http://example.com/a/b?a=1&b=2"
    )
    assert normalize_url("http://example.com:8080/") == "http://example.com:8080"
    assert url_language("https://a.example.cn/x") == "zh" and url_language("https://a.com/zh-tw/news") == "zh"
    assert url_language("https://a.com/en/news") == "en" and url_language("https://a.com/news") is None

    op = UrlFilter(
        UrlFilter.Config(block=["spam.org", "regex:casino"], allow=["substring:casino-history"]),
        OpContext(0, 0, tmp_path),
    )
    rec = Record(text="t", meta={"url": "https://spam.org/x"})
    assert op.reason(rec) == "blocked URL (domain)" and rec.meta["url_normalized"] == "http://spam.org/x"
    assert op.reason(Record(text="t", meta={"url": "https://a.com/casino"})) == "blocked URL (substring or regex)"
    assert op.reason(Record(text="t", meta={"url": "https://a.com/casino-history"})) is None  # allowed
    assert op.reason(Record(text="t")) is None and op.counters["no_url"] == 1
    with pytest.raises(Exception, match="bad regex"):
        UrlFilter(UrlFilter.Config(block=["regex:("]), OpContext(0, 0, tmp_path)).lists  # noqa: B018


def test_crawl_recipe_accounts_for_every_member(crawl, tmp_path):
    path, _ = crawl
    out = tmp_path / "out"
    body = {
        "inputs": [str(path)],
        "steps": [
            {"op": "url_filter", "block": ["news.example.cn"]},
            {"op": "html_to_text"},
            {"op": "exact_dedup", "field": "url_normalized"},
        ],
        "output": {"path": str(out), "format": "pretrain"},
    }
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(body), encoding="utf-8")
    stats = Runner(recipes.load(tmp_path / "r.yaml")).run().stats
    assert (stats["input"], stats["quarantined"], stats["kept"]) == (9, 3, 4)
    dropped = [json.loads(line) for line in (out / "dropped.jsonl").read_text().splitlines()]
    assert sorted(d["reason"] for d in dropped) == ["blocked URL (domain)", "exact duplicate (url_normalized)"]
    rows = [json.loads(line) for line in (out / "data-00000.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all("<html" not in r["text"].lower() for r in rows)
    quarantined = [json.loads(line) for line in (out / "quarantine.jsonl").read_text().splitlines()]
    assert all(q["error"].startswith(f"{path}@") for q in quarantined)


def test_shipped_crawl_recipe_runs_on_its_sample(tmp_path):
    root = Path(__file__).resolve().parents[1]
    result = Runner(recipes.load(root / "recipes" / "pretrain-from-crawl.yaml", output=str(tmp_path / "o"))).run()
    stats = result.stats
    assert stats["input"] == 60 and stats["quarantined"] == 0
    assert stats["input"] == stats["kept"] + sum(sum(s["dropped"].values()) for s in stats["steps"])
    url_dedup = next(s for s in stats["steps"] if s["op"] == "exact_dedup")
    assert url_dedup["dropped"] == {"exact duplicate (url_normalized)": 1}  # the page served twice
    rows = [json.loads(line) for line in (tmp_path / "o" / "data-00000.jsonl").read_text().splitlines()]
    assert rows and not any("cookie" in r["text"].lower() or "<script" in r["text"] for r in rows)
    assert any("\u4e00" <= ch <= "\u9fff" for r in rows for ch in r["text"])  # Chinese pages, GBK ones too
