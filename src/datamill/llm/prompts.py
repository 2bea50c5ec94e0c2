"""Prompts live in files, not in code: Jinja2 templates with an English and a Chinese variant.

Shipped templates are ``src/datamill/llm/prompts/NAME.LANG.j2`` (``LANG`` is ``en`` or ``zh``);
a user passes a path to their own file instead of a name. A template may define the blocks
``system`` and ``user`` (each becomes one chat message); a template without blocks renders to one
user message.

Rendering uses Jinja2's sandbox (no attribute tricks, no file or module access) with
``StrictUndefined`` (a missing variable is an error, not an empty string). Record text is passed
as *data*: it is inserted as it is and never parsed as template syntax, so a document containing
``{{ ... }}`` or ``{% ... %}`` cannot change what the template does.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from datamill.errors import DatamillError

PROMPTS_DIR = Path(__file__).parent / "prompts"
LANGS = ("en", "zh")
CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002a6df]")


class PromptError(DatamillError):
    """A template is missing, does not parse, or needs a variable that was not given."""


def detect_lang(text: str, threshold: float = 0.2) -> str:
    """``zh`` when at least ``threshold`` of the letters in the first 2,000 characters are CJK
    ideographs, else ``en``."""
    sample = text[:2000]
    letters = sum(c.isalpha() for c in sample)
    if not letters:
        return "en"
    return "zh" if len(CJK.findall(sample)) / letters >= threshold else "en"


@lru_cache(maxsize=1)
def _env() -> Any:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    return ImmutableSandboxedEnvironment(
        undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False, trim_blocks=True, lstrip_blocks=True
    )


def available() -> dict[str, list[str]]:
    """Shipped template names and their languages."""
    out: dict[str, list[str]] = {}
    for p in sorted(PROMPTS_DIR.glob("*.j2")):
        name, _, lang = p.stem.rpartition(".")
        out.setdefault(name, []).append(lang)
    return out


def resolve(name_or_path: str | Path, lang: str | None = None) -> Path:
    """A path to an existing file is used as is; otherwise ``name`` picks ``NAME.LANG.j2`` (falling
    back to English when the language has no variant)."""
    p = Path(name_or_path)
    if p.suffix in (".j2", ".jinja", ".jinja2", ".txt", ".md") or p.exists():
        if not p.is_file():
            raise PromptError(f"prompt template file not found: {p}")
        return p
    lang = lang or "en"
    for candidate in (lang, "en"):
        f = PROMPTS_DIR / f"{name_or_path}.{candidate}.j2"
        if f.is_file():
            return f
    names = ", ".join(available()) or "none"
    raise PromptError(f"no prompt template named '{name_or_path}' (shipped: {names}); or pass a path to a .j2 file")


@lru_cache(maxsize=256)
def _load(path: str, mtime: float) -> Any:
    from jinja2 import TemplateSyntaxError

    try:
        return _env().from_string(Path(path).read_text(encoding="utf-8"))
    except TemplateSyntaxError as e:
        raise PromptError(f"{path}:{e.lineno}: template syntax error: {e.message}") from None


class Prompt:
    """A loaded template. ``messages(**vars)`` renders chat messages; ``text(**vars)`` one string."""

    def __init__(self, name_or_path: str | Path, lang: str | None = None):
        self.path = resolve(name_or_path, lang)
        self.template = _load(str(self.path), self.path.stat().st_mtime)

    def _render(self, block: str | None, variables: dict[str, Any]) -> str:
        from jinja2 import UndefinedError
        from jinja2.exceptions import SecurityError

        try:
            if block is None:
                return self.template.render(**variables).strip()
            ctx = self.template.new_context(dict(variables))
            return "".join(self.template.blocks[block](ctx)).strip()
        except UndefinedError as e:
            raise PromptError(f"{self.path}: {e.message} (pass it as a template variable)") from None
        except SecurityError as e:
            raise PromptError(f"{self.path}: unsafe template operation refused: {e}") from None

    def messages(self, **variables: Any) -> list[dict[str, str]]:
        blocks = self.template.blocks
        if "user" not in blocks:
            return [{"role": "user", "content": self._render(None, variables)}]
        out = []
        if "system" in blocks and (system := self._render("system", variables)):
            out.append({"role": "system", "content": system})
        out.append({"role": "user", "content": self._render("user", variables)})
        return out

    def text(self, **variables: Any) -> str:
        if "user" in self.template.blocks:
            return "\n\n".join(m["content"] for m in self.messages(**variables))
        return self._render(None, variables)


def load(name_or_path: str | Path, lang: str | None = None, text: str | None = None) -> Prompt:
    """Load a template by name or path; the language is ``lang`` if given, else detected from
    ``text`` (the record's text), else English."""
    if lang is None:
        lang = detect_lang(text) if text else "en"
    if lang not in LANGS:
        raise PromptError(f"unknown prompt language '{lang}' (expected one of {', '.join(LANGS)})")
    return Prompt(name_or_path, lang)


def render(name_or_path: str | Path, lang: str | None = None, *, text: str | None = None, **variables: Any):
    """Shortcut: chat messages of template ``name_or_path`` (language chosen as in :func:`load`)."""
    if text is not None:
        variables.setdefault("text", text)
    return load(name_or_path, lang, text).messages(**variables)
