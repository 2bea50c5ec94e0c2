"""Structured output: ask for JSON matching a pydantic model or a JSON schema, repair what models
commonly break, validate, re-ask with the error, and finally raise :class:`StructuredOutputError`
whose ``reason`` a caller turns into a drop reason.

The request carries ``response_format`` when the endpoint takes it (``json_schema`` first, then
``json_object``, then nothing: an endpoint that answers 400 to one mode is remembered and asked the
next way). The embedded model turns the schema into a llama.cpp grammar.

A reasoning model's thinking never reaches the parser: the client hands over the answer alone
(:mod:`datamill.llm.reasoning`), so JSON written while thinking is not taken for the verdict, and a
re-ask quotes back only the answer (reasoning models' chat templates drop past thinking too).
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ValidationError

from datamill.errors import DatamillError
from datamill.llm.client import LLMClient, LLMError, Messages, normalize_messages

# What a re-ask quotes back of the bad answer and of the error: enough for the model to see its mistake,
# bounded so that a runaway reply is not sent back (and paid for) again.
QUOTE_ANSWER = 4000
QUOTE_ERROR = 500
FENCE = re.compile(r"```(?:json|JSON|javascript|js)?\s*\n?(.*?)```", re.S)
TRAILING_COMMA = re.compile(r",(\s*[}\]])")


class StructuredOutputError(DatamillError):
    """The model did not produce valid JSON for the schema after every re-ask."""

    def __init__(self, message: str, reason: str, last_text: str = ""):
        super().__init__(message)
        self.reason = reason
        self.last_text = last_text

    def __reduce__(self):
        return (type(self), (str(self), self.reason, self.last_text))


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]} … [{len(text) - limit:,} more characters]"


def _balanced(text: str, start: int) -> str | None:
    """The JSON object/array starting at ``start``, found by bracket matching outside strings."""
    open_ch = text[start]
    close_ch = "}" if open_ch == "{" else "]"
    depth, in_str, esc = 0, False, False
    for i in range(start, len(text)):
        c = text[i]
        if in_str:
            if esc:
                esc = False
            elif c == "\\":
                esc = True
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
        elif c == open_ch:
            depth += 1
        elif c == close_ch:
            depth -= 1
            if depth == 0:
                return text[start : i + 1]
    return None


def _loads(s: str) -> Any:
    """JSON, tolerating raw newlines/tabs inside strings (small models write them) and trailing commas."""
    try:
        return json.loads(s, strict=False)
    except json.JSONDecodeError:
        fixed = TRAILING_COMMA.sub(r"\1", s)
        if fixed != s:
            return json.loads(fixed, strict=False)
        raise


def extract_json(text: str) -> Any:
    """Parse JSON out of a model's answer: as is; inside a ```json fence; or the first balanced
    ``{...}``/``[...]`` amid leading/trailing prose; trailing commas are dropped. Raises ValueError."""
    s = text.strip()
    candidates = [s]
    candidates += [m.group(1).strip() for m in FENCE.finditer(s)]
    for i, c in enumerate(s):
        if c in "{[":
            block = _balanced(s, i)
            if block:
                candidates.append(block)
                break
    # an object before an array (or the reverse) — try the other opener as well
    for opener in "{[":
        i = s.find(opener)
        if i >= 0 and (block := _balanced(s, i)):
            candidates.append(block)
    err: Exception | None = None
    for cand in candidates:
        try:
            return _loads(cand)
        except json.JSONDecodeError as e:
            err = e
    if err is None or not any(c in s for c in "{["):
        raise ValueError("the answer contains no JSON object or array")
    raise ValueError(f"the answer is not valid JSON ({err})")


def schema_of(target: type[BaseModel] | dict[str, Any]) -> dict[str, Any]:
    if isinstance(target, dict):
        return target
    return target.model_json_schema()


def _check_schema(value: Any, schema: dict[str, Any], path: str = "$") -> None:
    """A small JSON-schema subset (type, properties, required, additionalProperties, items, enum,
    minimum/maximum, minLength/maxLength, minItems/maxItems) for when ``jsonschema`` is absent."""
    types = {
        "object": dict,
        "array": list,
        "string": str,
        "integer": int,
        "number": (int, float),
        "boolean": bool,
        "null": type(None),
    }
    t = schema.get("type")
    if t is not None:
        allowed = t if isinstance(t, list) else [t]
        ok = any(
            isinstance(value, types[x]) and not (x in ("integer", "number") and isinstance(value, bool))
            for x in allowed
            if x in types
        )
        if not ok:
            raise ValueError(f"{path}: expected {t}, got {type(value).__name__}")
    if "enum" in schema and value not in schema["enum"]:
        raise ValueError(f"{path}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                raise ValueError(f"{path}: missing required property '{name}'")
        props = schema.get("properties", {})
        for k, v in value.items():
            if k in props:
                _check_schema(v, props[k], f"{path}.{k}")
            elif schema.get("additionalProperties") is False:
                raise ValueError(f"{path}: unexpected property '{k}'")
    if isinstance(value, list):
        if "items" in schema and isinstance(schema["items"], dict):
            for i, v in enumerate(value):
                _check_schema(v, schema["items"], f"{path}[{i}]")
        if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", len(value)):
            raise ValueError(f"{path}: {len(value)} items is out of range")
    if isinstance(value, str) and not (schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", len(value))):
        raise ValueError(f"{path}: string length {len(value)} is out of range")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            raise ValueError(f"{path}: {value} < minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            raise ValueError(f"{path}: {value} > maximum {schema['maximum']}")


def validate(value: Any, target: type[BaseModel] | dict[str, Any]) -> Any:
    """A pydantic instance for a model, the value itself for a schema dict; ValueError if invalid."""
    if isinstance(target, type) and issubclass(target, BaseModel):
        try:
            return target.model_validate(value)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "$"
            raise ValueError(f"{where}: {first['msg']} ({e.error_count()} problem(s))") from None
    try:
        import jsonschema
    except ImportError:
        _check_schema(value, target)
        return value
    try:
        jsonschema.validate(value, target)
    except jsonschema.ValidationError as e:
        where = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e.absolute_path)
        raise ValueError(f"{where}: {e.message}") from None
    return value


def _response_format(mode: str, schema: dict[str, Any], name: str) -> dict[str, Any] | None:
    if mode == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": False}}
    if mode == "json_object":
        return {"type": "json_object"}
    return None


async def generate_json(
    client: LLMClient,
    messages: Messages,
    target: type[BaseModel] | dict[str, Any],
    *,
    max_attempts: int = 3,
    lang: str | None = None,
    system: str | None = None,
    **params: Any,
) -> Any:
    """Ask for JSON matching ``target`` (a pydantic model class or a JSON schema dict).

    Returns a model instance (or the validated value for a schema). Repairs fences and stray text,
    re-asks with the validation error up to ``max_attempts`` answers in all, then raises
    :class:`StructuredOutputError` (``reason`` is ``"invalid json"`` or ``"schema mismatch"``).
    Transport failures after the client's retries raise :class:`LLMError` unchanged."""
    from datamill.llm.prompts import load

    schema = schema_of(target)
    name = target.__name__ if isinstance(target, type) else str(schema.get("title") or "answer")
    name = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64] or "answer"
    msgs = normalize_messages(messages, system)
    if lang is None:
        from datamill.llm.prompts import detect_lang

        lang = detect_lang(" ".join(str(m.get("content") or "") for m in msgs))
    reason, problem, text = "invalid json", "", ""
    for _ in range(max(1, max_attempts)):
        text = await _ask(client, msgs, schema, name, **params)
        try:
            value = extract_json(text)
        except ValueError as e:
            reason, problem = "invalid json", _clip(str(e), QUOTE_ERROR)
        else:
            try:
                return validate(value, target)
            except ValueError as e:  # jsonschema's message quotes the offending value whole
                reason, problem = "schema mismatch", _clip(str(e), QUOTE_ERROR)
        fix = load("json_fix", lang).text(error=problem, schema=json.dumps(schema, ensure_ascii=False))
        msgs = [*msgs, {"role": "assistant", "content": _clip(text, QUOTE_ANSWER)}, {"role": "user", "content": fix}]
    raise StructuredOutputError(
        f"no valid JSON for {name} after {max(1, max_attempts)} answers: {problem}", reason, text
    )


async def _ask(client: LLMClient, msgs: list[dict[str, Any]], schema: dict, name: str, **params: Any) -> str:
    """One answer; picks (and remembers on the client) the response_format the endpoint accepts."""
    order = {"auto": ["json_schema", "json_object", "off"], "off": ["off"]}.get(
        client.config.json_schema_mode, [client.config.json_schema_mode, "off"]
    )
    if client._schema_mode in order:
        order = order[order.index(client._schema_mode) :]
    for i, mode in enumerate(order):
        try:
            out = await client.chat(msgs, response_format=_response_format(mode, schema, name), **params)
        except LLMError as e:
            if e.status in (400, 404, 415, 422) and mode != "off" and i + 1 < len(order):
                client._schema_mode = order[i + 1]
                continue
            raise
        client._schema_mode = mode
        return out.text
    raise AssertionError("unreachable")
