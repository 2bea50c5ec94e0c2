"""Records → the rows TRL's trainers take, in its conversational forms (the model's chat template is
applied by TRL, not here):

- ``messages``: the whole conversation (SFT with ``assistant_only_loss``: every assistant turn is trained);
- ``prompt`` + ``completion``: the conversation before the last answer, and that answer (SFT with
  ``completion_only_loss`` when the chat template has no ``{% generation %}`` markers; KTO with ``label``);
- ``prompt`` + ``chosen`` / ``rejected``: DPO;
- ``text``: pretraining (loss on every token).

A record that does not fit the stage is skipped with a reason, never guessed at: ``row`` returns
``(rows, None)`` or ``([], reason)``. Preference pairs also serve SFT (the chosen answer) and KTO (chosen
desirable, rejected undesirable); a KTO record serves SFT only when desirable."""

from __future__ import annotations

from typing import Any, Literal

from datamill.formats.messages import openai_tools, to_turns
from datamill.record import Message, Record

Stage = Literal["pt", "sft", "dpo", "kto"]
SftForm = Literal["messages", "prompt_completion"]


def conversation(rec: Record, messages: list[Message] | None = None) -> list[dict[str, Any]]:
    """System prompt + turns as chat-template messages (a tool call becomes an assistant ``tool_calls`` turn)."""
    turns = to_turns(rec.messages if messages is None else messages)
    return ([{"role": "system", "content": rec.system}] if rec.system else []) + turns


def split_last_answer(rec: Record) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
    """(prompt, [last answer]) of a conversation ending in an assistant turn; None otherwise."""
    if len(rec.messages) < 2 or rec.messages[-1].role not in ("assistant", "function"):
        return None
    return conversation(rec, rec.messages[:-1]), to_turns(rec.messages[-1:])


def _with_tools(rec: Record, row: dict[str, Any]) -> dict[str, Any]:
    if rec.tools is not None:
        row["tools"] = openai_tools(rec.tools)
    return row


def _pair(rec: Record) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]] | None:
    if rec.chosen is None or rec.rejected is None or not rec.messages:
        return None
    chosen, rejected = to_turns([rec.chosen, rec.rejected])
    return conversation(rec), chosen, rejected


def rows(rec: Record, stage: Stage, sft_form: SftForm = "messages") -> tuple[list[dict[str, Any]], str | None]:
    """The TRL rows ``rec`` gives for ``stage`` (one, two for a pair unpaired into KTO), or a reason to skip it."""
    kind = rec.kind
    if rec.images or rec.videos or rec.audios:
        return [], "has media (text-only training)"
    if stage == "pt":
        return (
            ([{"text": rec.text}], None)
            if kind == "pretrain" and rec.text
            else ([], f"a {kind} record (pt needs text)")
        )
    if kind == "pretrain":
        return [], f"pretraining text (--stage {stage} needs conversations)"
    if stage == "dpo":
        pair = _pair(rec)
        if pair is None:
            return [], f"a {kind} record (dpo needs chosen/rejected)"
        prompt, chosen, rejected = pair
        return [_with_tools(rec, {"prompt": prompt, "chosen": [chosen], "rejected": [rejected]})], None
    if stage == "kto":
        if kind == "preference" and (pair := _pair(rec)) is not None:
            prompt, chosen, rejected = pair
            return [
                _with_tools(rec, {"prompt": prompt, "completion": [chosen], "label": True}),
                _with_tools(rec, {"prompt": prompt, "completion": [rejected], "label": False}),
            ], None
        split = split_last_answer(rec) if kind == "kto" else None
        if split is None:
            return [], f"a {kind} record (kto needs a labelled answer or a pair)"
        return [_with_tools(rec, {"prompt": split[0], "completion": split[1], "label": bool(rec.label)})], None
    # sft
    if kind == "preference":
        pair = _pair(rec)
        if pair is None:
            return [], "a preference record without a prompt"
        prompt, chosen, _ = pair
        return [_with_tools(rec, _sft_row(prompt, [chosen], sft_form))], None
    if kind == "kto" and not rec.label:
        return [], "an undesirable KTO answer (not trained on for sft)"
    split = split_last_answer(rec)
    if split is None:
        return [], "no assistant answer at the end"
    return [_with_tools(rec, _sft_row(*split, sft_form))], None


def _sft_row(prompt: list[dict[str, Any]], completion: list[dict[str, Any]], form: SftForm) -> dict[str, Any]:
    return {"messages": prompt + completion} if form == "messages" else {"prompt": prompt, "completion": completion}
