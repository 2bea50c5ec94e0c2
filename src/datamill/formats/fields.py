"""Field readers shared by the format modules: type checks with messages that name the field."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

from datamill.errors import CannotExpress, RecordError
from datamill.record import MEDIA, Message, Record

TRUE_STRINGS = {"true", "1", "yes", "y", "t"}
FALSE_STRINGS = {"false", "0", "no", "n", "f"}


def _type_name(value: Any) -> str:
    return type(value).__name__


def req_str(row: dict[str, Any], key: str) -> str:
    if key not in row or row[key] is None:
        raise RecordError(f"missing required field '{key}'")
    value = row[key]
    if not isinstance(value, str):
        raise RecordError(f"field '{key}' must be a string, got {_type_name(value)}")
    return value


def opt_str(row: dict[str, Any], key: str) -> str | None:
    """A string field that may be absent; absent, null and "" all mean 'not set'."""
    value = row.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise RecordError(f"field '{key}' must be a string, got {_type_name(value)}")
    return value


def label(row: dict[str, Any], key: str) -> bool | None:
    """A KTO label: a bool, or a bool spelled as a string/number (CSV files)."""
    value = row.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in TRUE_STRINGS | FALSE_STRINGS:
        return value.strip().lower() in TRUE_STRINGS
    raise RecordError(f"field '{key}' must be true or false, got {value!r}")


def media(row: dict[str, Any]) -> dict[str, list[str] | None]:
    out: dict[str, list[str] | None] = {}
    for key in MEDIA:
        value = row.get(key)
        if isinstance(value, str) and value.startswith("["):  # a list stored as JSON text (CSV)
            value = json_text(value, key)
        if value is None or value == [] or value == "":
            out[key] = None
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            out[key] = list(value)
        else:
            raise RecordError(f"field '{key}' must be a list of paths")
    return out


def json_text(value: str, key: str) -> Any:
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError as e:
        raise RecordError(f"field '{key}' holds invalid JSON: {e}") from None


def tools(row: dict[str, Any], key: str = "tools") -> Any:
    """Tool schemas, stored parsed; accepts a JSON string (LLaMA-Factory) or a list (OpenAI)."""
    value = row.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = json_text(value, key)
    if not isinstance(value, list | dict):
        raise RecordError(f"field '{key}' must be a JSON list of function schemas")
    if isinstance(value, list):  # unwrap OpenAI's {"type": "function", "function": {...}}
        value = [
            t["function"]
            if isinstance(t, dict) and t.get("type") == "function" and isinstance(t.get("function"), dict)
            else t
            for t in value
        ]
    return value


def dump_tools(value: Any) -> str:
    """Tools as LLaMA-Factory stores them: JSON text with Python's default separators."""
    return json.dumps(value, ensure_ascii=False)


def nested(row: dict[str, Any], key: str, kind: type) -> Any:
    """A list/dict field that CSV files store as JSON text."""
    value = row.get(key)
    if isinstance(value, str) and value[:1] in "[{":
        value = json_text(value, key)
    if value is not None and not isinstance(value, kind):
        raise RecordError(f"field '{key}' must be a {kind.__name__}, got {_type_name(value)}")
    return value


def turns(
    items: Any,
    key: str,
    role_key: str,
    content_key: str,
    role_map: dict[str, str],
    special: Callable[[str, dict[str, Any]], Message | None] | None = None,
) -> tuple[str | None, list[Message]]:
    """Role-tagged turns → (system prompt, messages). A leading system turn becomes the system.
    ``special(where, turn)`` may claim a turn the plain role/content rule cannot read."""
    if not isinstance(items, list):
        raise RecordError(f"field '{key}' must be a list of turns, got {_type_name(items)}")
    system: str | None = None
    messages: list[Message] = []
    for i, turn in enumerate(items):
        if not isinstance(turn, dict):
            raise RecordError(f"{key}[{i}] must be an object, got {_type_name(turn)}")
        claimed = special(f"{key}[{i}]", turn) if special else None
        if claimed is not None:
            messages.append(claimed)
            continue
        role = turn.get(role_key)
        content = turn.get(content_key)
        if content is None:
            content = ""
        if not isinstance(content, str):
            raise RecordError(f"{key}[{i}].{content_key} must be a string, got {_type_name(content)}")
        if role == "system" and i == 0:
            system = content or None
            continue
        if role not in role_map:
            allowed = ", ".join(sorted(set(role_map) | {"system (first turn only)"}))
            raise RecordError(f"{key}[{i}].{role_key} is {role!r}; expected one of: {allowed}")
        messages.append(Message(role_map[role], content))
    return system, messages


def one_turn(value: Any, key: str, role_key: str, content_key: str, role_map: dict[str, str]) -> Message:
    """A single message object (sharegpt chosen/rejected) or a bare string (an assistant answer)."""
    if isinstance(value, str):
        return Message("assistant", value)
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if not isinstance(value, dict):
        raise RecordError(f"field '{key}' must be a message object or a string")
    _, msgs = turns([value], key, role_key, content_key, role_map)
    if not msgs:
        raise RecordError(f"field '{key}' must be an assistant message, not a system prompt")
    return msgs[0]


def require_roles(messages: list[Message], allowed: set[str], fmt: str) -> None:
    bad = sorted({m.role for m in messages} - allowed)
    if bad:
        raise CannotExpress(f"{fmt} cannot hold {'/'.join(bad)} turns; use sharegpt or messages")


def set_media(rec: Record, row: dict[str, Any]) -> None:
    for key, value in media(row).items():
        setattr(rec, key, value)


def set_pair(rec: Record, row: dict[str, Any], role_key: str, content_key: str, role_map: dict[str, str]) -> None:
    """``chosen``/``rejected`` message objects (JSON text in CSV), when the row is a preference row."""
    if "chosen" not in row and "rejected" not in row:
        return
    for side in ("chosen", "rejected"):
        if row.get(side) is None:
            raise RecordError(f"missing required field '{side}'")
        value = nested(row, side, dict) if isinstance(row[side], str) else row[side]
        setattr(rec, side, one_turn(value, side, role_key, content_key, role_map))


def conversation_only(rec: Record, fmt: str) -> None:
    if rec.text is not None:
        raise CannotExpress(f"{fmt} holds conversations, not pretraining text; use --to pretrain")


def single_turn(rec: Record, fmt: str) -> tuple[Message, Message]:
    """The (user, assistant) pair of a one-turn SFT record; anything else cannot be written as ``fmt``."""
    conversation_only(rec, fmt)
    msgs = rec.messages
    if len(msgs) != 2 or msgs[0].role != "user" or msgs[1].role != "assistant" or rec.kind != "sft":
        raise CannotExpress(f"{fmt} holds single-turn tasks (one user prompt, one assistant answer)")
    return msgs[0], msgs[1]


def require_pair(rec: Record) -> tuple[Message, Message]:
    if rec.chosen is None or rec.rejected is None:
        raise CannotExpress("a preference record needs both 'chosen' and 'rejected'")
    return rec.chosen, rec.rejected
