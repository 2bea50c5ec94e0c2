"""Code corpora — a folder, a git working tree or a tarball — as one ``text`` record per source file.

A repository is one unit (one name, one licence, one set of ignore rules) whose files are read one at
a time. A tarball is streamed with ``tarfile`` in stream mode, twice (first its root licence, readme,
``.gitignore`` and ``.git/config`` files, then the files), and never extracted: a member is only ever
read into memory, and one whose name is absolute or climbs out with ``..`` is refused (quarantined).

Meta of each record: ``repository`` (the git remote URL from ``.git/config``, credentials removed, else
the folder or tarball name), ``path`` (relative, ``/``-separated), ``language`` (identify's tags from
the file name or extension, then from the shebang; pygments' lexer for the file name when identify
knows none; None when neither does), ``licence`` (an SPDX id or expression: the file's own
``SPDX-License-Identifier`` header, else the repository's licence files through licenseclassifier),
``size`` (bytes), ``lines``, ``source`` (the folder or tarball) and ``doc_type: code``.

Not records, counted in ``CodeStats.skipped``: ``.git``, ``.hg`` and ``.svn`` folders, entries a
``.gitignore`` (at any level) or ``.git/info/exclude`` ignores, links, empty files, files over
``max_bytes`` (10 MiB, The Stack v2's cap), binary files (a NUL byte) and text no encoding decodes.
"""

from __future__ import annotations

import io
import os
import re
import tarfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit, urlunsplit

from datamill.dataset import Quarantined
from datamill.io.encoding import HEAD, sniff_bytes
from datamill.io.rows import RawRow
from datamill.record import Record

TARBALLS = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
MAX_BYTES = 10 << 20  # The Stack v2 downloads files under 10 MiB (bigcode-project/the-stack-v2, get_file_contents.py)
ROOT_FILE_BYTES = 1 << 20  # licence, readme and ignore files larger than this are not looked at
VCS = frozenset({".git", ".hg", ".svn"})
LICENCE_FILE = re.compile(r"^(?:un)?licen[cs]e|^copying|^copyright", re.I)
README_FILE = re.compile(r"^readme", re.I)
SPDX_TAG = re.compile(r"SPDX-License-Identifier:[ \t]*([A-Za-z0-9][A-Za-z0-9.+:() \t-]*?)[ \t]*(?:\*/|-->|\"|$)", re.M)
HEADER_CHARS = 4096  # where a file's own SPDX header is looked for
_REMOTE = re.compile(r'^\[\s*remote\s+"([^"]*)"\s*\]')
_DRIVE = re.compile(r"^[A-Za-z]:")
_BOM = b"\xef\xbb\xbf"


@dataclass
class CodeStats:
    """What a tree held besides its source files, by reason; files read, by language."""

    files: int = 0
    languages: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)


def is_tarball(path: str | Path) -> bool:
    return str(path).lower().endswith(TARBALLS)


# ---- language --------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _tag_weight() -> tuple[Counter, frozenset]:
    from identify import extensions, identify

    weight = Counter(tag for tags in extensions.EXTENSIONS.values() for tag in tags)
    return weight, identify.TYPE_TAGS | identify.MODE_TAGS | identify.ENCODING_TAGS


def _pick(tags: Iterable[str], name: str) -> str | None:
    """One language among identify's tags. Several (``.h``: c and c++; ``.bats``: bats, bash, shell) are
    settled by pygments' lexer for the extension when it names one of them (``.h`` → c), else by the
    broadest tag (the one most extensions share: ``.csproj`` → xml); ties go to the first by name."""
    weight, generic = _tag_weight()
    langs = sorted(set(tags) - generic)
    if len(langs) > 1 and (ext := PurePosixPath(name).suffix.lower()):
        hint = next((a for a in _lexer_aliases(f"x{ext}") if a in langs), None)
        if hint:
            return hint
    return max(langs, key=lambda t: weight[t]) if langs else None


@lru_cache(maxsize=4096)
def _lexer_aliases(name: str) -> tuple[str, ...]:
    """The aliases of pygments' lexer for a file name (``c``, ``python`` …), the lexer's name when it has
    none; () when pygments has no lexer for it."""
    from pygments.lexers import get_lexer_for_filename
    from pygments.util import ClassNotFound

    try:
        lexer = get_lexer_for_filename(name)
    except ClassNotFound:
        return ()
    return tuple(lexer.aliases) or (lexer.name.lower(),)


def language(name: str, head: bytes = b"") -> str | None:
    """The language of a file from its name (identify: extension or well-known file name), else its
    shebang line, else pygments' lexer patterns (350 µs a name against identify's 3 µs: fallback only)."""
    from identify import identify

    lang = _pick(identify.tags_from_filename(name), name)
    if lang is None and head.startswith(b"#!"):
        cmd = identify.parse_shebang(io.BytesIO(head))
        lang = _pick(identify.tags_from_interpreter(cmd[0]), name) if cmd else None
    return lang or next(iter(_lexer_aliases(name)), None)


# ---- licence and repository ------------------------------------------------------------------------


def spdx_tags(text: str) -> list[str]:
    return [m.group(1).strip() for m in SPDX_TAG.finditer(text)]


def repo_licence(root_files: dict[str, bytes]) -> str | None:
    """The SPDX licence of a repository from its root files: licence files (LICENSE*, LICENCE*, COPYING*,
    UNLICENSE, COPYRIGHT*) by licenseclassifier and their SPDX tags, else the READMEs the same way.
    Several licences found are joined with AND (all of them apply until one knows it is a choice)."""
    from licenseclassifier import identify_license

    for wanted in (LICENCE_FILE, README_FILE):
        ids: set[str] = set()
        for name in sorted(n for n in root_files if wanted.match(n)):
            text = root_files[name].decode("utf-8", errors="replace")
            ids.update(m.id for m in identify_license(text))
            ids.update(spdx_tags(text))
        if ids:
            return " AND ".join(sorted(ids))
    return None


def remote_url(config: str) -> str | None:
    """The ``origin`` remote's URL in a ``.git/config`` (else the first remote's), without credentials."""
    remotes: dict[str, str] = {}
    current = None
    for line in config.splitlines():
        s = line.strip()
        if s.startswith("["):
            m = _REMOTE.match(s)
            current = m.group(1) if m else None
        elif current is not None and "=" in s:
            key, _, value = s.partition("=")
            if key.strip().lower() == "url":
                remotes.setdefault(current, value.strip())
    url = remotes.get("origin") or next(iter(remotes.values()), None)
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme and "@" in parts.netloc:  # https://user:token@host/… → https://host/…
        return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
    return url


class Ignores:
    """The ``.gitignore`` files of a tree (and ``.git/info/exclude``), each applying below its folder,
    matched by pathspec's gitignore rules; a file inside an ignored folder stays ignored, as in git."""

    def __init__(self) -> None:
        self.lines: dict[str, list[str]] = {}
        self._specs: dict[str, object] = {}
        self._dirs: dict[str, bool] = {}

    def add(self, folder: str, text: str) -> None:
        self.lines.setdefault(folder, []).extend(text.splitlines())
        self._specs.pop(folder, None)
        self._dirs.clear()

    def _spec(self, folder: str):
        if folder not in self._specs:
            from pathspec import GitIgnoreSpec

            self._specs[folder] = GitIgnoreSpec.from_lines(self.lines[folder])
        return self._specs[folder]

    def _match(self, rel: str, is_dir: bool) -> bool:
        verdict = None
        parts = rel.split("/")
        for depth in range(len(parts)):  # the deepest .gitignore that has a rule for the path decides
            folder = "/".join(parts[:depth])
            if folder in self.lines:
                sub = "/".join(parts[depth:]) + ("/" if is_dir else "")
                include = self._spec(folder).check_file(sub).include
                verdict = verdict if include is None else include
        return bool(verdict)

    def folder_ignored(self, rel: str) -> bool:
        if not rel or not self.lines:
            return False
        if rel not in self._dirs:
            parent = rel.rpartition("/")[0]
            self._dirs[rel] = self.folder_ignored(parent) or self._match(rel, True)
        return self._dirs[rel]

    def ignored(self, rel: str) -> bool:
        return bool(self.lines) and (self.folder_ignored(rel.rpartition("/")[0]) or self._match(rel, False))


# ---- records ---------------------------------------------------------------------------------------


@dataclass
class _Tree:
    source: str
    repository: str
    licence: str | None
    stats: CodeStats
    max_bytes: int


def _decode(data: bytes) -> tuple[str | None, str]:
    if b"\0" in data:
        return None, "binary (NUL bytes)"
    try:
        return data.removeprefix(_BOM).decode("utf-8"), ""
    except UnicodeDecodeError:
        pass
    try:
        return data.decode(sniff_bytes(data[:HEAD])), ""
    except (UnicodeDecodeError, LookupError):
        return None, "undecodable text"


def _record(tree: _Tree, rel: str, data: bytes) -> Record | None:
    stats = tree.stats
    if not data:
        stats.skipped["empty"] += 1
        return None
    text, why = _decode(data)
    if text is None:
        stats.skipped[why] += 1
        return None
    own = spdx_tags(text[:HEADER_CHARS])
    lang = language(PurePosixPath(rel).name, data[:512])
    meta = {
        "source": tree.source,
        "doc_type": "code",
        "repository": tree.repository,
        "path": rel,
        "language": lang,
        "licence": own[0] if own else tree.licence,
        "size": len(data),
        "lines": text.count("\n") + (not text.endswith("\n")),
    }
    stats.files += 1
    stats.languages[lang or "unknown"] += 1
    rec = Record(text=text, meta=meta)
    rec.id = rec.compute_id()
    return rec


def _too_large(tree: _Tree, size: int) -> bool:
    if size > tree.max_bytes:
        tree.stats.skipped[f"over {tree.max_bytes:,} bytes"] += 1
        return True
    return False


def _error(where: str, source: str, index: int, message: str) -> Quarantined:
    return Quarantined(where, source, None, index, f"{where}: {message}", None, stage="ingest")


# ---- a folder or git working tree ------------------------------------------------------------------


def _small(path: Path) -> bytes | None:
    """A regular file's bytes when it is no link and at most ``ROOT_FILE_BYTES`` long."""
    try:
        if path.is_file() and not path.is_symlink() and path.stat().st_size <= ROOT_FILE_BYTES:
            return path.read_bytes()
    except OSError:
        pass
    return None


def _small_text(path: Path) -> str | None:
    data = _small(path)
    return None if data is None else data.decode("utf-8", errors="replace")


def _root_files(root: Path) -> dict[str, bytes]:
    names = (p for p in sorted(root.iterdir()) if LICENCE_FILE.match(p.name) or README_FILE.match(p.name))
    return {p.name: data for p in names if (data := _small(p)) is not None}


def _read_folder(root: Path, stats: CodeStats, max_bytes: int) -> Iterator[Record | Quarantined]:
    source = str(root)
    config = _small_text(root / ".git" / "config")
    try:
        licence = repo_licence(_root_files(root))
    except OSError as e:
        yield _error(source, source, 0, f"cannot read the licence files: {e.strerror or e}")
        licence = None
    tree = _Tree(source, (remote_url(config) if config else None) or root.resolve().name, licence, stats, max_bytes)
    ignores = Ignores()
    if exclude := _small_text(root / ".git" / "info" / "exclude"):
        ignores.add("", exclude)
    problems: list[OSError] = []
    index = 0
    for top, dirs, names in os.walk(root, onerror=problems.append):
        yield from _unlisted(problems, source, index)
        rel_top = Path(top).relative_to(root).as_posix()
        rel_top = "" if rel_top == "." else rel_top
        if ".gitignore" in names and (text := _small_text(Path(top, ".gitignore"))):
            ignores.add(rel_top, text)
        kept = []
        for d in sorted(dirs):
            rel = f"{rel_top}/{d}" if rel_top else d
            if d in VCS:
                stats.skipped[f"{d} folder"] += 1
            elif os.path.islink(os.path.join(top, d)):
                stats.skipped["link"] += 1
            elif ignores.folder_ignored(rel):
                stats.skipped["ignored (.gitignore)"] += 1
            else:
                kept.append(d)
        dirs[:] = kept
        for name in sorted(names):
            path, rel = Path(top, name), f"{rel_top}/{name}" if rel_top else name
            index += 1
            if name in VCS:  # a worktree's or submodule's `.git` file
                stats.skipped[f"{name} file"] += 1
            elif path.is_symlink():
                stats.skipped["link"] += 1
            elif not path.is_file():
                stats.skipped["not a regular file"] += 1
            elif ignores.ignored(rel):
                stats.skipped["ignored (.gitignore)"] += 1
            else:
                try:
                    if _too_large(tree, path.stat().st_size):
                        continue
                    data = path.read_bytes()
                except OSError as e:
                    yield _error(str(path), source, index, f"cannot read: {e.strerror or e}")
                    continue
                if rec := _record(tree, rel, data):
                    yield rec
    yield from _unlisted(problems, source, index)


def _unlisted(problems: list[OSError], source: str, index: int) -> Iterator[Quarantined]:
    for e in problems:
        yield _error(str(e.filename), source, index, f"cannot list the folder: {e.strerror or e}")
    problems.clear()


# ---- a tarball --------------------------------------------------------------------------------------


def _member_path(name: str) -> str | None:
    """The member's relative ``/`` path, or None when it is absolute or climbs out with ``..``."""
    p = name.replace("\\", "/")
    if p.startswith("/") or _DRIVE.match(p) or ".." in p.split("/"):
        return None
    return "/".join(part for part in p.split("/") if part not in ("", "."))


def _members(path: Path) -> Iterator[tuple[tarfile.TarInfo, Callable[[], bytes]]]:
    """Each member with a reader of its bytes, in one streaming pass (the TarFile forgets members as it
    goes, so memory stays flat over millions of them)."""
    with tarfile.open(path, mode="r|*") as tf:
        for member in tf:
            yield member, lambda m=member: tf.extractfile(m).read()  # type: ignore[union-attr]
            tf.members = []


TAR_ERRORS = (tarfile.TarError, EOFError, zlib.error, OSError, ValueError)


@dataclass
class _TarIndex:
    prefix: str = ""  # the one top folder every member is in (GitHub and `git archive` tarballs), stripped
    root_files: dict[str, bytes] = field(default_factory=dict)
    ignores: Ignores = field(default_factory=Ignores)
    config: str | None = None


def _index_tar(path: Path) -> _TarIndex:
    """Pass 1: the top folder, the root licence and readme files, ``.gitignore`` files and ``.git/config``."""
    out = _TarIndex()
    tops: set[str] = set()
    nested = False
    small: dict[str, bytes] = {}
    try:
        for member, read in _members(path):
            rel = _member_path(member.name)
            if not rel:
                continue
            if len(tops) < 2:
                tops.add(rel.split("/", 1)[0])
            nested = nested or "/" in rel
            base = rel.rsplit("/", 1)[-1]
            wanted = base == ".gitignore" or rel.endswith((".git/config", ".git/info/exclude"))
            root = rel.count("/") <= 1 and (LICENCE_FILE.match(base) or README_FILE.match(base))
            if member.isfile() and member.size <= ROOT_FILE_BYTES and (wanted or root):
                small[rel] = read()
    except TAR_ERRORS:
        pass  # the second pass meets the same break, keeps what comes before it and quarantines the rest
    if len(tops) == 1 and nested:
        out.prefix = tops.pop()
    for rel, data in small.items():
        rel = _strip(rel, out.prefix)
        if rel is None:
            continue
        text = data.decode("utf-8", errors="replace")
        if rel == ".git/config":
            out.config = text
        elif rel == ".git/info/exclude":
            out.ignores.add("", text)
        elif rel.rsplit("/", 1)[-1] == ".gitignore":
            out.ignores.add(rel.rpartition("/")[0], text)
        elif "/" not in rel:
            out.root_files[rel] = data
    return out


def _strip(rel: str, prefix: str) -> str | None:
    if not prefix:
        return rel
    return rel[len(prefix) + 1 :] if rel.startswith(prefix + "/") else None


def _tar_name(path: Path) -> str:
    name = path.name
    for suffix in sorted(TARBALLS, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _read_tar(path: Path, stats: CodeStats, max_bytes: int) -> Iterator[Record | Quarantined]:
    source = str(path)
    index = _index_tar(path)
    repository = (remote_url(index.config) if index.config else None) or _tar_name(path)
    tree = _Tree(source, repository, repo_licence(index.root_files), stats, max_bytes)
    n, where = 0, source
    try:
        for n, (member, read) in enumerate(_members(path)):  # noqa: B007 - n and where name a break
            where = f"{source}@{member.name}"
            rel = _member_path(member.name)
            if rel is None:
                yield _error(where, source, n, "unsafe path (absolute or climbing out with '..'): not read")
                continue
            rel = _strip(rel, index.prefix) if rel else None
            if not rel or member.isdir():
                continue
            if any(part in VCS for part in rel.split("/")):
                stats.skipped["in a .git, .hg or .svn folder"] += 1
            elif member.issym() or member.islnk():
                stats.skipped["link"] += 1
            elif not member.isfile():
                stats.skipped["not a regular file"] += 1
            elif index.ignores.ignored(rel):
                stats.skipped["ignored (.gitignore)"] += 1
            elif not _too_large(tree, member.size) and (rec := _record(tree, rel, read())):
                yield rec
    except TAR_ERRORS as e:
        yield _error(where, source, n, f"unreadable tarball from here on ({type(e).__name__}: {e})")


# ---- entry points ----------------------------------------------------------------------------------


def read_code(
    path: str | Path, stats: CodeStats | None = None, max_bytes: int = MAX_BYTES
) -> Iterator[Record | Quarantined]:
    """The source files of a folder, git working tree or tarball as records; a member or file that
    cannot be read (or a tarball member with an unsafe name) is one ``Quarantined``, the rest is read."""
    stats = stats if stats is not None else CodeStats()
    path = Path(path)
    if path.is_dir():
        yield from _read_folder(path, stats, max_bytes)
    elif path.is_file() and is_tarball(path):
        yield from _read_tar(path, stats, max_bytes)
    elif path.is_file():
        yield _error(str(path), str(path), 0, f"not a folder or a tarball ({', '.join(TARBALLS)})")
    else:
        yield _error(str(path), str(path), 0, "no such file or directory")


def read_trees(paths: Iterable[str | Path], stats: CodeStats | None = None) -> Iterator[Record | Quarantined]:
    """``read_code`` over several trees, their counts summed into one ``stats``."""
    stats = stats if stats is not None else CodeStats()
    for path in paths:
        yield from read_code(path, stats)


def raw_rows(path: str | Path) -> Iterator[RawRow]:
    """One tree as the pipeline's input rows (``datamill`` rows with their meta); what cannot be read
    is one error row the run quarantines, naming the file or tarball member."""
    for i, item in enumerate(read_code(path)):
        if isinstance(item, Quarantined):
            yield RawRow(item.where, None, i, None, item.error, None)
        else:
            yield RawRow(f"{item.meta['source']}/{item.meta['path']}", None, i, item.to_dict())
