"""Evol-Instruct's elimination rules (WizardLM §3.2) as pure checks: an evolution fails when it adds
nothing, copies the evolving prompt's own words, or leads to an answer that is a refusal or empty."""

from __future__ import annotations

import re

from datamill.synth.rouge import rouge_l, tokenize

IN_DEPTH = ("constraints", "deepen", "concretize", "reasoning", "complicate_input")
IN_BREADTH = ("breadth",)
COPIED = re.compile(
    r"#?\s*(?:given|rewritten|created|new|original)\s+prompt\s*#?|改写后的指令|新指令|原指令|给定的指令|指令[:：]\s*$",
    re.I,
)
REFUSAL = re.compile(
    r"\b(?:sorry|i cannot|i can't|i am unable|i'm unable|as an ai)\b"
    r"|抱歉|对不起|无法回答|不能回答|作为一个?(?:AI|人工智能)",
    re.I,
)
STOP_WORDS = frozenset(
    ("a", "an", "the", "and", "or", "but", "if", "of", "to", "in", "on", "at", "by", "for", "with", "is", "are",
     "was", "were", "be", "been", "it", "this", "that", "these", "those", "i", "you", "he", "she", "we", "they",
     "ok", "okay", "yes", "no", "so", "as", "not", "do", "does", "did")
) | frozenset("的了是在和就都而及与着或个我你他她它们这那吗呢吧啊哦嗯好一")  # fmt: skip


def evolution_problem(original: str, evolved: str, gain_threshold: float = 0.9) -> str | None:
    """Why an evolved instruction is eliminated before it is answered, or None."""
    if not evolved.strip():
        return "empty evolution"
    if COPIED.search(evolved):
        return "copied the prompt words"
    if rouge_l(evolved, original) >= gain_threshold:
        return "no information gain"
    return None


def answer_problem(answer: str, short_tokens: int = 80) -> str | None:
    """Why the answer to an evolved instruction shows the evolution failed, or None."""
    tokens = tokenize(answer)
    if not answer.strip():
        return "empty answer"
    if REFUSAL.search(answer) and len(tokens) < short_tokens:
        return "model failed to answer"
    if all(t in STOP_WORDS for t in tokens):
        return "answer is only punctuation and stop words"
    return None
