"""Postgres tables (SQLModel). The journal is the system of record; the rest is a read model.

Positions are stream positions (see platograph.positions) kept as NUMERIC(30): every register in the
read model keeps the position of the event that last won it, so events applied in any order give
the same rows (last writer by stream order wins).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, Index, Numeric, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

POSITION = Numeric(30, 0)


class JournalEvent(SQLModel, table=True):
    __tablename__ = "journal"

    event_id: uuid.UUID = Field(primary_key=True)
    position: Decimal = Field(sa_column=Column(POSITION, nullable=False, unique=True))
    stream_id: str = Field(sa_column=Column(Text, nullable=False))
    type: str = Field(sa_column=Column(Text, nullable=False, index=True))
    schema_version: int
    occurred_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    producer: str = Field(sa_column=Column(Text, nullable=False))
    payload: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    actor: dict[str, Any] | None = Field(sa_column=Column(JSONB))  # who caused it (contracts.Actor)
    recorded_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))


class Entity(SQLModel, table=True):
    __tablename__ = "entities"
    __table_args__ = (
        Index("ix_entities_type_id", "type", "id"),
        Index("ix_entities_merged_into", "merged_into", postgresql_where=text("merged_into IS NOT NULL")),
        # Name search (`?q=`, ILIKE): trigram indexes (migration 0006).
        Index("ix_entities_name_trgm", "name", postgresql_using="gin", postgresql_ops={"name": "gin_trgm_ops"}),
        Index("ix_entities_text_trgm", "text", postgresql_using="gin", postgresql_ops={"text": "gin_trgm_ops"}),
    )

    id: str = Field(sa_column=Column(Text, primary_key=True))
    type: str = Field(sa_column=Column(Text, nullable=False))
    name: str = Field(sa_column=Column(Text, nullable=False))
    text: str = Field(sa_column=Column(Text, nullable=False))
    description: str = Field(sa_column=Column(Text, nullable=False))
    attributes: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    status: str = Field(sa_column=Column(Text, nullable=False))  # merged while merged_into is set, else base_status
    base_status: str = Field(sa_column=Column(Text, nullable=False, server_default="active"))
    merged_into: str | None = Field(default=None, sa_column=Column(Text))
    merge_position: Decimal = Field(default=Decimal(0), sa_column=Column(POSITION, nullable=False, server_default="0"))
    # version counts the upserts applied; 0 means the entity is only known from a retraction so far.
    version: int
    position: Decimal = Field(sa_column=Column(POSITION, nullable=False))
    status_position: Decimal = Field(sa_column=Column(POSITION, nullable=False))
    created_at: datetime | None = Field(sa_column=Column(DateTime(timezone=True)))
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class Edge(SQLModel, table=True):
    __tablename__ = "edges"
    __table_args__ = (Index("ix_edges_target", "target", "source"),)

    source: str = Field(sa_column=Column(Text, primary_key=True))
    type: str = Field(sa_column=Column(Text, primary_key=True))
    target: str = Field(sa_column=Column(Text, primary_key=True))
    description: str = Field(sa_column=Column(Text, nullable=False))
    removed: bool
    position: Decimal = Field(sa_column=Column(POSITION, nullable=False))
    created_at: datetime | None = Field(sa_column=Column(DateTime(timezone=True)))


class ProjectionTracking(SQLModel, table=True):
    __tablename__ = "projection_tracking"

    consumer: str = Field(sa_column=Column(Text, primary_key=True))
    last_stream_id: str = Field(sa_column=Column(Text, nullable=False))
    events: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))


class Candidate(SQLModel, table=True):
    """A proposed pair. `state` (proposed/withdrawn) and `decision` (accepted/rejected, by a person) are
    separate last-writer-wins registers, so a late proposal never undoes a person's decision."""

    __tablename__ = "candidates"
    __table_args__ = (
        Index("ix_candidates_status_score", "status", "score"),
        Index("ix_candidates_b", "b"),
    )

    a: str = Field(sa_column=Column(Text, primary_key=True))
    b: str = Field(sa_column=Column(Text, primary_key=True))
    a_type: str = Field(sa_column=Column(Text, nullable=False))
    b_type: str = Field(sa_column=Column(Text, nullable=False))
    score: float
    kind: str = Field(sa_column=Column(Text, nullable=False))
    reason: str = Field(sa_column=Column(Text, nullable=False))
    suggested_edge: str | None = Field(sa_column=Column(Text))
    model: str = Field(sa_column=Column(Text, nullable=False))
    state: str = Field(sa_column=Column(Text, nullable=False))
    state_reason: str = Field(sa_column=Column(Text, nullable=False))
    position: Decimal = Field(sa_column=Column(POSITION, nullable=False))  # of the latest proposal
    state_position: Decimal = Field(sa_column=Column(POSITION, nullable=False))
    decision: str | None = Field(sa_column=Column(Text))
    decided_by: str | None = Field(sa_column=Column(Text))
    decided_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    decision_position: Decimal = Field(sa_column=Column(POSITION, nullable=False))
    status: str = Field(sa_column=Column(Text, nullable=False))  # decision if any, else state
    created_at: datetime | None = Field(sa_column=Column(DateTime(timezone=True)))
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
