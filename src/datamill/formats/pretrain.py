"""pretrain: one document per record, ``{"text": ...}`` in JSON containers or one line of a .txt."""

from __future__ import annotations

from datamill.errors import CannotExpress
from datamill.formats import fields
from datamill.formats.base import Format, Row
from datamill.record import Record


def detect(row: Row) -> bool:
    return "text" in row


def to_record(row: Row) -> Record:
    return Record(text=fields.req_str(row, "text"))


def from_record(rec: Record) -> Row:
    if rec.text is None:
        raise CannotExpress("pretrain holds plain documents; this record is a conversation")
    return {"text": rec.text}


def dataset_info(columns: set[str], ranking: bool, roles: set[str] = frozenset()) -> dict:
    return {"columns": {"prompt": "text"}}


FORMAT = Format(
    name="pretrain",
    description='pretraining documents: {"text": ...} per record, or one document per line of a .txt',
    detect=detect,
    to_record=to_record,
    from_record=from_record,
    dataset_info=dataset_info,
    cannot_hold="conversations (write them as sharegpt/messages/alpaca)",
)
