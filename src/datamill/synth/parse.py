"""Read what a model wrote: numbered lists of tasks, Input/Output instances, yes/no, dialogues.

Models (and especially the small embedded base model) answer loosely, so each parser accepts the
common spellings in English and Chinese and returns ``None``/``[]`` rather than guessing."""

from __future__ import annotations

import re

WS = re.compile(r"[ \t\r\f\v]+")
ITEM = re.compile(
    r"^[ \t]*(?:(?:task|instruction|question|任务|指令|问题)[ \t]*)?"
    r"(?:\d{1,3}|[一二三四五六七八九十]{1,3})[ \t]*(?:[.:)：、．]|\uff09)[ \t]*"
    r"|^[ \t]*(?:task|instruction|任务|指令)[ \t]*[:：][ \t]*"
    r"|^[ \t]*[-*•][ \t]+",
    re.I | re.M,
)
NOINPUT = {"", "<noinput>", "noinput", "none", "n/a", "null", "无", "<无>", "无输入", "（无）", "(none)", "<no input>"}


def clean(text: str) -> str:
    """Collapse runs of spaces, strip, drop wrapping quotes."""
    text = WS.sub(" ", text).strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'“”":
        text = text[1:-1].strip()
    return text.strip("“”").strip()


def numbered_items(text: str) -> list[str]:
    """Items of a numbered or bulleted list (``9. …``, ``Task 9: …``, ``任务9：…``, ``- …``). Text before
    the first marker is an item too: a prompt ending in ``Task 9:`` is answered by the task itself.
    Each item is its first paragraph, whitespace collapsed."""
    parts: list[str] = []
    pos = 0
    for m in ITEM.finditer(text):
        parts.append(text[pos : m.start()])
        pos = m.end()
    parts.append(text[pos:])
    out = []
    for p in parts:
        p = re.split(r"\n\s*\n", p.strip(), maxsplit=1)[0]
        p = clean(p.replace("\n", " "))
        if p:
            out.append(p)
    return out


LABELS = {
    "input": r"(?:input|输入)",
    "output": r"(?:output|输出|answer|答案|回答)",
    "label": r"(?:class label|label|类别标签|类别|标签)",
}


def _field(text: str, name: str, until: tuple[str, ...]) -> str | None:
    stop = "|".join(LABELS[u] for u in until)
    pattern = rf"(?:^|\n)[ \t]*\**{LABELS[name]}\**[ \t]*[:：]\**(.*?)" + (
        rf"(?=\n[ \t]*\**(?:{stop})\**[ \t]*[:：]|\Z)" if stop else r"\Z"
    )
    m = re.search(pattern, text, re.I | re.S)
    return m.group(1).strip() if m else None


def _no_input(value: str | None) -> str:
    value = (value or "").strip()
    return "" if value.lower() in NOINPUT else value


def instance_input_first(text: str, lenient: bool = False) -> tuple[str, str] | None:
    """``Input: … Output: …`` → (input, output); input may be empty (``<noinput>``). Only the first
    instance is taken; None when there is no output. ``lenient``: an answer with no labels at all (what
    small base models write) is the output of a task without input, cut before any ``Task:`` it runs into."""
    output = _field(text, "output", ("input",))
    if not output:
        if not lenient or _field(text, "input", ("output",)) is not None:
            return None
        body = re.split(r"\n\s*(?:task|任务)\s*[:：]", text.strip(), flags=re.I)[0]
        body = re.split(r"\n\s*\n", body.strip(), maxsplit=1)[0].strip()
        return ("", body) if body else None
    inp = _field(text, "input", ("output",))
    output = re.split(r"\n\s*\n", output, maxsplit=1)[0].strip()
    return (_no_input(inp), output) if output else None


def instance_output_first(text: str) -> tuple[str, str] | None:
    """``Class label: … Input: …`` → (input, label); None unless both are there."""
    label = _field(text, "label", ("input",))
    inp = _field(text, "input", ("label", "output"))
    if not label or inp is None:
        return None
    label = label.splitlines()[0].strip()
    inp = re.split(r"\n\s*\n", inp, maxsplit=1)[0].strip()
    return (_no_input(inp), label) if label and _no_input(inp) else None


YES = re.compile(r"^\W*(yes|no|是|否|不是)", re.I)


def yes_no(text: str) -> bool | None:
    """The answer's leading yes/no (是/否) as a bool; None when it starts with neither."""
    m = YES.match(text.strip())
    if not m:
        return None
    return m.group(1).lower() in ("yes", "是")


SPEAKER = re.compile(r"^[ \t]*\**(user|human|assistant|ai|用户|助手)\**[ \t]*[:：][ \t]*", re.I | re.M)
ASSISTANT_NAMES = {"assistant", "ai", "助手"}


def dialogue(text: str) -> list[tuple[str, str]]:
    """``User: … / Assistant: …`` lines (English or Chinese labels) → [(role, content)], turns that
    continue over several lines joined; cut at the first turn that breaks user/assistant alternation."""
    marks = list(SPEAKER.finditer(text))
    out: list[tuple[str, str]] = []
    ends = [m.start() for m in marks[1:]] + [len(text)]
    for m, end in zip(marks, ends, strict=False):  # no marks: nothing to pair
        role = "assistant" if m.group(1).lower() in ASSISTANT_NAMES else "user"
        content = text[m.end() : end].strip()
        expected = "user" if len(out) % 2 == 0 else "assistant"
        if role != expected or not content:
            break
        out.append((role, content))
    return out[: len(out) // 2 * 2]
