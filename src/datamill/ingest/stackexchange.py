"""Stack Exchange data dumps — a site's ``Posts.xml``, or the ``.7z`` it ships in — → question + answer
dialogues (``mode: sft``) or whole threads as pretraining text (``mode: thread``).

The XML is streamed with ``lxml.etree.iterparse``, each row cleared once read, and the rows go to a
throwaway SQLite file (``dumps.spill``): an answer can come millions of rows after its question, so
nothing short of the whole dump would otherwise have to stay in memory. A syntax error stops
``iterparse`` for good, so the reading goes on line by line (the dumps hold one ``<row>`` per line)
from the row after the last one parsed: each malformed row is one quarantined ``file:line``, the rest
is read. A ``.7z`` (``py7zr``) is decompressed in a thread into a bounded queue, never to disk.

``sft``: the question (title + body) as the user turn, its accepted answer — else its best-scored
answer with at least ``min_score`` — as the assistant's. ``thread``: the question, then every answer
with at least ``min_score`` (the accepted one always), best-scored first. Post HTML becomes text:
code blocks fenced (with the ``lang-…`` hint), inline code in backticks, links as markdown, lists as
``-`` / ``1.`` items, the rest through ``datamill.clean.html``'s fragment converter.

Closed questions (``ClosedDate``) are skipped unless ``keep_closed``; community-wiki posts
(``CommunityOwnedDate``) are kept and flagged; deleted posts are not in the public dumps — an
``AcceptedAnswerId`` or ``ParentId`` naming one is treated as absent. What is not a record is counted
in ``StackStats.skipped``.
"""

from __future__ import annotations

import html
import io
import itertools
import queue
import re
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

import orjson

from datamill.dataset import Quarantined
from datamill.ingest.dumps import Line, bad_row, line_where, lines, options, spill
from datamill.record import Message, Record

FORMAT = "stackexchange"
PER_ROW = True  # a bad row is one quarantined row, the rest of the file is read
POSTS = "posts.xml"
LICENSE = "CC BY-SA"  # every dump's licence; rows since 2019 name the version in ContentLicense
READ_SIZE = 1 << 20
_SITE_7Z = re.compile(
    r"(?:stackexchange|stackoverflow|mathoverflow|askubuntu|serverfault|superuser|stackapps)\.\w+(?:-posts)?\.7z$", re.I
)
OTHER_TABLES = {f"{t}.xml" for t in ("users", "comments", "badges", "votes", "posthistory", "postlinks", "tags")}
POST_TYPES = {
    3: "orphaned tag wiki",
    4: "tag wiki excerpt",
    5: "tag wiki",
    6: "moderator nomination",
    7: "wiki placeholder",
    8: "privilege wiki",
}


def claims(path: str | Path, fmt: str | None = None) -> bool:
    """``Posts.xml`` (and the other tables beside it, which yield nothing), a site's ``.7z``
    (``stats.stackexchange.com.7z``, ``stackoverflow.com-Posts.7z``), or any file declared
    ``format: stackexchange``."""
    if fmt is not None:
        return fmt == FORMAT
    name = Path(path).name.lower()
    if name in OTHER_TABLES:  # a site's other tables, beside its Posts.xml: not read (see ``read``)
        return Path(path).with_name("Posts.xml").exists()
    return name == POSTS or bool(_SITE_7Z.search(name))


@dataclass
class Options:
    mode: Literal["sft", "thread"] = "sft"
    min_score: int = 1  # an answer other than the accepted one needs this score
    prefer: Literal["accepted", "score"] = "accepted"  # sft: the accepted answer, or the best-scored one
    min_question_score: int | None = None
    keep_closed: bool = False
    site: str | None = None  # default: from the folder (stats.stackexchange.com/Posts.xml) or the .7z name
    workdir: str | None = None  # where the spill database goes (default: the system's temporary folder)

    def __post_init__(self) -> None:
        if self.mode not in ("sft", "thread"):
            raise ValueError(f"stackexchange reader: mode must be sft or thread, not {self.mode!r}")
        if self.prefer not in ("accepted", "score"):
            raise ValueError(f"stackexchange reader: prefer must be accepted or score, not {self.prefer!r}")


@dataclass
class StackStats:
    """Rows read and what did not become a record, by reason."""

    questions: int = 0
    answers: int = 0
    records: int = 0
    skipped: Counter = field(default_factory=Counter)


where = line_where


def site_of(path: str | Path) -> str | None:
    p = Path(path)
    if p.suffix.lower() == ".7z":
        return re.sub(r"-posts$", "", p.name[:-3], flags=re.I)
    return p.parent.name if "." in p.parent.name else None


# ---- reading rows --------------------------------------------------------------------------------
@dataclass
class _Row:
    line: int | None
    attrs: dict[str, str] | None
    error: str | None = None
    raw: str | None = None
    offset: int | None = None


class _Kept:
    """The stream as the parser reads it, keeping its last bytes (whole lines): after a syntax error the
    rows are read again, line by line, from the one after the last row parsed."""

    KEEP = 8 << 20

    def __init__(self, f: BinaryIO):
        self.f = f
        self.kept = bytearray()
        self.line = 1  # the line number of kept[0]
        self.offset = 0  # the file offset of kept[0]

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n if n and n > 0 else READ_SIZE)
        self.kept += data
        if len(self.kept) > 2 * self.KEEP:
            cut = self.kept.find(b"\n", len(self.kept) - self.KEEP) + 1
            if cut > 0:
                self.line += self.kept.count(b"\n", 0, cut)
                self.offset += cut
                del self.kept[:cut]
        return data

    def lines_from(self, line: int) -> Iterator[Line]:
        """Each line from ``line`` on (or from the first one still kept), then the rest of the stream."""
        n, pos = self.line, 0
        while n < line and (nl := self.kept.find(b"\n", pos)) >= 0:
            n, pos = n + 1, nl + 1
        head, self.kept = bytes(self.kept[pos:]), bytearray()
        yield from lines(itertools.chain([head], iter(lambda: self.f.read(READ_SIZE), b"")), n, self.offset + pos)


def _rows(f: BinaryIO) -> Iterator[_Row]:
    """Every ``<row>``'s attributes with its line; malformed rows as errors, the rest still read."""
    from lxml import etree

    kept = _Kept(f)
    last = 0
    try:
        for _, el in etree.iterparse(kept, events=("end",), tag="row", resolve_entities=False, no_network=True):
            last = el.sourceline or last
            yield _Row(el.sourceline, dict(el.attrib))
            el.clear()
            while el.getprevious() is not None:
                del el.getparent()[0]
        return
    except etree.XMLSyntaxError:
        pass
    yield from _line_rows(kept.lines_from(last + 1))


def _line_rows(numbered: Iterator[Line]) -> Iterator[_Row]:
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    ended, last_ok, n, offset = False, False, 0, 0
    for line in numbered:
        n, offset = line.number, line.offset
        if line.data is None:
            yield _Row(n, None, line.error, None, offset)
            last_ok = False
            continue
        s = line.data.strip()
        if not s or s.startswith(b"<?xml") or s == b"<posts>":
            continue
        if s == b"</posts>":
            ended = True
            continue
        text = s[:2000].decode("utf-8", "replace")
        if not s.startswith(b"<row"):
            yield _Row(n, None, "not a <row> line", text, offset)
            last_ok = False
            continue
        try:
            el = etree.fromstring(s, parser)
        except etree.XMLSyntaxError as e:
            yield _Row(n, None, f"malformed row ({e})", text, offset)
            last_ok = False
            continue
        yield _Row(n, dict(el.attrib))
        last_ok = True
    if not ended and last_ok:
        yield _Row(None, None, "the file ends without </posts> (truncated?)", None, offset)


@contextmanager
def _open(path: Path) -> Iterator[BinaryIO]:
    if path.suffix.lower() == ".7z":
        with _seven_zip(path) as f:
            yield f
    else:
        with open(path, "rb") as f:
            yield f


class _Stopped(Exception):
    pass


@contextmanager
def _seven_zip(path: Path) -> Iterator[BinaryIO]:
    """``Posts.xml`` inside a ``.7z``, decompressed by ``py7zr`` in a thread into a bounded queue."""
    import py7zr
    from py7zr.io import NullIO, Py7zIO, WriterFactory

    with py7zr.SevenZipFile(path) as z:
        names = [n for n in z.getnames() if n.replace("\\", "/").rsplit("/", 1)[-1].lower() == POSTS]
    if not names:
        raise ValueError("no Posts.xml in the archive")
    q: queue.Queue = queue.Queue(maxsize=16)
    stop = threading.Event()

    def put(item: Any) -> None:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _Stopped

    class Sink(Py7zIO):
        def write(self, s: bytes | bytearray) -> int:
            view = memoryview(s)  # py7zr hands over blocks of up to 128 MB: queued a MiB at a time
            for at in range(0, len(view), READ_SIZE):
                put(bytes(view[at : at + READ_SIZE]))
            return len(s)

        def read(self, size: int | None = None) -> bytes:
            return b""

        def seek(self, offset: int, whence: int = 0) -> int:
            return 0

        def flush(self) -> None:
            return None

        def size(self) -> int:
            return 0

    class Factory(WriterFactory):
        def create(self, filename: str) -> Py7zIO:
            return Sink() if filename == names[0] else NullIO()

    def run() -> None:
        try:
            with py7zr.SevenZipFile(path) as z:
                z.extract(targets=[names[0]], factory=Factory())
            put(None)
        except _Stopped:
            pass
        except Exception as e:  # a damaged archive: the reader raises it where the data stops
            with suppress(_Stopped):
                put(e)

    worker = threading.Thread(target=run, name="datamill-7z", daemon=True)
    worker.start()
    try:
        yield _QueueReader(q)  # type: ignore[misc]
    finally:
        stop.set()
        worker.join()


class _QueueReader(io.RawIOBase):
    def __init__(self, q: queue.Queue):
        self.q, self.buf, self.done = q, b"", False

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        while not self.buf and not self.done:
            item = self.q.get()
            if item is None:
                self.done = True
            elif isinstance(item, BaseException):
                self.done = True
                raise item
            else:
                self.buf = item
        n = len(self.buf) if n is None or n < 0 else n
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


# ---- posts → text --------------------------------------------------------------------------------
_LIST = re.compile(r"<(ul|ol)\b[^>]*>((?:(?!<(?:ul|ol)\b).)*?)</\1\s*>", re.I | re.S)
_ITEM = re.compile(r"\s*<li\b[^>]*>\s*(?:<p\b[^>]*>)?", re.I)
_ITEM_END = re.compile(r"(?:</p\s*>\s*)?</li\s*>", re.I)
_HEADING = re.compile(r"<h([1-6])\b[^>]*>(.*?)</h\1\s*>", re.I | re.S)
_LINK = re.compile(r"<a\b[^>]*?\bhref\s*=\s*[\"']([^\"']*)[\"'][^>]*>(.*?)</a\s*>", re.I | re.S)
_IMG = re.compile(r"<img\b[^>]*?(?:\balt\s*=\s*[\"']([^\"']*)[\"'])?[^>]*>", re.I)
_PRE = re.compile(r"<pre\b([^>]*)>(.*?)</pre\s*>", re.I | re.S)
_CODE = re.compile(r"<code\b[^>]*>(.*?)</code\s*>", re.I | re.S)
_LANG = re.compile(r"\b(?:lang|language)-([\w+#.-]+)")
_TAG = re.compile(r"<[^<>]+>")
_ASIDE = re.compile("\ue000(\\d+)\ue001")


def post_to_text(body: str) -> str:
    """A post's HTML as markdown-ish text: code blocks fenced, inline code in backticks, HTML gone."""
    from datamill.clean.html import html_fragment_to_text

    body = _lists(body)
    body = _HEADING.sub(lambda m: f"\n\n{'#' * int(m.group(1))} {m.group(2).strip()}\n\n", body)
    body = _LINK.sub(_link, body)
    body = _IMG.sub(lambda m: m.group(1) or "", body)
    code: list[str] = []  # set aside, so that nothing in the converter sees code

    def aside(text: str) -> str:
        code.append(text)
        return f"\ue000{len(code) - 1}\ue001"

    body = _PRE.sub(lambda m: f"\n\n{aside(_fence(m))}\n\n", body)
    body = _CODE.sub(lambda m: aside(_inline(m)), body)
    text = html_fragment_to_text(f"<div>{body}</div>")  # wrapped: entities are decoded even without tags
    return _ASIDE.sub(lambda m: code[int(m.group(1))], text)


def _lists(body: str) -> str:
    def one(m: re.Match) -> str:
        items = _ITEM_END.sub("", m.group(2))
        if m.group(1).lower() == "ul":
            return "\n" + _ITEM.sub("\n- ", items) + "\n"
        n = iter(range(1, 10_000))
        return "\n" + _ITEM.sub(lambda _: f"\n{next(n)}. ", items) + "\n"

    while True:  # innermost lists first
        body, count = _LIST.subn(one, body)
        if not count:
            return body


def _link(m: re.Match) -> str:
    href, text = html.unescape(m.group(1)), m.group(2)
    plain = _TAG.sub("", text).strip()
    return href if not plain or plain == href else f"[{text}]({href})"


def _fence(m: re.Match) -> str:
    lang = _LANG.search(m.group(1)) or _LANG.search(m.group(2)[:200])
    info = lang.group(1) if lang and lang.group(1) not in ("none", "default") else ""
    code = html.unescape(_TAG.sub("", m.group(2))).strip("\n")
    fence = "````" if "```" in code else "```"
    return f"{fence}{info}\n{code}\n{fence}"


def _inline(m: re.Match) -> str:
    code = " ".join(html.unescape(_TAG.sub("", m.group(1))).split("\n"))
    tick = "``" if "`" in code else "`"
    return f"{tick}{code}{tick}" if code.strip() else ""


def tags_of(value: str | None) -> list[str]:
    """``<python><list>`` (older dumps) or ``|python|list|`` (newer)."""
    if not value:
        return []
    if value.startswith("<"):
        return re.findall(r"<([^<>]+)>", value)
    return [t for t in value.split("|") if t]


# ---- the dump → records --------------------------------------------------------------------------
def read(path: str | Path, stats: StackStats | None = None, **given: Any) -> Iterator[Record | Quarantined]:
    """The records of one dump file, and one ``Quarantined`` per row (or file part) that cannot be read."""
    opts = options(Options, given, FORMAT)
    stats = stats if stats is not None else StackStats()
    path = Path(path)
    if path.name.lower() in OTHER_TABLES:
        return  # a site folder declared stackexchange: only its posts are read
    source = str(path)
    site = opts.site or site_of(path)
    with spill(opts.workdir) as db:
        db.execute("CREATE TABLE q (id INTEGER PRIMARY KEY, line INTEGER, data BLOB)")
        db.execute("CREATE TABLE a (parent INTEGER, id INTEGER, score INTEGER, line INTEGER, data BLOB)")
        try:
            yield from _load(path, source, db, stats)
        except Exception as e:  # a file that is no XML dump at all, or a .7z that will not open
            yield bad_row(source, None, 0, f"cannot read the dump ({type(e).__name__}: {e})")
            return
        db.execute("CREATE INDEX a_parent ON a (parent, score DESC, id)")
        (orphans,) = db.execute("SELECT COUNT(*) FROM a WHERE parent NOT IN (SELECT id FROM q)").fetchone()
        if orphans:
            stats.skipped["answer to a question not in the dump"] += orphans
        for qid, line, data in db.execute("SELECT id, line, data FROM q ORDER BY id"):
            question = orjson.loads(data)
            answers = [
                (aid, orjson.loads(d))
                for aid, d in db.execute("SELECT id, data FROM a WHERE parent = ? ORDER BY score DESC, id", (qid,))
            ]
            rec = _record(qid, line, question, answers, opts, site, source, stats)
            if rec is not None:
                stats.records += 1
                yield rec


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


_KEEP = ("Title", "Body", "Score", "Tags", "AcceptedAnswerId", "CreationDate", "ClosedDate", "CommunityOwnedDate")
_KEEP_MORE = ("ContentLicense", "OwnerUserId", "AnswerCount")


def _load(path: Path, source: str, db: Any, stats: StackStats) -> Iterator[Quarantined]:
    """Pass 1: questions and answers into the spill database; bad rows out as they come."""
    qs: list[tuple] = []
    ans: list[tuple] = []
    with _open(path) as f:
        for index, row in enumerate(_rows(f)):
            if row.attrs is None:
                yield bad_row(source, row.line, index, row.error or "unreadable", row.raw, row.offset)
                continue
            post, kind = _int(row.attrs.get("Id")), _int(row.attrs.get("PostTypeId"))
            if post is None or kind is None:
                yield bad_row(source, row.line, index, "row without a numeric Id and PostTypeId", row.attrs)
                continue
            keep = {k: row.attrs[k] for k in (*_KEEP, *_KEEP_MORE) if k in row.attrs}
            if kind == 1:
                stats.questions += 1
                qs.append((post, row.line, orjson.dumps(keep)))
            elif kind == 2:
                parent = _int(row.attrs.get("ParentId"))
                if parent is None:
                    yield bad_row(source, row.line, index, "answer without a numeric ParentId", row.attrs)
                    continue
                stats.answers += 1
                keep["Id"] = post
                ans.append((parent, post, _int(keep.get("Score")) or 0, row.line, orjson.dumps(keep)))
            else:
                stats.skipped[POST_TYPES.get(kind, f"post type {kind}")] += 1
            if len(qs) + len(ans) >= 5000:
                _flush(db, qs, ans, stats)
    _flush(db, qs, ans, stats)


def _flush(db: Any, qs: list[tuple], ans: list[tuple], stats: StackStats) -> None:
    before = db.total_changes
    db.executemany("INSERT OR IGNORE INTO q VALUES (?, ?, ?)", qs)
    if duplicates := len(qs) - (db.total_changes - before):
        stats.skipped["duplicate question id"] += duplicates
    db.executemany("INSERT INTO a VALUES (?, ?, ?, ?, ?)", ans)
    qs.clear()
    ans.clear()


def _record(
    qid: int,
    line: int,
    q: dict[str, Any],
    answers: list[tuple[int, dict[str, Any]]],
    opts: Options,
    site: str | None,
    source: str,
    stats: StackStats,
) -> Record | None:
    score = _int(q.get("Score")) or 0
    if q.get("ClosedDate") and not opts.keep_closed:
        stats.skipped["closed question"] += 1
        return None
    if opts.min_question_score is not None and score < opts.min_question_score:
        stats.skipped["question below min_question_score"] += 1
        return None
    accepted_id = _int(q.get("AcceptedAnswerId"))
    if accepted_id is not None and all(aid != accepted_id for aid, _ in answers):
        stats.skipped["accepted answer not in the dump"] += 1
        accepted_id = None
    eligible = [(aid, a) for aid, a in answers if aid == accepted_id or (_int(a.get("Score")) or 0) >= opts.min_score]
    if opts.mode == "sft" and opts.prefer == "accepted":  # the accepted answer first, then by score
        eligible.sort(key=lambda item: item[0] != accepted_id)
    texts: dict[int, str] = {}
    for aid, a in eligible:  # converted only as far as needed: HTML conversion is most of the cost
        if text := post_to_text(a.get("Body", "")):
            texts[aid] = text
            if opts.mode == "sft":
                break
    eligible = [(aid, a) for aid, a in eligible if aid in texts]
    if not eligible:
        stats.skipped["no answer" if not answers else "no accepted answer and none scored ≥ min_score"] += 1
        return None
    title = q.get("Title", "").strip()
    body = post_to_text(q.get("Body", ""))
    meta: dict[str, Any] = {
        "source": source,
        "doc_type": FORMAT,
        "line": line,
        "site": site,
        "post_id": qid,
        "url": f"https://{site}/q/{qid}" if site else None,
        "title": title,
        "question_score": score,
        "tags": tags_of(q.get("Tags")),
        "creation_date": q.get("CreationDate"),
        "accepted_answer_id": accepted_id,
        "license": q.get("ContentLicense") or LICENSE,
        "closed": bool(q.get("ClosedDate")),
        "community_wiki": bool(q.get("CommunityOwnedDate")),
    }
    if opts.mode == "thread":
        parts = [f"# {title}" if title else "", body]
        for aid, a in eligible:
            flag = ", accepted" if aid == accepted_id else ""
            parts += [f"## Answer (score {_int(a.get('Score')) or 0}{flag})", texts[aid]]
        meta |= {
            "answer_ids": [aid for aid, _ in eligible],
            "answer_scores": [_int(a.get("Score")) for _, a in eligible],
        }
        rec = Record(text="\n\n".join(p for p in parts if p), meta=meta)
    else:
        aid, a = eligible[0]
        meta |= {
            "answer_id": aid,
            "answer_score": _int(a.get("Score")),
            "accepted": aid == accepted_id,
            "answer_date": a.get("CreationDate"),
            "answer_license": a.get("ContentLicense") or LICENSE,
        }
        prompt = f"{title}\n\n{body}" if title else body
        rec = Record(messages=[Message("user", prompt), Message("assistant", texts[aid])], meta=meta)
    rec.id = rec.compute_id()
    return rec
