"""The one canonical record every format converts to and from.

A record is either a pretraining document (``text``) or a conversation (``system``,
``messages``, ``tools``), optionally with a preference pair (``chosen``/``rejected``),
a KTO ``label``, media paths, free-form ``meta`` and a stable content-based ``id``.

Message roles are ``user``, ``assistant``, ``function`` (a tool call made by the
assistant; content is JSON ``{"name", "arguments"}`` or a list of them) and ``tool``
(the tool's result). The system prompt lives in ``Record.system``, never in ``messages``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

ROLES = ("user", "assistant", "function", "tool")
MEDIA = ("images", "videos", "audios")
PLACEHOLDERS = {"images": "<image>", "videos": "<video>", "audios": "<audio>"}
# message roles each part covers for Record.rewrite (None: every role)
REWRITE_ROLES: dict[str, tuple[str, ...] | None] = {
    "all": None,
    "prompt": ("user", "tool"),
    "answer": ("assistant",),
    "text": (),
}


@dataclass(slots=True)
class Message:
    role: str
    content: str

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(slots=True)
class Record:
    messages: list[Message] = field(default_factory=list)
    system: str | None = None
    tools: Any = None  # parsed JSON: a list of function schemas
    text: str | None = None
    chosen: Message | None = None
    rejected: Message | None = None
    label: bool | None = None
    images: list[str] | None = None
    videos: list[str] | None = None
    audios: list[str] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    id: str = ""

    @property
    def kind(self) -> str:
        """pretrain | preference | kto | sft — what training stage the record serves."""
        if self.text is not None:
            return "pretrain"
        if self.chosen is not None or self.rejected is not None:
            return "preference"
        if self.label is not None:
            return "kto"
        return "sft"

    def part(self, which: str) -> str:
        """The text an operator looks at, newline-joined: ``prompt`` (system + user/tool turns),
        ``answer`` (assistant/function turns and the preference pair), ``text`` (the document) or
        ``all`` of it in turn order."""
        if self.text is not None:
            return self.text if which in ("all", "text") else ""
        pair = [m.content for m in (self.chosen, self.rejected) if m is not None]
        system = [self.system] if self.system else []
        if which == "all":
            pieces = system + [m.content for m in self.messages] + pair
        elif which == "prompt":
            pieces = system + [m.content for m in self.messages if m.role in ("user", "tool")]
        elif which == "answer":
            pieces = [m.content for m in self.messages if m.role in ("assistant", "function")] + pair
        else:
            pieces = []
        return "\n".join(pieces)

    def rewrite(self, part: str, fn: Callable[[str], str], skip_roles: tuple[str, ...] = ()) -> None:
        """Replace, in place, every non-empty string of one part by ``fn(string)``: ``text`` (the
        document), ``prompt`` (system + user/tool turns), ``answer`` (assistant turns and the
        preference pair) or ``all``. Turns whose role is in ``skip_roles`` are left alone."""
        if self.text is not None:
            if part in ("all", "text") and self.text:
                self.text = fn(self.text)
            return
        roles = REWRITE_ROLES[part]
        self.messages = [
            Message(m.role, fn(m.content))
            if m.content and (roles is None or m.role in roles) and m.role not in skip_roles
            else m
            for m in self.messages
        ]
        if part in ("all", "prompt") and self.system:
            self.system = fn(self.system)
        if part in ("all", "answer"):
            for side in ("chosen", "rejected"):
                m = getattr(self, side)
                if m is not None and m.content:
                    setattr(self, side, Message(m.role, fn(m.content)))

    def media(self) -> dict[str, list[str]]:
        return {m: getattr(self, m) for m in MEDIA if getattr(self, m)}

    def content_dict(self) -> dict[str, Any]:
        """Every content field that is set (no ``meta``, no ``id``)."""
        out: dict[str, Any] = {}
        if self.text is not None:
            out["text"] = self.text
        if self.system is not None:
            out["system"] = self.system
        if self.messages:
            out["messages"] = [m.to_dict() for m in self.messages]
        if self.tools is not None:
            out["tools"] = self.tools
        if self.chosen is not None:
            out["chosen"] = self.chosen.to_dict()
        if self.rejected is not None:
            out["rejected"] = self.rejected.to_dict()
        if self.label is not None:
            out["label"] = self.label
        for m in MEDIA:
            value = getattr(self, m)
            if value:
                out[m] = value
        return out

    def to_dict(self) -> dict[str, Any]:
        """Lossless dict form (the ``datamill`` native format, quarantine and drop files)."""
        out = {"id": self.id or self.compute_id(), **self.content_dict()}
        if self.meta:
            out["meta"] = self.meta
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Record:
        """Inverse of ``to_dict`` for files datamill wrote itself (pipeline shards); untrusted
        input goes through the type-checked ``datamill`` format instead."""

        def msg(x: dict[str, Any] | None) -> Message | None:
            return None if x is None else Message(x["role"], x["content"])

        return cls(
            messages=[Message(m["role"], m["content"]) for m in d.get("messages") or []],
            system=d.get("system"),
            tools=d.get("tools"),
            text=d.get("text"),
            chosen=msg(d.get("chosen")),
            rejected=msg(d.get("rejected")),
            label=d.get("label"),
            images=d.get("images"),
            videos=d.get("videos"),
            audios=d.get("audios"),
            meta=d.get("meta") or {},
            id=d.get("id") or "",
        )

    def compute_id(self) -> str:
        """A 16-hex-digit hash of the content: same content, same id, in any format."""
        blob = orjson.dumps(self.content_dict(), option=orjson.OPT_SORT_KEYS)
        return hashlib.blake2b(blob, digest_size=8).hexdigest()

    def same_content(self, other: Record) -> bool:
        return self.content_dict() == other.content_dict()
