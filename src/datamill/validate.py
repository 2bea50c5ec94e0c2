"""Per-record checks: what would make a trainer reject or mis-learn a record.

Errors (structure LLaMA-Factory/TRL would reject: role order, media/placeholder mismatch, missing
pair side) send a record to quarantine during conversion; warnings (empty answers, blank
prompts) are reported and counted but the record is kept. ``datamill validate`` also checks that
every media file exists (``media_files``), as a trainer's loader would fail on it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from datamill.media import resolve, source_folder
from datamill.record import MEDIA, PLACEHOLDERS, Record

ODD = ("user", "tool")  # roles allowed at turns 1, 3, 5 … (LLaMA-Factory's rule)
EVEN = ("assistant", "function")


@dataclass(frozen=True, slots=True)
class Problem:
    severity: str  # "error" | "warning"
    code: str
    message: str


def check(rec: Record, media_files: bool = False, media_dir: str | None = None) -> list[Problem]:
    """``media_files``: also check that each local media path names an existing file, relative to
    ``media_dir`` (default: the folder of the record's input file)."""
    if rec.text is not None:
        return [] if rec.text.strip() else [Problem("warning", "empty_text", "the document text is empty")]
    problems: list[Problem] = []
    problems += _role_order(rec)
    problems += _media(rec)
    if media_files and rec.media():
        problems += _media_files(rec, media_dir)
    problems += _empties(rec)
    return problems


def _role_order(rec: Record) -> list[Problem]:
    msgs = rec.messages
    if not msgs:
        return [Problem("error", "no_messages", "the conversation has no turns")]
    out = []
    for i, m in enumerate(msgs):
        allowed = ODD if i % 2 == 0 else EVEN
        if m.role not in allowed:
            out.append(
                Problem(
                    "error",
                    "role_order",
                    f"turn {i + 1} is '{m.role}' but must be {' or '.join(allowed)} "
                    "(turns alternate user/tool → assistant/function)",
                )
            )
            break
    for i, m in enumerate(msgs):
        if m.role == "tool" and (i == 0 or msgs[i - 1].role != "function"):
            out.append(Problem("warning", "orphan_tool", f"turn {i + 1} is a tool result without a call before it"))
            break
    if rec.kind == "preference":
        if rec.chosen is None or rec.rejected is None:
            out.append(Problem("error", "missing_pair", "a preference record needs both chosen and rejected"))
        if len(msgs) % 2 == 0:
            out.append(Problem("error", "role_order", "a preference prompt must end with a user turn"))
    elif len(msgs) % 2:
        out.append(Problem("error", "role_order", "the conversation must end with an assistant turn"))
    return out


def _media(rec: Record) -> list[Problem]:
    texts = [m.content for m in rec.messages]
    if not rec.media() and not any("<" in t for t in texts) and "<" not in (rec.system or ""):
        return []  # fast path: no media and no placeholder can be there
    if rec.system:
        texts.append(rec.system)
    out = []
    for key in MEDIA:
        tag = PLACEHOLDERS[key]
        n_tags = sum(t.count(tag) for t in texts)
        n_files = len(getattr(rec, key) or [])
        if n_tags != n_files:
            out.append(Problem("error", "media_mismatch", f"{n_tags} {tag} placeholder(s) but {n_files} {key} path(s)"))
    return out


def _media_files(rec: Record, media_dir: str | None) -> list[Problem]:
    folder = os.path.abspath(media_dir) if media_dir is not None else source_folder(rec.meta.get("source"))
    out = []
    for key, paths in rec.media().items():
        for path in paths:
            target = resolve(path, folder)
            if target is not None and not os.path.isfile(target):
                out.append(Problem("error", "media_missing", f"{key} file '{path}' not found (looked for {target})"))
    return out


def _empties(rec: Record) -> list[Problem]:
    out = []
    answers = [m for m in rec.messages if m.role in EVEN]
    answers += [m for m in (rec.chosen, rec.rejected) if m is not None]
    if any(not m.content.strip() for m in answers):
        out.append(Problem("warning", "empty_answer", "an answer (output/assistant turn) is empty"))
    prompts = [m for m in rec.messages if m.role == "user"]
    if prompts and any(not m.content.strip() for m in prompts):
        out.append(Problem("warning", "empty_prompt", "a prompt (instruction/user turn) is empty"))
    if rec.chosen is not None and rec.rejected is not None and rec.chosen.content == rec.rejected.content:
        out.append(Problem("warning", "same_pair", "chosen and rejected are identical"))
    return out


def errors(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]
