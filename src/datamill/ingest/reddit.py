"""Reddit dumps (Pushshift and its successors: ``RS_2019-04.zst`` submissions, ``RC_2019-04.zst``
comments, per-subreddit ``…_submissions.zst`` / ``…_comments.zst``, or the same as ``.jsonl``) →
threads → multi-turn dialogues.

A ``.zst`` is decompressed as a stream with ``zstandard`` and the 2 GiB window the dumps need
(``max_window_size=2**31``); a file cut short is reported, not read as complete. Comments are joined
to their submission by ``link_id``: a comments file is read together with its submissions file — the
same name with ``RC_``→``RS_`` or ``comments``→``submissions``, beside it or in a sibling
``submissions/`` folder — and a submissions file that has such a comments file yields nothing by
itself (it is read with it). Rows go to a throwaway SQLite file (``dumps.spill``), so memory holds one
thread at a time, not a month of Reddit.

Each submission (title + self text) is the first user turn; then the best-scored reply chain — at
each level the highest-scored reply that passes the filters — alternating assistant / user, cut to
end on an assistant turn. Without its submission (no submissions file, or it is missing from it) a
thread starts at its best top-level comment. ``[deleted]`` / ``[removed]`` bodies, ``[deleted]``
authors, bots (``skip_authors``), and comments below ``min_score`` or outside ``min_chars`` …
``max_chars`` are dropped, counted by reason in ``RedditStats.dropped``; a reply under a dropped
comment cannot be reached, so no chain passes through a hole.
"""

from __future__ import annotations

import bz2
import gzip
import html
import lzma
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from datamill.dataset import Quarantined
from datamill.ingest.dumps import bad_row, line_where, lines, options, spill
from datamill.record import Message, Record

FORMAT = "reddit"
PER_ROW = True  # a bad line is one quarantined row, the rest of the file is read
READ_SIZE = 1 << 20
ZST_READ_SIZE = 1 << 16
GONE = ("[deleted]", "[removed]")
_MONTHLY = re.compile(r"^R[SC]_\d{4}-\d{2}.*\.zst$", re.I)
_SUBREDDIT = re.compile(r"_(?:submissions|comments)\.zst$", re.I)
_OPEN = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}


def claims(path: str | Path, fmt: str | None = None) -> bool:
    """``RS_*.zst`` / ``RC_*.zst``, ``*_submissions.zst`` / ``*_comments.zst``, or any file declared
    ``format: reddit``."""
    if fmt is not None:
        return fmt == FORMAT
    name = Path(path).name
    return bool(_MONTHLY.match(name) or _SUBREDDIT.search(name))


@dataclass
class Options:
    min_score: int = 1  # a comment needs this score to be a turn
    min_submission_score: int | None = None
    min_chars: int = 1  # each turn's length, in characters
    max_chars: int = 10_000
    min_turns: int = 2  # a dialogue has an even number of turns (it ends on the assistant)
    max_turns: int = 10
    drop_deleted_authors: bool = True
    skip_authors: list[str] = field(default_factory=lambda: ["AutoModerator"])
    workdir: str | None = None  # where the spill database goes (default: the system's temporary folder)


@dataclass
class RedditStats:
    """Rows read, dialogues made, and what was dropped, by reason."""

    submissions: int = 0
    comments: int = 0
    dialogues: int = 0
    dropped: Counter = field(default_factory=Counter)


where = line_where


# ---- which files go together ----------------------------------------------------------------------
def _companion(path: Path, mine: tuple[str, str], theirs: tuple[str, str]) -> Path | None:
    """The other file of a dump pair: ``RC_…``↔``RS_…``, ``…comments…``↔``…submissions…``; beside it, or
    in the sibling folder (``comments/``↔``submissions/``)."""
    name = path.name
    if name.upper().startswith(mine[0]):
        other = theirs[0] + name[len(mine[0]) :]
    elif mine[1] in name.lower():
        i = name.lower().index(mine[1])
        other = name[:i] + theirs[1] + name[i + len(mine[1]) :]
    else:
        return None
    places = [path.with_name(other)]
    if path.parent.name.lower() == mine[1]:
        places.append(path.parent.parent / theirs[1] / other)
    return next((p for p in places if p.is_file()), None)


def submissions_for(path: Path) -> Path | None:
    return _companion(path, ("RC_", "comments"), ("RS_", "submissions"))


def comments_for(path: Path) -> Path | None:
    return _companion(path, ("RS_", "submissions"), ("RC_", "comments"))


# ---- reading lines ---------------------------------------------------------------------------------
class Damaged(Exception):
    pass


def _zst_chunks(f: BinaryIO) -> Iterator[bytes]:
    """A zstd stream (one frame or several) decompressed chunk by chunk; cut short or corrupt raises."""
    import zstandard

    def new() -> Any:
        return zstandard.ZstdDecompressor(max_window_size=2**31).decompressobj()

    d, fed = new(), False
    try:
        while chunk := f.read(ZST_READ_SIZE):  # small: a dump inflates 10-30x, and each piece is held once
            while chunk:
                fed = True
                out = d.decompress(chunk)
                if out:
                    yield out
                if d.eof:
                    chunk, d, fed = d.unused_data, new(), False
                else:
                    chunk = b""
    except zstandard.ZstdError as e:
        raise Damaged(f"corrupt zstd data ({e})") from None
    if fed:
        raise Damaged("truncated zstd stream: the file ends inside a frame")


def _chunks(path: Path, f: BinaryIO) -> Iterator[bytes]:
    suffix = path.suffix.lower()
    if suffix == ".zst":
        yield from _zst_chunks(f)
        return
    stream = _OPEN[suffix](f) if suffix in _OPEN else f
    try:
        while chunk := stream.read(READ_SIZE):
            yield chunk
    except (EOFError, OSError, lzma.LZMAError) as e:
        raise Damaged(f"damaged {suffix} stream ({e})") from None


@dataclass
class _Row:
    file: str
    line: int
    obj: dict[str, Any]


def _objects(path: Path, stats: RedditStats, index: list[int]) -> Iterator[_Row | Quarantined]:
    """Each JSON object of a dump file with its line; a bad line, or a damaged rest of file, quarantined."""
    source = str(path)
    with open(path, "rb") as f:
        try:
            for line in lines(_chunks(path, f)):
                index[0] += 1
                if line.data is None:
                    yield bad_row(source, line.number, index[0], line.error or "too long")
                    continue
                try:
                    obj = orjson.loads(line.data)
                except orjson.JSONDecodeError as e:
                    yield bad_row(source, line.number, index[0], f"invalid JSON ({e})", _raw(line.data))
                    continue
                if not isinstance(obj, dict):
                    yield bad_row(source, line.number, index[0], "not a JSON object", _raw(line.data))
                    continue
                yield _Row(source, line.number, obj)
        except Damaged as e:
            index[0] += 1
            yield bad_row(source, None, index[0], f"{e}; the rows before it were read", offset=f.tell())


def _raw(data: bytes) -> str:
    return data[:2000].decode("utf-8", "replace")


# ---- rows → the spill database --------------------------------------------------------------------
def _id(value: Any) -> str:
    s = str(value or "")
    return s[3:] if s[:3] in ("t1_", "t3_") else s


def _text(value: Any) -> str:
    return html.unescape(str(value or "")).strip()  # the dumps keep Reddit's &amp; &lt; &gt;


def _num(value: Any) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return 0


def _gone(obj: dict[str, Any], opts: Options, kind: str) -> str | None:
    """Why a submission or comment cannot be a turn, or None."""
    raw = str(obj.get("selftext" if kind == "submission" else "body") or "").strip()
    if raw in GONE:
        return f"{kind} body {raw}"
    author = obj.get("author")
    if opts.drop_deleted_authors and author == "[deleted]":
        return f"{kind} author [deleted]"
    if author in opts.skip_authors:
        return f"{kind} by a skipped author"
    return None


def _load(files: list[Path], db: Any, opts: Options, stats: RedditStats) -> Iterator[Quarantined]:
    db.execute("CREATE TABLE s (id TEXT PRIMARY KEY, seq INTEGER, data BLOB)")
    db.execute("CREATE TABLE gone (id TEXT PRIMARY KEY)")
    db.execute("CREATE TABLE c (link TEXT, parent TEXT, id TEXT, score INTEGER, seq INTEGER, data BLOB)")
    subs: list[tuple] = []
    comments: list[tuple] = []
    dropped: list[tuple] = []
    index, seq = [-1], 0
    for path in files:
        for item in _objects(path, stats, index):
            if isinstance(item, Quarantined):
                yield item
                continue
            seq += 1
            obj = item.obj
            turn = {"file": item.file, "line": item.line, "created_utc": _num(obj.get("created_utc"))}
            if "body" in obj and ("link_id" in obj or "parent_id" in obj):
                stats.comments += 1
                body = _text(obj.get("body"))
                why = _gone(obj, opts, "comment") or _comment_filter(obj, body, opts)
                if why:
                    stats.dropped[why] += 1
                    continue
                parent = str(obj.get("parent_id") or "")
                top = parent.startswith("t3_") or not parent
                turn |= {"id": _id(obj.get("id")), "text": body, "score": _num(obj.get("score"))}
                turn["subreddit"] = obj.get("subreddit")
                row = (_id(obj.get("link_id")), "" if top else _id(parent), turn["id"], turn["score"], seq)
                comments.append((*row, orjson.dumps(turn)))
            elif "title" in obj:
                stats.submissions += 1
                sid = _id(obj.get("id") or obj.get("name"))
                text = _submission_text(obj)
                why = _gone(obj, opts, "submission") or _submission_filter(obj, text, opts)
                if why:
                    stats.dropped[why] += 1
                    dropped.append((sid,))
                    continue
                turn |= {"id": sid, "text": text, "score": _num(obj.get("score"))}
                turn |= {"subreddit": obj.get("subreddit"), "title": _text(obj.get("title"))}
                turn["over_18"] = bool(obj.get("over_18"))
                subs.append((sid, seq, orjson.dumps(turn)))
            else:
                yield bad_row(item.file, item.line, index[0], "neither a submission (title) nor a comment (body)", obj)
                continue
            if len(subs) + len(comments) >= 5000:
                _flush(db, subs, comments, dropped)
    _flush(db, subs, comments, dropped)
    db.execute("CREATE INDEX c_link ON c (link)")


def _flush(db: Any, subs: list[tuple], comments: list[tuple], dropped: list[tuple]) -> None:
    db.executemany("INSERT OR IGNORE INTO s VALUES (?, ?, ?)", subs)
    db.executemany("INSERT INTO c VALUES (?, ?, ?, ?, ?, ?)", comments)
    db.executemany("INSERT OR IGNORE INTO gone VALUES (?)", dropped)
    for batch in (subs, comments, dropped):
        batch.clear()


def _submission_text(obj: dict[str, Any]) -> str:
    title, body = _text(obj.get("title")), _text(obj.get("selftext"))
    return f"{title}\n\n{body}" if body and body not in GONE else title


def _comment_filter(obj: dict[str, Any], body: str, opts: Options) -> str | None:
    if _num(obj.get("score")) < opts.min_score:
        return "comment below min_score"
    if not opts.min_chars <= len(body) <= opts.max_chars:
        return "comment length out of range"
    return None


def _submission_filter(obj: dict[str, Any], text: str, opts: Options) -> str | None:
    if opts.min_submission_score is not None and _num(obj.get("score")) < opts.min_submission_score:
        return "submission below min_submission_score"
    if not opts.min_chars <= len(text) <= opts.max_chars:
        return "submission length out of range"
    return None


# ---- threads → dialogues ---------------------------------------------------------------------------
def read(path: str | Path, stats: RedditStats | None = None, **given: Any) -> Iterator[Record | Quarantined]:
    """The dialogues of one dump file (with its submissions file when it is a comments file), and one
    ``Quarantined`` per line that cannot be read."""
    path = Path(path)
    partner = submissions_for(path)
    if partner is None and comments_for(path) is not None:
        return  # a submissions file: read with its comments file
    yield from read_files([partner, path] if partner else [path], stats, **given)


def read_files(
    files: Iterable[str | Path], stats: RedditStats | None = None, **given: Any
) -> Iterator[Record | Quarantined]:
    """Dialogues from submissions and comments files read together (in any order, or mixed in one file)."""
    opts = options(Options, given, FORMAT)
    stats = stats if stats is not None else RedditStats()
    with spill(opts.workdir) as db:
        yield from _load([Path(f) for f in files], db, opts, stats)
        for sid, data in db.execute("SELECT id, data FROM s ORDER BY seq"):
            yield from _dialogue(db, sid, orjson.loads(data), opts, stats)
        orphans = (
            "SELECT link FROM c WHERE link NOT IN (SELECT id FROM s) AND link NOT IN (SELECT id FROM gone) "
            "GROUP BY link ORDER BY MIN(seq)"
        )
        for (link,) in db.execute(orphans):  # a cursor, not a list: a month can have millions of threads
            yield from _dialogue(db, link, None, opts, stats)


def _dialogue(db: Any, link: str, submission: dict | None, opts: Options, stats: RedditStats) -> Iterator[Record]:
    children: dict[str, list[tuple]] = {}
    for parent, score, seq, data in db.execute("SELECT parent, score, seq, data FROM c WHERE link = ?", (link,)):
        children.setdefault(parent, []).append((score, -seq, data))
    turns = [submission] if submission else []
    node = ""
    while len(turns) < opts.max_turns and children.get(node):
        best = orjson.loads(max(children[node])[2])  # the highest score, then the earliest
        turns.append(best)
        node = best["id"]
    turns = turns[: len(turns) // 2 * 2]  # end on the assistant
    if len(turns) < max(opts.min_turns, 2):
        stats.dropped["thread without a reply chain passing the filters"] += 1
        return
    roles = ("user", "assistant")
    first = turns[0]
    subreddit = first.get("subreddit")
    meta = {
        "source": first["file"],
        "doc_type": FORMAT,
        "line": first["line"],
        "subreddit": subreddit,
        "submission_id": link,
        "with_submission": submission is not None,
        "comment_ids": [t["id"] for t in turns[1 if submission else 0 :]],
        "scores": [t["score"] for t in turns],
        "created_utc": first["created_utc"],
        "permalink": f"https://www.reddit.com/r/{subreddit}/comments/{link}/" if subreddit else None,
    }
    if submission:
        meta |= {"title": submission["title"], "over_18": submission["over_18"]}
    rec = Record(messages=[Message(roles[i % 2], t["text"]) for i, t in enumerate(turns)], meta=meta)
    rec.id = rec.compute_id()
    stats.dialogues += 1
    yield rec
