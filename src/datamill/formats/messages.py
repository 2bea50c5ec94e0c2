"""messages: OpenAI chat ``messages`` (system/user/assistant/tool, assistant ``tool_calls``), the shape
TRL and chat templates use; KTO via ``label``, preference via ``chosen``/``rejected`` message objects,
tools as OpenAI function tools, media as ``images``/``videos``/``audios``.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from datamill.errors import RecordError
from datamill.formats import fields
from datamill.formats.base import Format, Row
from datamill.record import MEDIA, Message, Record

ROLE_IN = {
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "tool": "tool",
    "function": "tool",  # OpenAI's legacy role for a function's result
    "observation": "tool",
    "function_call": "function",
}


def detect(row: Row) -> bool:
    return "messages" in row


def parse_turns(items: Any, key: str) -> tuple[str | None, list[Message]]:
    """OpenAI turns → (system, messages); an assistant turn with tool_calls becomes a function turn."""
    return fields.turns(items, key, "role", "content", ROLE_IN, special=_tool_call_turn)


def _tool_call_turn(where: str, turn: dict[str, Any]) -> Message | None:
    if not turn.get("tool_calls"):
        return None
    if turn.get("content"):
        raise RecordError(f"{where} has both text content and tool_calls; split it into two turns")
    return Message("function", _calls_to_content(turn["tool_calls"], where))


def _calls_to_content(tool_calls: Any, where: str) -> str:
    if not isinstance(tool_calls, list):
        raise RecordError(f"{where}.tool_calls must be a list")
    out = []
    for call in tool_calls:
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise RecordError(f"{where}.tool_calls needs {{'function': {{'name', 'arguments'}}}} entries")
        args = fn.get("arguments", {})
        if isinstance(args, str):
            with contextlib.suppress(json.JSONDecodeError):  # keep non-JSON arguments as text
                args = json.loads(args)
        out.append({"name": fn["name"], "arguments": args})
    return json.dumps(out[0] if len(out) == 1 else out, ensure_ascii=False)


def to_turns(messages: list[Message]) -> list[dict[str, Any]]:
    """Canonical messages → OpenAI turns. A function call whose content is not the JSON
    ``{"name", "arguments"}`` shape is kept verbatim as a ``function_call`` role turn."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "function":
            calls = _content_to_calls(m.content)
            out.append(
                {"role": "assistant", "content": "", "tool_calls": calls}
                if calls
                else {"role": "function_call", "content": m.content}
            )
        else:
            out.append({"role": m.role, "content": m.content})
    return out


def _content_to_calls(content: str) -> list[dict[str, Any]] | None:
    try:
        value = json.loads(content)
    except json.JSONDecodeError:
        return None
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(v, dict) and set(v) == {"name", "arguments"} for v in items):
        return None
    if json.dumps(value, ensure_ascii=False) != content:  # would not come back byte-identical
        return None
    return [
        {
            "type": "function",
            "function": {"name": v["name"], "arguments": json.dumps(v["arguments"], ensure_ascii=False)},
        }
        for v in items
    ]


def openai_tools(tools: Any) -> Any:
    if isinstance(tools, list):
        return [{"type": "function", "function": t} if isinstance(t, dict) and "type" not in t else t for t in tools]
    return tools


def to_record(row: Row) -> Record:
    if row.get("messages") is None:
        raise RecordError("missing required field 'messages'")
    system, messages = parse_turns(fields.nested(row, "messages", list), "messages")
    rec = Record(messages=messages, system=system or fields.opt_str(row, "system"), tools=fields.tools(row))
    fields.set_pair(rec, row, "role", "content", ROLE_IN)
    rec.label = fields.label(row, "label")
    fields.set_media(rec, row)
    return rec


def from_record(rec: Record) -> Row:
    fields.conversation_only(rec, "messages")
    turns = to_turns(rec.messages)
    if rec.system is not None:
        turns.insert(0, {"role": "system", "content": rec.system})
    row: dict[str, Any] = {"messages": turns}
    if rec.tools is not None:
        row["tools"] = openai_tools(rec.tools)
    if rec.kind == "preference":
        chosen, rejected = fields.require_pair(rec)
        row["chosen"], row["rejected"] = to_turns([chosen])[0], to_turns([rejected])[0]
    if rec.label is not None:
        row["label"] = rec.label
    row.update(rec.media())
    return row


def dataset_info(columns: set[str], ranking: bool, roles: set[str] = frozenset()) -> dict[str, Any] | None:
    if "function" in roles:  # LLaMA-Factory reads role/content only, not OpenAI tool_calls
        return None
    entry: dict[str, Any] = {"formatting": "sharegpt"}
    if ranking:
        entry["ranking"] = True
    cols = {"messages": "messages"}
    for src, dst in (
        ("tools", "tools"),
        ("chosen", "chosen"),
        ("rejected", "rejected"),
        ("label", "kto_tag"),
    ):
        if src in columns:
            cols[dst] = src
    cols.update({m: m for m in MEDIA if m in columns})
    entry["columns"] = cols
    entry["tags"] = {
        "role_tag": "role",
        "content_tag": "content",
        "user_tag": "user",
        "assistant_tag": "assistant",
        "observation_tag": "tool",
        "system_tag": "system",
    }
    return entry


FORMAT = Format(
    name="messages",
    description="OpenAI/TRL chat: messages of {role, content} (+tool_calls, tools, label, chosen/rejected, images)",
    detect=detect,
    to_record=to_record,
    from_record=from_record,
    dataset_info=dataset_info,
    cannot_hold="pretraining text (tool-call turns are written OpenAI-style, which LLaMA-Factory cannot read)",
    nested="messages",
)
