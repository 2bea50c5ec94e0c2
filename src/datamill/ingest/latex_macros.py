"""LaTeX macros: the user's definitions read from a source — ``\\newcommand`` and its kin (an optional
first argument with its default), ``\\def`` with undelimited parameters, ``\\let``,
``\\DeclareMathOperator``, ``\\newenvironment``, ``\\newtheorem`` — taken out of the text, then expanded
wherever they are used, so that a formula no longer depends on a preamble. TeX's rules where they
matter for text: a control word eats the spaces after it, arguments are braced groups or single tokens.
A budget of expansions and a depth limit stop recursive definitions."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_EXPANSIONS = 200_000  # macro uses expanded in one document; past it (a recursive macro?) the rest stays as is
MAX_EXPANSION_DEPTH = 32


@dataclass
class Macro:
    nargs: int
    default: str | None  # the optional first argument's default, when it has one
    body: str


def _skip_space(s: str, i: int) -> int:
    while i < len(s) and s[i] in " \t\r\n":
        i += 1
    return i


def group(s: str, i: int, open_: str = "{", close: str = "}") -> tuple[str, int] | None:
    """The balanced group opening at ``s[i]`` (after spaces): its inside and the index after it."""
    i = _skip_space(s, i)
    if i >= len(s) or s[i] != open_:
        return None
    depth, j = 0, i
    while j < len(s):
        c = s[j]
        if c == "\\":
            j += 2
            continue
        if c == "{" or (c == open_ and open_ != "{" and depth == 0):
            depth += 1
        elif c == "}" or (c == close and close != "}" and depth == 1):
            depth -= 1
            if depth == 0:
                return s[i + 1 : j], j + 1
        j += 1
    return None


def _arg(s: str, i: int) -> tuple[str, int] | None:
    """One undelimited argument: a braced group, a control sequence or a character."""
    got = group(s, i)
    if got is not None:
        return got
    i = _skip_space(s, i)
    if i >= len(s) or s[i] == "}":
        return None
    if s[i] == "\\":
        m = re.compile(r"\\(?:[A-Za-z@]+|.)", re.S).match(s, i)
        return (m.group(0), m.end()) if m else None
    return s[i], i + 1


_DEFINE = re.compile(
    r"\\(newcommand|renewcommand|providecommand|DeclareRobustCommand|def|gdef|edef|xdef|let|DeclareMathOperator"
    r"|newenvironment|renewenvironment|newtheorem)(?![A-Za-z@])(\*?)"
)
_NAME = re.compile(r"\s*\\([A-Za-z@]+|.)")
_PARAMS = re.compile(r"(?:#[1-9])*")


@dataclass
class Definitions:
    macros: dict[str, Macro] = field(default_factory=dict)
    environments: dict[str, tuple[int, str | None, str, str]] = field(
        default_factory=dict
    )  # nargs, default, begin, end
    theorems: dict[str, str] = field(default_factory=dict)  # environment → its printed name


def take_definitions(text: str, defs: Definitions) -> str:
    """Record every definition in ``text`` and return the text without them (one that does not parse
    stays in the text)."""
    out, last = [], 0
    for m in _DEFINE.finditer(text):
        if m.start() < last:
            continue
        end = _definition(text, m, defs)
        if end is not None:
            out.append(text[last : m.start()])
            last = end
    out.append(text[last:])
    return "".join(out)


def _definition(s: str, m: re.Match, defs: Definitions) -> int | None:
    kind, star, i = m.group(1), m.group(2), m.end()
    if kind in ("newcommand", "renewcommand", "providecommand", "DeclareRobustCommand", "DeclareMathOperator"):
        got = group(s, i)
        if got is not None:
            name_m = re.fullmatch(r"\\([A-Za-z@]+|.)", got[0].strip())
            i = got[1]
        else:
            name_m = _NAME.match(s, i)
            i = name_m.end() if name_m else i
        if not name_m:
            return None
        name = name_m.group(1)
        if kind == "DeclareMathOperator":
            body = group(s, i)
            if body is None:
                return None
            defs.macros[name] = Macro(0, None, f"\\operatorname{'*' if star else ''}{{{body[0]}}}")
            return body[1]
        nargs, default, i = _arity(s, i)
        body = group(s, i)
        if body is None:
            return None
        if kind != "providecommand" or name not in defs.macros:
            defs.macros[name] = Macro(nargs, default, body[0])
        return body[1]
    if kind in ("def", "gdef", "edef", "xdef"):
        name_m = _NAME.match(s, i)
        if not name_m:
            return None
        params = _PARAMS.match(s, name_m.end())
        body = group(s, params.end()) if params else None
        if body is None or s[params.end() : _skip_space(s, params.end())].strip():
            return None  # delimited parameters (\def\a#1.{…}) are not expanded
        defs.macros[name_m.group(1)] = Macro(len(params.group(0)) // 2, None, body[0])
        return body[1]
    if kind == "let":
        name_m = _NAME.match(s, i)
        if not name_m:
            return None
        j = _skip_space(s, name_m.end())
        j = _skip_space(s, j + 1) if j < len(s) and s[j] == "=" else j
        target = re.compile(r"\\([A-Za-z@]+|.)").match(s, j)
        if not target:
            return None
        if target.group(1) in defs.macros:
            defs.macros[name_m.group(1)] = defs.macros[target.group(1)]
        else:
            defs.macros[name_m.group(1)] = Macro(0, None, target.group(0))
        return target.end()
    if kind in ("newenvironment", "renewenvironment"):
        name = group(s, i)
        if name is None:
            return None
        nargs, default, j = _arity(s, name[1])
        begin = group(s, j)
        end = group(s, begin[1]) if begin else None
        if begin is None or end is None:
            return None
        defs.environments[name[0].strip()] = (nargs, default, begin[0], end[0])
        return end[1]
    # \newtheorem{name}[counter]{Printed}[within]  /  \newtheorem*{name}{Printed}
    name = group(s, i)
    if name is None:
        return None
    j = name[1]
    shared = group(s, j, "[", "]")
    j = shared[1] if shared else j
    printed = group(s, j)
    if printed is None:
        return None
    within = group(s, printed[1], "[", "]")
    defs.theorems[name[0].strip()] = printed[0].strip()
    return within[1] if within else printed[1]


def _arity(s: str, i: int) -> tuple[int, str | None, int]:
    """``[n][default]`` after a macro's name: its argument count, optional default, and where it ends."""
    n = group(s, i, "[", "]")
    if n is None or not n[0].strip().isdigit():
        return 0, None, i
    default = group(s, n[1], "[", "]")
    return int(n[0].strip()), (default[0] if default else None), (default[1] if default else n[1])


_CONTROL_WORD = re.compile(r"\\([A-Za-z@]+)")
_ENDS_IN_WORD = re.compile(r"\\[A-Za-z@]+$")


def _skip_word_space(s: str, i: int) -> int:
    """After a control word TeX skips spaces and one line end (a blank line is a paragraph)."""
    n = len(s)
    while i < n and s[i] in " \t":
        i += 1
    if i < n and s[i] == "\n":
        i += 1
        while i < n and s[i] in " \t":
            i += 1
        if i < n and s[i] == "\n":
            return i - 1
    return i


_PARAM = re.compile(r"#(#|[1-9])")


class Expander:
    """User macros and environments expanded everywhere, with a budget against recursive definitions."""

    def __init__(self, defs: Definitions):
        self.defs, self.left, self.depth = defs, MAX_EXPANSIONS, 0
        self.count = 0
        names = "|".join(re.escape(n) for n in defs.environments)
        self.envs = re.compile(rf"\\(begin|end)\s*\{{({names})\}}") if names else None

    def expand(self, s: str) -> str:
        if self.depth >= MAX_EXPANSION_DEPTH:
            return s
        self.depth += 1
        try:
            if self.envs is not None:
                s = self._environments(s)
            return self._macros(s) if self.defs.macros else s
        finally:
            self.depth -= 1

    def _macros(self, s: str) -> str:
        out, i = [], 0
        while (m := _CONTROL_WORD.search(s, i)) is not None:
            mac = self.defs.macros.get(m.group(1))
            if mac is None or self.left <= 0:
                out.append(s[i : m.end()])
                i = m.end()
                continue
            args, end = self._args(s, m.end(), mac)
            if args is None:
                out.append(s[i : m.end()])
                i = m.end()
                continue
            self.left -= 1
            self.count += 1
            body = self.expand(_substitute(mac.body, args))
            if mac.nargs == 0:  # a control word eats the spaces after it; keep one if a letter would join it
                after = _skip_word_space(s, end)
                if _ENDS_IN_WORD.search(body) and (after > end or (after < len(s) and s[after].isalpha())):
                    body += " "
                end = after
            out += [s[i : m.start()], body]
            i = end
        out.append(s[i:])
        return "".join(out)

    def _args(self, s: str, i: int, mac: Macro) -> tuple[list[str] | None, int]:
        args: list[str] = []
        n = mac.nargs
        if mac.default is not None:
            opt = group(s, i, "[", "]")
            args.append(opt[0] if opt else mac.default)
            i = opt[1] if opt else i
            n -= 1
        for _ in range(n):
            got = _arg(s, i)
            if got is None:
                return None, i
            args.append(got[0])
            i = got[1]
        return args, i

    def _environments(self, s: str) -> str:
        out, i = [], 0
        assert self.envs is not None
        while (m := self.envs.search(s, i)) is not None:
            nargs, default, begin, end = self.defs.environments[m.group(2)]
            if m.group(1) == "end":
                out += [s[i : m.start()], end]
                i = m.end()
                continue
            args, j = self._args(s, m.end(), Macro(nargs, default, begin))
            if args is None:
                args, j = [], m.end()
            out += [s[i : m.start()], _substitute(begin, args)]
            i = j
        out.append(s[i:])
        return "".join(out)


def _substitute(body: str, args: list[str]) -> str:
    return _PARAM.sub(
        lambda p: "#" if p.group(1) == "#" else (args[int(p.group(1)) - 1] if int(p.group(1)) <= len(args) else ""),
        body,
    )
