"""arXiv-style LaTeX sources — a ``.tar.gz`` source bundle, a folder, or a single ``.tex`` — → one
pretraining text per paper, with the maths kept as LaTeX.

Each main file (the ones with ``\\documentclass``) becomes a record. Its comments are removed (``%`` to
the end of the line, ``comment`` environments, ``\\iffalse`` blocks), ``\\input`` / ``\\include`` /
``\\subfile`` / ``\\import`` resolved inside the source, and the user's macros (``\\newcommand`` and its
kin, ``\\def``, ``\\let``, ``\\DeclareMathOperator``, ``\\newenvironment``, also from a ``.sty`` shipped
with the paper) expanded everywhere by ``latex_macros``, the maths included, so that formulas stand on
their own. The maths — ``$…$``, ``$$…$$``, ``\\(…\\)``, ``\\[…\\]`` and the equation / align / gather /
multline / eqnarray … environments — is set aside verbatim before anything else is converted, then put
back: no converter ever touches a formula. The text around it goes through ``pylatexenc``'s
``latex2text`` (accents, special characters, unknown macros), with sections as markdown headings,
lists as ``-`` / ``1.`` items, theorem-like environments as run-in titles, verbatim and listings as
fenced code, ``\\ref`` kept as written, and ``\\cite`` as ``[n]`` (bibliography order) or ``[key]``. The
bibliography (``thebibliography``, or the ``.bbl`` arXiv ships for ``\\bibliography{…}``) is a
``## References`` section, or dropped (``bibliography: drop``).

A tarball is streamed with ``tarfile`` and nothing is written to disk: only regular ``.tex``, ``.ltx``,
``.bbl`` and ``.sty`` members are read, each up to ``max_member_bytes``, all together up to
``MAX_SOURCE_BYTES``; a member whose name is absolute or climbs out with ``..`` is skipped, and an
``\\input`` that climbs out of the source (or of a folder) is not followed. Many arXiv sources of one
file are a gzipped ``.tex`` rather than a tarball: read the same way.
"""

from __future__ import annotations

import gzip
import os
import posixpath
import re
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from datamill.dataset import Quarantined
from datamill.ingest.dumps import options
from datamill.ingest.latex_macros import Definitions, Expander, group, take_definitions
from datamill.record import Record

FORMAT = "latex"
PER_ROW = False  # a source that cannot be read is one unreadable file
TEX = (".tex", ".ltx")
MEMBERS = (*TEX, ".bbl", ".sty")
PARTS = (".bbl", ".sty", ".cls", ".bst")  # not papers: read with their main file
MAX_MEMBER_BYTES = 8 << 20
MAX_SOURCE_BYTES = 64 << 20
MAX_INCLUDE_DEPTH = 16


def claims(path: str | Path, fmt: str | None = None) -> bool:
    """``.tex`` / ``.ltx`` files (and the ``.bbl`` / ``.sty`` / ``.cls`` / ``.bst`` beside them, read with
    their main file), and anything declared ``format: latex`` (a ``.tar.gz`` bundle, a folder)."""
    if fmt is not None:
        return fmt == FORMAT
    return str(path).lower().endswith((*TEX, *PARTS))


@dataclass
class Options:
    bibliography: Literal["keep", "drop"] = "keep"
    cite: Literal["number", "key"] = "number"
    max_member_bytes: int = MAX_MEMBER_BYTES

    def __post_init__(self) -> None:
        if self.bibliography not in ("keep", "drop") or self.cite not in ("number", "key"):
            raise ValueError("latex reader: bibliography is keep or drop, cite is number or key")


def where(rec: Record) -> str:
    return f"{rec.meta['source']}#{rec.meta['main']}"


class LatexError(Exception):
    """The source cannot be read at all (no main file, not a tarball, …)."""


# ---- the source's files ---------------------------------------------------------------------------
@dataclass
class Bundle:
    """The text files of one source by relative POSIX path: a tarball's members (read at once) or a
    folder's files (read when asked for, never outside the folder)."""

    files: dict[str, str] = field(default_factory=dict)
    root: Path | None = None
    limit: int = MAX_MEMBER_BYTES
    notes: list[str] = field(default_factory=list)

    def get(self, name: str) -> str | None:
        name = posixpath.normpath(name)
        if name in self.files or self.root is None or name.startswith("../") or name.startswith("/"):
            return self.files.get(name)
        path = (self.root / name).resolve()
        if not path.is_relative_to(self.root) or not path.is_file():
            return None
        if path.stat().st_size > self.limit:
            self.notes.append(f"{name}: over {self.limit:,} bytes, not read")
            return None
        self.files[name] = _decode(path.read_bytes())
        return self.files[name]

    def names(self) -> list[str]:
        if self.root is None:
            return sorted(n for n in self.files if n.lower().endswith(TEX))
        found = []
        for top, dirs, names in os.walk(self.root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            found += [Path(top, n).relative_to(self.root).as_posix() for n in names if n.lower().endswith(TEX)]
        return sorted(found)


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        from datamill.io.encoding import sniff_bytes

        return data.decode(sniff_bytes(data[: 1 << 16]), errors="replace")  # older papers: latin-1 and the like


def _member_name(name: str) -> str | None:
    """A member's path inside the bundle, or None when it is absolute or climbs out (``../``)."""
    name = name.replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return None
    norm = posixpath.normpath(name)
    return None if norm == ".." or norm.startswith("../") else norm.removeprefix("./")


def open_bundle(path: Path, limit: int = MAX_MEMBER_BYTES) -> Bundle:
    if path.is_dir():
        return Bundle(root=path.resolve(), limit=limit)
    if path.suffix.lower() in TEX:
        return Bundle(root=path.parent.resolve(), limit=limit)
    bundle = Bundle(limit=limit)
    total, seen = 0, 0
    try:
        with tarfile.open(path, mode="r|*") as tar:  # a stream: members in order, nothing extracted
            for member in tar:
                seen += 1
                name = _member_name(member.name)
                if not member.isreg() or not member.name.lower().endswith(MEMBERS):
                    continue
                if name is None:
                    bundle.notes.append(f"{member.name}: outside the source (absolute or ../), not read")
                elif member.size > limit or total + member.size > MAX_SOURCE_BYTES:
                    bundle.notes.append(f"{name}: {member.size:,} bytes, over the limit, not read")
                else:
                    f = tar.extractfile(member)
                    bundle.files[name] = _decode(f.read() if f else b"")
                    total += member.size
        return bundle
    except (tarfile.TarError, OSError, EOFError) as e:
        if seen:  # what was read before the damage is used; a paper missing its main file fails below
            bundle.notes.append(f"damaged tarball after {seen} member(s) ({e}): the rest not read")
            return bundle
    try:  # arXiv ships a one-file paper as a gzipped .tex
        with gzip.open(path) as f:
            data = f.read(limit + 1)
    except (OSError, EOFError) as e:
        raise LatexError(f"neither a tarball nor a gzipped .tex ({e})") from None
    if len(data) > limit:
        raise LatexError(f"the gzipped file is over {limit:,} bytes")
    if data[257:262] == b"ustar":
        raise LatexError("a damaged tarball (its first member cannot be read)")
    bundle.files["main.tex"] = _decode(data)
    return bundle


# ---- comments and includes ------------------------------------------------------------------------
_VERBATIM = re.compile(
    r"\\begin\{(verbatim\*?|Verbatim|lstlisting|minted|alltt)\}(.*?)\\end\{\1\}|\\(?:verb|lstinline)\*?([^A-Za-z\s{])([^\n]*?)\3",
    re.S,
)
_COMMENT = re.compile(r"(^|[^\\])((?:\\\\)*)%[^\n]*(?:\n[ \t]*)?", re.M)
_COMMENT_ENV = re.compile(r"\\begin\{comment\}.*?\\end\{comment\}", re.S)
_DOCCLASS = re.compile(r"\\document(?:class|style)(?![A-Za-z])")
_INCLUDE = re.compile(
    r"\\(?:input|include|subfile)(?![A-Za-z])\s*(?:\{([^{}]*)\}|([^\s{}\\]+))"
    r"|\\(?:sub)?(?:import|inputfrom|includefrom)\*?\{([^{}]*)\}\{([^{}]*)\}"
)
_BIBLIOGRAPHY = re.compile(r"\\bibliography(?![A-Za-z])\s*\{([^{}]*)\}|\\printbibliography(?![A-Za-z])(?:\[[^\]]*\])?")


def strip_comments(text: str) -> str:
    """``%`` comments (with the line end they eat) and ``comment`` environments out; verbatim kept."""
    out, last = [], 0
    for m in _VERBATIM.finditer(text):
        out += [_COMMENT_ENV.sub("", _COMMENT.sub(r"\1\2", text[last : m.start()])), m.group(0)]
        last = m.end()
    out.append(_COMMENT_ENV.sub("", _COMMENT.sub(r"\1\2", text[last:])))
    return "".join(out)


def _resolve(bundle: Bundle, name: str, stack: tuple[str, ...] = ()) -> str:
    """A file's text with its comments out and its ``\\input``s in, recursively, inside the bundle."""
    text = bundle.get(name)
    if text is None:
        bundle.notes.append(f"{name}: not in the source, left out")
        return ""
    base = posixpath.dirname(stack[0] if stack else name)

    def include(m: re.Match) -> str:
        if m.group(3) is not None:
            target = posixpath.join(m.group(3), m.group(4))
        else:
            target = (m.group(1) or m.group(2) or "").strip()
        found = _find(bundle, base, target)
        if found is None:
            bundle.notes.append(f"{target}: included by {name} but not in the source, left out")
            return ""
        if found in stack or found == name or len(stack) >= MAX_INCLUDE_DEPTH:
            bundle.notes.append(f"{found}: included in a loop (or too deep) from {name}, left out")
            return ""
        return _resolve(bundle, found, (*(stack or (name,)), found))

    return _INCLUDE.sub(include, strip_comments(text))


def _find(bundle: Bundle, base: str, target: str) -> str | None:
    for candidate in (posixpath.join(base, target), target):
        name = _member_name(candidate)
        if name is None:
            continue
        for n in (name, f"{name}.tex"):
            if bundle.get(n) is not None:
                return posixpath.normpath(n)
    return None


def _bbl(bundle: Bundle, main: str, text: str) -> str:
    """``\\bibliography{…}`` replaced by the ``.bbl`` beside the main file (arXiv ships it)."""

    def one(m: re.Match) -> str:
        stem = posixpath.splitext(main)[0]
        names = [f"{stem}.bbl"] + [f"{n.strip()}.bbl" for n in (m.group(1) or "").split(",") if n.strip()]
        for name in names:
            bbl = bundle.get(name)
            if bbl is not None and "\\begin{thebibliography}" in bbl:
                return strip_comments(bbl)
            if bbl is not None:
                bundle.notes.append(f"{name}: not a thebibliography .bbl (biblatex?), references left out")
                return ""
        bundle.notes.append("no .bbl for \\bibliography in the source, references left out")
        return ""

    return _BIBLIOGRAPHY.sub(one, text)


def _drop_iffalse(text: str) -> str:
    r"""``\iffalse … \fi`` blocks (the other way to comment out), nested conditionals counted."""
    token = re.compile(r"\\(if[A-Za-z@]*|fi)(?![A-Za-z@])")
    while (start := text.find("\\iffalse")) >= 0:
        depth, end = 0, None
        for m in token.finditer(text, start):
            if m.group(1) == "fi":
                depth -= 1
            elif m.group(1) != "iff":  # \iff is the logic symbol, not a conditional
                depth += 1
            if depth == 0:
                end = m.end()
                break
        if end is None:
            return text[:start]
        text = text[:start] + text[end:]
    return text


# ---- maths and other verbatim parts -------------------------------------------------------------
MATH_ENVS = (
    "equation|equation\\*|align|align\\*|alignat|alignat\\*|flalign|flalign\\*|gather|gather\\*|multline|multline\\*"
    "|eqnarray|eqnarray\\*|displaymath|math|dmath|dmath\\*|IEEEeqnarray|IEEEeqnarray\\*|subequations"
)
_MATH_ENV = re.compile(rf"\\begin\{{({MATH_ENVS})\}}.*?\\end\{{\1\}}", re.S)


DISPLAY = "\ue007"  # marks the token of a displayed formula or a code block


class _Stash:
    """Parts set aside while the text is converted, each replaced by a token of private-use characters
    (which the converter passes through as they are); each stash has its own pair."""

    def __init__(self, open_: str = "\ue000", close: str = "\ue001") -> None:
        self.parts: list[str] = []
        self.open, self.close = open_, close
        self.token = re.compile(f"{open_}(\\d+){close}")

    def put(self, text: str, display: bool = False) -> str:
        """The token for ``text``; a displayed part's token starts with ``DISPLAY`` so that the lines
        around it are not joined to it."""
        self.parts.append(text)
        return f"{DISPLAY if display else ''}{self.open}{len(self.parts) - 1}{self.close}"

    def restore(self, text: str) -> str:
        return self.token.sub(lambda m: self.parts[int(m.group(1))], text).replace(DISPLAY, "")


def set_maths_aside(text: str, stash: _Stash) -> str:
    """Every formula replaced by a token, verbatim: environments first, then ``\\[…\\]``, ``$$…$$``,
    ``\\(…\\)`` and ``$…$`` (a ``$`` inside braces, as in ``\\text{if $x$}``, does not end it)."""
    text = _MATH_ENV.sub(lambda m: stash.put(m.group(0), display=True), text)
    out, i, n = [], 0, len(text)
    start = 0
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n:
            if text[i + 1] in "[(":
                close = "\\]" if text[i + 1] == "[" else "\\)"
                j = text.find(close, i + 2)
                if j >= 0:
                    out += [text[start:i], stash.put(text[i : j + 2], display=text[i + 1] == "[")]
                    i = start = j + 2
                    continue
            i += 2
            continue
        if c == "$":
            display = text.startswith("$$", i)
            j = _math_end(text, i + (2 if display else 1), display)
            if j is not None:
                out += [text[start:i], stash.put(text[i:j], display=display)]
                i = start = j
                continue
        i += 1
    out.append(text[start:])
    return "".join(out)


def _math_end(s: str, i: int, display: bool) -> int | None:
    depth = 0
    while i < len(s):
        c = s[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif c == "$" and depth <= 0:
            if not display:
                return i + 1
            if s.startswith("$$", i):
                return i + 2
        elif c == "\n" and s.startswith("\n\n", i) and not display:
            return None  # a paragraph break: an unmatched $
        i += 1
    return None


def _fence(m: re.Match) -> str:
    if m.group(1):
        body = m.group(2)
        lang = ""
        if m.group(1) == "minted":
            got = group(body, 0)
            lang, body = (got[0], body[got[1] :]) if got else ("", body)
        elif m.group(1) == "lstlisting":
            opt = group(body, 0, "[", "]")
            if opt:
                lm = re.search(r"language\s*=\s*\{?([\w+#-]+)", opt[0])
                lang, body = (lm.group(1).lower() if lm else ""), body[opt[1] :]
        return f"```{lang}\n{body.strip(chr(10))}\n```"
    return f"`{m.group(4)}`"


# ---- bibliography and citations -------------------------------------------------------------------
_THEBIB = re.compile(r"\\begin\{thebibliography\}.*?(?:\\end\{thebibliography\}|\Z)", re.S)
_BIBITEM = re.compile(r"\\bibitem(?![A-Za-z])\s*(?:\[(?:[^\[\]]|\[[^\]]*\])*\])?\s*\{([^{}]*)\}")
_CITE = re.compile(
    r"\\(?:[Cc]ite[a-z]*|[Pp]arencite|[Tt]extcite|[Aa]utocite|footcite|nocite)\*?(?![A-Za-z])"
    r"((?:\s*\[[^\]]*\])*)\s*\{([^{}]*)\}"
)


def _bibliography(text: str) -> tuple[str, list[tuple[str, str]]]:
    """The text without its ``thebibliography`` environments, and their items as (key, LaTeX text)."""
    items: list[tuple[str, str]] = []
    for env in _THEBIB.findall(text):
        marks = list(_BIBITEM.finditer(env))
        for k, m in enumerate(marks):
            end = marks[k + 1].start() if k + 1 < len(marks) else len(env)
            body = re.sub(r"\\end\{thebibliography\}\s*$", "", env[m.end() : end].strip())
            items.append((m.group(1).strip(), body.strip()))
    return _THEBIB.sub("", text), items


def _cites(text: str, keys: list[str], style: str, stash: _Stash) -> str:
    number = {k: i for i, k in enumerate(keys, 1)}

    def one(m: re.Match) -> str:
        if m.group(0).startswith("\\nocite"):
            return ""
        cited = [k.strip() for k in m.group(2).split(",") if k.strip()]
        if style == "key":
            return stash.put(f"[{', '.join(cited)}]")
        for k in cited:
            number.setdefault(k, len(number) + 1)
        return stash.put(f"[{', '.join(str(number[k]) for k in cited)}]")

    return _CITE.sub(one, text)


# ---- LaTeX text → text (pylatexenc) ---------------------------------------------------------------
_HEADINGS = {"part": 1, "chapter": 1, "section": 2, "subsection": 3, "subsubsection": 4, "paragraph": 5}
_REFS = ("ref", "eqref", "cref", "Cref", "autoref", "pageref", "nameref", "vref")
_LOGOS = ("TeX", "LaTeX", "LaTeXe", "BibTeX", "AmS", "AmSTeX")
_FRONT_MATTER = ("author", "affiliation", "affil", "address", "institute", "email", "thanks", "date", "orcid")
_DROP = ("label", "maketitle", "tableofcontents", "bibliographystyle", "newpage", "clearpage", "centering", "noindent")


def _converter() -> Any:
    from pylatexenc.latex2text import EnvironmentTextSpec, LatexNodes2Text, MacroTextSpec, get_default_latex_context_db
    from pylatexenc.latexwalker import get_default_latex_context_db as walker_db
    from pylatexenc.macrospec import MacroSpec

    def heading(level: int) -> Callable[..., str]:
        def fmt(n: Any, l2tobj: Any) -> str:
            args = n.nodeargd.argnlist if n.nodeargd else []
            title = l2tobj.nodelist_to_text([args[-1]]) if args and args[-1] is not None else ""
            return f"\n\n{'#' * level} {' '.join(title.split())}\n\n"

        return fmt

    def nth(k: int, before: str = "", after: str = "") -> Callable[..., str]:
        def fmt(n: Any, l2tobj: Any) -> str:
            args = n.nodeargd.argnlist if n.nodeargd else []
            arg = args[k] if len(args) > k else None
            return f"{before}{l2tobj.nodelist_to_text([arg]).strip()}{after}" if arg is not None else ""

        return fmt

    def item(n: Any, l2tobj: Any) -> str:
        label = n.nodeargd.argnlist[0] if n.nodeargd and n.nodeargd.argnlist else None
        text = l2tobj.nodelist_to_text([label]).strip() if label is not None else ""
        return f"\n\ue004{text + ': ' if text else ''}"

    def items(numbered: bool) -> Callable[..., str]:
        def fmt(n: Any, l2tobj: Any) -> str:
            count = iter(range(1, 100_000))
            text = l2tobj.nodelist_to_text(n.nodelist)
            text = re.sub("\ue004\\s*", lambda _: f"{next(count)}. " if numbered else "- ", text)
            return "\n\n" + re.sub(r"\n\s*\n(?=\d+\. |- )", "\n", text.strip()) + "\n\n"

        return fmt

    def verbatim(n: Any) -> str:
        return n.latex_verbatim()

    def block(n: Any, l2tobj: Any) -> str:
        return "\n\n" + l2tobj.nodelist_to_text(n.nodelist).strip() + "\n\n"

    def abstract(n: Any, l2tobj: Any) -> str:
        return "\n\n## Abstract\n\n" + l2tobj.nodelist_to_text(n.nodelist).strip() + "\n\n"

    def tabular(n: Any, l2tobj: Any) -> str:
        body = l2tobj.nodelist_to_text(n.nodelist)
        rows = [[c.strip() for c in r.split("\ue002")] for r in body.split("\ue003")]
        return "\n\n" + "\n".join(f"| {' | '.join(r)} |" for r in rows if any(r)) + "\n\n"

    macros = [MacroTextSpec(name, simplify_repl=heading(level)) for name, level in _HEADINGS.items()]
    macros += [MacroTextSpec("subparagraph", simplify_repl=heading(6))]
    macros += [MacroTextSpec(name, simplify_repl=verbatim) for name in _REFS]
    macros += [MacroTextSpec(name, discard=True) for name in _DROP]
    macros += [
        MacroTextSpec("href", simplify_repl=nth(1)),
        MacroTextSpec("url", simplify_repl=nth(0)),
        MacroTextSpec("caption", simplify_repl=nth(1, "\n\n", "\n\n")),
        MacroTextSpec("footnote", simplify_repl=nth(1, " (", ")")),
        MacroTextSpec("includegraphics", discard=True),
        MacroTextSpec("newblock", simplify_repl=" "),
        MacroTextSpec("bibinfo", simplify_repl=nth(1)),
        MacroTextSpec("natexlab", simplify_repl=nth(0)),
        MacroTextSpec("\\", simplify_repl="\ue003"),
        MacroTextSpec("item", simplify_repl=item),
        *(MacroTextSpec(name, simplify_repl=name.replace("LaTeXe", "LaTeX2e")) for name in _LOGOS),
    ]
    macros += [MacroTextSpec(name, discard=True) for name in _FRONT_MATTER]
    envs = [
        EnvironmentTextSpec("itemize", simplify_repl=items(False)),
        EnvironmentTextSpec("description", simplify_repl=items(False)),
        EnvironmentTextSpec("enumerate", simplify_repl=items(True)),
        EnvironmentTextSpec("abstract", simplify_repl=abstract),
        EnvironmentTextSpec("tabular", simplify_repl=tabular),
        EnvironmentTextSpec("tabular*", simplify_repl=tabular),
        EnvironmentTextSpec("tabularx", simplify_repl=tabular),
    ]
    envs += [EnvironmentTextSpec(e, simplify_repl=block) for e in ("figure", "figure*", "table", "table*", "center")]
    text_db = get_default_latex_context_db()
    text_db.add_context_category("datamill", prepend=True, macros=macros, environments=envs)
    parse_db = walker_db()
    parse_db.add_context_category(
        "datamill",
        prepend=True,
        macros=[
            MacroSpec("href", "{{"),
            MacroSpec("caption", "[{"),
            MacroSpec("footnote", "[{"),
            MacroSpec("bibinfo", "{{"),
            MacroSpec("natexlab", "{"),
            MacroSpec("item", "["),
            *(MacroSpec(name, "*{") for name in _REFS),
            *(MacroSpec(name, "[{") for name in _FRONT_MATTER),
            MacroSpec("bibliographystyle", "{"),
        ],
        environments=[],
    )
    from pylatexenc.macrospec import EnvironmentSpec

    parse_db.add_context_category(
        "datamill-env",
        prepend=True,
        environments=[EnvironmentSpec("tabularx", "{{"), EnvironmentSpec("tabular*", "{[{")],
    )
    return LatexNodes2Text(latex_context=text_db, math_mode="verbatim", keep_braced_groups=False), parse_db


_CONVERTER: Any = None


def _walker() -> Any:
    from pylatexenc import latexwalker

    return latexwalker


def latex_to_text(latex: str) -> str:
    """LaTeX text (its maths already set aside) → plain text with markdown headings and lists."""
    global _CONVERTER
    if _CONVERTER is None:
        _CONVERTER = _converter()
    l2t, parse_db = _CONVERTER
    latex = re.sub(r"(?<!\\)&", "\ue002", latex) if "\\begin{tabular" in latex else latex
    nodes, _, _ = _walker().LatexWalker(latex, latex_context=parse_db, tolerant_parsing=True).get_latex_nodes()
    text = l2t.nodelist_to_text(nodes).replace("\xa0", " ").replace("\ue003", "\n").replace("\ue002", "&")
    text = re.sub(r"[ \t]+\n", "\n", text)
    text = re.sub(r"\n[ \t]+(?=\S)", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", _join_lines(text)).strip()


_NOT_PROSE = re.compile(rf"^(?:#{{1,6}} |- |\d+\. |\| )|{DISPLAY}")
_ITEM_LINE = re.compile(r"(?:- |\d+\. )")


def _join_lines(text: str) -> str:
    """The source's line wraps undone: a line of prose joins the one before it, unless either is a
    heading, a table row, a displayed formula or code (a list item takes its continuation lines)."""
    out: list[str] = []
    for line in text.split("\n"):
        prev = out[-1] if out else ""
        prose = line.strip() and prev.strip() and not _NOT_PROSE.search(line)
        if prose and (not _NOT_PROSE.search(prev) or (_ITEM_LINE.match(prev) and DISPLAY not in prev)):
            out[-1] = f"{prev.rstrip()} {line.strip()}"
        else:
            out.append(line)
    return "\n".join(out)


# ---- one paper ------------------------------------------------------------------------------------
_THEOREMS = {"proof": "Proof"}
_TITLE = re.compile(r"\\title\s*(?:\[[^\]]*\])?\s*(?=\{)")
_BEGIN_DOC = re.compile(r"\\begin\{document\}")
_END_DOC = re.compile(r"\\end\{document\}")
_USEPACKAGE = re.compile(r"\\usepackage\s*(?:\[[^\]]*\])?\s*\{([^{}]*)\}")


@dataclass
class Paper:
    text: str
    title: str | None
    references: int
    macros: int
    notes: list[str]


def convert(bundle: Bundle, main: str, opts: Options | None = None) -> Paper:
    """One main file of a source → its text, maths verbatim, macros expanded."""
    opts = opts or Options()
    notes_before = len(bundle.notes)
    text = _bbl(bundle, main, _resolve(bundle, main))
    code = _Stash("\ue005", "\ue006")
    text = _VERBATIM.sub(lambda m: f"\n\n{code.put(_fence(m), True)}\n\n" if m.group(1) else code.put(_fence(m)), text)
    text = _drop_iffalse(text)
    defs = Definitions()
    for package in _USEPACKAGE.findall(text):  # the paper's own .sty files define macros too
        for name in package.split(","):
            sty = bundle.get(posixpath.join(posixpath.dirname(main), f"{name.strip()}.sty"))
            if sty is not None:
                take_definitions(_drop_iffalse(strip_comments(sty)), defs)
    text = take_definitions(text, defs)
    expander = Expander(defs)
    text = expander.expand(text)
    begin = _BEGIN_DOC.search(text)
    preamble, body = (text[: begin.start()], text[begin.end() :]) if begin else ("", text)
    end = _END_DOC.search(body)
    body = body[: end.start()] if end else body
    title = _title(preamble) or _title(body)
    body = _without_title(body)
    body, items = _bibliography(body)
    stash = _Stash()
    body = set_maths_aside(body, stash)
    body = _cites(body, [k for k, _ in items], opts.cite, stash)
    body = _theorems(body, {**_THEOREMS, **defs.theorems})
    parts = [f"# {title}"] if title else []
    parts.append(latex_to_text(body))
    if items and opts.bibliography == "keep":
        refs = [
            f"[{n if opts.cite == 'number' else key}] {' '.join(latex_to_text(set_maths_aside(item, stash)).split())}"
            for n, (key, item) in enumerate(items, 1)
        ]
        parts.append("## References\n\n" + "\n".join(refs))
    out = code.restore(stash.restore("\n\n".join(p for p in parts if p.strip())))
    return Paper(out, title, len(items), expander.count, bundle.notes[notes_before:])


def _without_title(body: str) -> str:
    m = _TITLE.search(body)
    got = group(body, m.end()) if m else None
    return body[: m.start()] + body[got[1] :] if m and got else body


def _title(latex: str) -> str | None:
    m = _TITLE.search(latex)
    got = group(latex, m.end()) if m else None
    if got is None:
        return None
    stash = _Stash()
    title = stash.restore(latex_to_text(set_maths_aside(got[0].replace("\\\\", " "), stash)))
    return " ".join(title.split()) or None


def _theorems(body: str, names: dict[str, str]) -> str:
    """``\\begin{lemma}[Name]`` → a bold run-in "Lemma (Name)." and ``\\end{lemma}`` → a paragraph end."""
    if not names:
        return body
    alt = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    begin = re.compile(rf"\\begin\{{({alt})\}}(\s*\[[^\]]*\])?")

    def one(m: re.Match) -> str:
        extra = f" ({m.group(2).strip()[1:-1].strip()})" if m.group(2) else ""
        return f"\n\n\\textbf{{{names[m.group(1)]}{extra}.}} "

    body = begin.sub(one, body)
    return re.sub(rf"\\end\{{(?:{alt})\}}", "\n\n", body)


# ---- a source → records ---------------------------------------------------------------------------
def mains(bundle: Bundle) -> list[str]:
    """The main files: those with ``\\documentclass``."""
    return [n for n in bundle.names() if _DOCCLASS.search(strip_comments(bundle.get(n) or ""))]


def _part_of_a_main(path: Path, limit: int) -> bool:
    """Is this ``.tex`` without ``\\documentclass`` included by a main file in its folder or the two above?"""
    path = path.resolve()
    for root in [path.parent, *path.parent.parents][:3]:
        me = path.relative_to(root).as_posix()
        bundle = Bundle(root=root, limit=limit)
        for name in sorted(n for n in os.listdir(root) if n.lower().endswith(TEX) and n != me):
            if _DOCCLASS.search(strip_comments(bundle.get(name) or "")):
                probe = Bundle(root=root, limit=limit)
                _resolve(probe, name)
                if me in probe.files:
                    return True
    return False


def read(path: str | Path, **given: Any) -> Iterator[Record | Quarantined]:
    """One record per main file of the source, or one ``Quarantined`` naming the file and why."""
    opts = options(Options, given, FORMAT)
    path = Path(path)
    source = str(path)
    if path.is_file() and path.suffix.lower() in PARTS:
        return  # a .bbl or .sty of a paper: read with its main file
    try:
        bundle = open_bundle(path, opts.max_member_bytes)
        if path.suffix.lower() in TEX and path.is_file():
            name = path.name
            if not _DOCCLASS.search(strip_comments(bundle.get(name) or "")) and _part_of_a_main(path, bundle.limit):
                return  # read as part of its main file
            found = [name]
        else:
            found = mains(bundle) or (["main.tex"] if "main.tex" in bundle.files and len(bundle.files) == 1 else [])
        if not found:
            raise LatexError("no main file: no .tex with \\documentclass in it")
        opened = list(bundle.notes)  # members not read, for every paper of the source
        papers = [(name, convert(bundle, name, opts)) for name in found]
    except (LatexError, OSError, tarfile.TarError, EOFError) as e:
        yield Quarantined(source, source, None, 0, f"{source}: latex: {e}", None, stage="ingest")
        return
    except Exception as e:  # the parser choking on a malformed source: report it, go on
        yield Quarantined(
            source, source, None, 0, f"{source}: latex: cannot read ({type(e).__name__}: {e})", None, stage="ingest"
        )
        return
    for name, paper in papers:
        if not paper.text.strip():
            yield Quarantined(source, source, None, 0, f"{source}: latex: {name}: no text", None, stage="ingest")
            continue
        meta = {
            "source": source,
            "doc_type": FORMAT,
            "main": name,
            "title": paper.title,
            "references": paper.references,
            "macros_expanded": paper.macros,
            "notes": opened + paper.notes,
        }
        rec = Record(text=paper.text, meta=meta)
        rec.id = rec.compute_id()
        yield rec


__all__ = ["Bundle", "Options", "claims", "convert", "latex_to_text", "open_bundle", "read", "strip_comments"]
