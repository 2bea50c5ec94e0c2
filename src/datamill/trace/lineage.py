"""What a run stores so ``datamill trace`` can tell a record's history: the content changes steps made.

A mapper (or a generator that hands back its input annotated) that changes a record's content leaves
one entry in ``meta["lineage"]``: ``{"step", "op", "changes": [...]}``. A changed string field (the
document, the system prompt, one turn, a side of a preference pair) is kept as one hunk — the common
prefix and suffix cut down to ``CONTEXT`` characters each, ``at`` the hunk's offset in the text before —
so a placeholder filled in a 2,000-character answer costs a few dozen bytes; each side of a hunk keeps
at most ``MAX_SIDE`` characters unless the output asks for ``trace: full`` (the whole field, before
and after). Anything else that changed (turns added or removed, tools, media, a label) is kept whole.
Records a step leaves alone cost a snapshot of references and one comparison. The runner moves
``meta["lineage"]`` of a kept record out of its data row into ``lineage.jsonl``; a dropped record keeps
it in dropped.jsonl.
"""

from __future__ import annotations

from typing import Any

from datamill.record import MEDIA, Record

KEY = "lineage"  # the meta field the changes travel in through the run
CONTEXT = 40  # unchanged characters kept on each side of a hunk
MAX_SIDE = 1000  # characters a hunk side keeps (head and tail) unless trace: full
CUT = "\u2026"  # marks where a long hunk side was shortened

# a snapshot: one value per field, in this order; the turns as (role, content) pairs
FIELDS = ("text", "system", "messages", "chosen", "rejected", "tools", "label", *MEDIA)
Snapshot = tuple[Any, ...]


def snapshot(rec: Record) -> Snapshot:
    """The record's content, as references (strings are immutable): cheap to take and to compare."""
    c, r = rec.chosen, rec.rejected
    media = (rec.images and tuple(rec.images), rec.videos and tuple(rec.videos), rec.audios and tuple(rec.audios))
    turns = [(m.role, m.content) for m in rec.messages]
    return (rec.text, rec.system, turns, c and c.content, r and r.content, rec.tools, rec.label, *media)


def note(rec: Record, before: Snapshot, step: int, op: str, full: bool) -> None:
    """Append to ``rec.meta["lineage"]`` what the step changed since ``before`` (nothing if nothing did)."""
    after = snapshot(rec)
    if after == before:
        return
    changes: list[dict[str, Any]] = []
    for name, old, new in zip(FIELDS, before, after, strict=True):
        if old == new:
            continue
        if name == "messages" and [role for role, _ in old] == [role for role, _ in new]:
            pairs = enumerate(zip(old, new, strict=True))
            changes += [_change(f"messages.{i}", a[1], b[1], full) for i, (a, b) in pairs if a != b]
        elif name == "messages":  # turns added, removed or re-roled: the turn list as a whole
            turns = [[{"role": role, "content": content} for role, content in t] for t in (old, new)]
            changes.append({"field": name, "before": turns[0], "after": turns[1]})
        else:
            changes.append(_change(name, old, new, full))
    _append(rec, {"step": step, "op": op, "changes": changes})


def _change(field: str, old: Any, new: Any, full: bool) -> dict[str, Any]:
    if isinstance(old, str) and isinstance(new, str) and not full:
        return {"field": field, **hunk(old, new)}
    return {"field": field, "before": old, "after": new}


def hunk(before: str, after: str) -> dict[str, Any]:
    """The part of ``before`` that ``after`` replaced, with up to ``CONTEXT`` characters around it:
    ``at`` (its offset in ``before``), ``before``, ``after``; ``cut`` when a side was shortened."""
    p = common_prefix(before, after)
    s = common_prefix(before[p:][::-1], after[p:][::-1])
    start = max(0, p - CONTEXT)
    old = before[start : min(len(before), len(before) - s + CONTEXT)]
    new = after[start : min(len(after), len(after) - s + CONTEXT)]
    out: dict[str, Any] = {"at": start, "before": _shorten(old), "after": _shorten(new)}
    if len(old) > MAX_SIDE or len(new) > MAX_SIDE:
        out["cut"] = True
    return out


def common_prefix(a: str, b: str) -> int:
    """Length of the common prefix, by bisection on slices (C-speed compares, no per-character loop)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _shorten(text: str) -> str:
    if len(text) <= MAX_SIDE:
        return text
    half = MAX_SIDE // 2
    return f"{text[:half]}{CUT}[{len(text) - 2 * half} characters]{CUT}{text[-half:]}"


def made(rec: Record, step: int, op: str) -> None:
    """Mark ``rec`` as made by the step (a generated record: the step it was born at)."""
    _append(rec, {"step": step, "op": op, "made": True})


def _append(rec: Record, entry: dict[str, Any]) -> None:
    entries = rec.meta.get(KEY)
    rec.meta[KEY] = [*entries, entry] if isinstance(entries, list) else [entry]
