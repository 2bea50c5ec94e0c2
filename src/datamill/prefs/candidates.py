"""Candidates: the prompt a record asks, the answer it holds, and the model an answer came from."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from datamill.record import Message, Record

SOURCE_MODEL = re.compile(r"predictions_(.+?)\.jsonl?$")
SPACES = re.compile(r"\s+")


def prompt_of(rec: Record) -> list[Message]:
    """The turns up to and including the last user (or tool) turn: what every candidate answers."""
    last = max((i for i, m in enumerate(rec.messages) if m.role in ("user", "tool")), default=-1)
    return list(rec.messages[: last + 1])


def answer_of(rec: Record) -> str | None:
    """The assistant answer after the prompt, or None when the record has none."""
    rest = rec.messages[len(prompt_of(rec)) :]
    texts = [m.content for m in rest if m.role == "assistant"]
    return "\n".join(texts) if texts else None


def prompt_text(rec: Record) -> str:
    """The prompt as one string for a judge: system, then the turns (earlier turns labelled by role)."""
    turns = prompt_of(rec)
    if len(turns) == 1 and not rec.system:
        return turns[0].content
    parts = [f"[system] {rec.system}"] if rec.system else []
    parts += [f"[{m.role}] {m.content}" for m in turns]
    return "\n".join(parts)


def group_key(rec: Record) -> bytes:
    """Records asking the same prompt (whitespace-insensitive) share a key."""
    text = "\x1f".join([rec.system or ""] + [f"{m.role}:{SPACES.sub(' ', m.content).strip()}" for m in prompt_of(rec)])
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def model_of(rec: Record, key: str = "model", pattern: re.Pattern[str] = SOURCE_MODEL) -> str:
    """``meta[key]`` if set, else the model named by the source file (``predictions_<model>.jsonl``),
    else the file's stem, else ``"unknown"``."""
    value = rec.meta.get(key)
    if isinstance(value, str) and value:
        return value
    source = rec.meta.get("source")
    if isinstance(source, str) and source:
        name = Path(source).name
        m = pattern.search(name)
        return m.group(1) if m else Path(name).stem
    return "unknown"


def candidates(rec: Record) -> list[dict[str, Any]]:
    value = rec.meta.get("candidates")
    return value if isinstance(value, list) else []


def clip(text: str, limit: int) -> str:
    """At most ``limit`` characters for a judge prompt (the tail is marked, not silently lost)."""
    return text if len(text) <= limit else text[:limit] + " […]"
