"""The tables of a review project. Plain SQLAlchemy 2 types only (String, Integer, Text, JSON), so the
same schema runs on the default SQLite file and on PostgreSQL. Timestamps are ISO-8601 UTC strings:
sortable, readable in the JSON exports, and free of driver time-zone rules."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

SCHEMA_VERSION = 3  # 2: questions, gold items, the table's filter columns; 3: active learning (embedding,
# uncertainty, prediction, auto-decision; the queue's rank)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, Any: JSON}


class Setting(Base):
    """Project-wide settings: task, guidelines, labels, criteria, scale, overlap, questions, gold rate, seed…"""

    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)


class Item(Base):
    """One thing to review: the datamill record (id, meta, lineage kept) and the task's payload."""

    __tablename__ = "items"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, index=True)
    record_id: Mapped[str] = mapped_column(String(64), index=True)
    record: Mapped[dict[str, Any]] = mapped_column(JSON)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    suggestions: Mapped[list[Any]] = mapped_column(JSON)
    text: Mapped[str] = mapped_column(Text)  # what the search box matches
    status: Mapped[str] = mapped_column(String(16), index=True, default="open")  # open | partial | done | auto
    # a gold item's known answer (never exported, never shown); NULL for the data
    gold: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    # the table's filters, kept in columns so they are indexed SQL on SQLite and PostgreSQL alike
    score: Mapped[float | None] = mapped_column(Float, nullable=True, index=True)  # the quality judge's 1-5
    source: Mapped[str | None] = mapped_column(String(1000), nullable=True, index=True)  # meta.source
    tags: Mapped[str] = mapped_column(Text, default="", server_default="")  # "|tag|tag|"
    disagree: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false(), index=True)
    # active learning: the MiniLM embedding (float32 bytes, computed once), how unsure the judges or the
    # learner are (0-1, the queue's order), the learner's prediction and an auto-decision it made
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    uncertainty: Mapped[float] = mapped_column(Float, default=0.5, server_default="0.5")
    prediction: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    auto: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)


class Annotator(Base):
    __tablename__ = "annotators"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 of the token; never the token
    role: Mapped[str] = mapped_column(String(16))  # annotator | adjudicator
    created_at: Mapped[str] = mapped_column(String(32))


class Assignment(Base):
    """An item in one annotator's queue; ``shown`` is the candidate order shown as A/B (pairwise).
    The queue hands out the lowest ``rank`` first (the most uncertain item), then by ``position``."""

    __tablename__ = "assignments"
    __table_args__ = (
        UniqueConstraint("item_id", "annotator_id"),
        Index("assignments_queue", "annotator_id", "status", "position"),
        Index("assignments_next", "annotator_id", "status", "rank", "position"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id"))
    position: Mapped[int] = mapped_column(Integer)
    shown: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | answered | auto
    rank: Mapped[float] = mapped_column(Float, default=0.5, server_default="0.5")  # queue order: 1 - uncertainty


class Answer(Base):
    """One annotator's current answer to one assignment (a change updates it; history keeps the old)."""

    __tablename__ = "answers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id"), unique=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id"), index=True)
    decision: Mapped[str] = mapped_column(String(16))
    choice: Mapped[int | None] = mapped_column(Integer, nullable=True)  # pairwise: the candidate chosen
    record: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # edited content
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    ratings: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    labels: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    responses: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # --questions: name → value
    created_at: Mapped[str] = mapped_column(String(32))
    updated_at: Mapped[str] = mapped_column(String(32))


class History(Base):
    """Every write: who, when, what, and the row before and after."""

    __tablename__ = "history"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    table: Mapped[str] = mapped_column(String(32))
    row_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    before: Mapped[Any] = mapped_column(JSON, nullable=True)
    after: Mapped[Any] = mapped_column(JSON, nullable=True)
