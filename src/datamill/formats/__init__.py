"""Format registry: every format by name, and detection of a file's format from its first row."""

from __future__ import annotations

from datamill.errors import DatamillError
from datamill.formats import (
    alpaca,
    conversation,
    messages,
    native,
    predictions,
    pretrain,
    qa,
    self_instruct,
    sharegpt,
    trl,
    xtuner,
)
from datamill.formats.base import Format, Row

# Detection order matters: the most specific shapes first.
FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        native.FORMAT,
        sharegpt.FORMAT,
        xtuner.FORMAT,
        conversation.FORMAT,
        trl.FORMAT,
        messages.FORMAT,
        predictions.FORMAT,
        self_instruct.FORMAT,  # before alpaca: both detect on "instruction"
        alpaca.FORMAT,
        pretrain.FORMAT,
        qa.FORMAT,  # never detected: named with format: qa
    )
}


def get(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise DatamillError(f"unknown format '{name}'; choose one of: {', '.join(FORMATS)}") from None


def detect(row: Row) -> Format | None:
    for fmt in FORMATS.values():
        if fmt.detect(row):
            return fmt
    return None


__all__ = ["FORMATS", "Format", "Row", "detect", "get"]
