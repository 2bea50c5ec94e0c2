"""count_tokens and cutoff_len: token counts from a real tokenizer, offline.

Trainers cut every example at ``cutoff_len`` tokens, so a length in characters or words is only a
guess. The tokenizer is chosen by ``tokenizer``:

- ``embedded`` (default): the vocabulary of the shipped Gemma 3 GGUF, loaded by llama-cpp-python
  with ``vocab_only`` (no weights, well under a second);
- a path to a ``tokenizer.json`` (or a directory holding one): any Hugging Face fast tokenizer,
  loaded with the ``tokenizers`` package — use the one of the model you will train;
- a path to a ``.gguf`` file: that model's vocabulary.

``count_tokens`` writes ``meta["tokens"] = {"prompt", "response", "total"}``. The prompt is the
system prompt and the user/tool turns, the response the assistant/function turns; for a preference
pair the response is the longer of chosen and rejected (each is trained as prompt + that answer) and
earlier turns are prompt;
for a pretraining document everything is ``total``. ``per_turn`` adds the chat template's tokens
per message (role markers), which the trainer counts too.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from datamill.ops import register
from datamill.ops.base import Filter, Mapper, OpConfig
from datamill.record import Record
from datamill.select.tokenizer import get_tokenizer, record_tokens


class _TokenConfig(OpConfig):
    tokenizer: str = "embedded"  # embedded | path to tokenizer.json (or its directory) | path to .gguf
    per_turn: int = Field(0, ge=0)  # template tokens per message (role markers) the trainer adds


@register
class CountTokens(Mapper):
    """Write ``meta["tokens"] = {"prompt", "response", "total"}`` and sum them in the counters."""

    name = "count_tokens"

    class Config(_TokenConfig):
        pass

    def map(self, record: Record) -> Record:
        counts = record_tokens(record, get_tokenizer(self.config.tokenizer), self.config.per_turn)
        record.meta["tokens"] = counts
        for part, n in counts.items():
            self.counters[f"{part}_tokens"] += n
        return record


@register
class CutoffLen(Filter):
    """Drop (or, with ``action: report``, only count) records longer than the trainer's
    ``cutoff_len``: they would be truncated in training, often mid-answer."""

    name = "cutoff_len"

    class Config(_TokenConfig):
        cutoff_len: int = Field(ge=1)
        action: Literal["drop", "report"] = "drop"

    def reason(self, record: Record) -> str | None:
        c = self.config
        counts = record.meta.get("tokens")
        if not (isinstance(counts, dict) and isinstance(counts.get("total"), int)):
            counts = record_tokens(record, get_tokenizer(c.tokenizer), c.per_turn)
            record.meta["tokens"] = counts
        if counts["total"] <= c.cutoff_len:
            return None
        self.counters["over_cutoff_len"] += 1
        self.counters["tokens_truncated"] += counts["total"] - c.cutoff_len
        if c.action == "report":
            return None
        return f"longer than cutoff_len {c.cutoff_len} tokens"
