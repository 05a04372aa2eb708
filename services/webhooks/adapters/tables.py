"""Webhook tables (SQLModel): subscriptions, the outbox of deliveries, and every attempt.

A delivery is unique per (subscription, event): the dispatcher may see an event twice, the row is
made once. Its body is stored as the exact bytes signed and sent, so every attempt sends the same.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, Float, ForeignKey, Index, Integer, Text, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel


class Subscription(SQLModel, table=True):
    __tablename__ = "webhook_subscriptions"

    id: str = Field(sa_column=Column(Text, primary_key=True))
    url: str = Field(sa_column=Column(Text, nullable=False))
    event_types: list[str] = Field(sa_column=Column(JSONB, nullable=False))
    entity_types: list[str] | None = Field(sa_column=Column(JSONB))
    min_score: float | None = Field(sa_column=Column(Float))
    description: str = Field(sa_column=Column(Text, nullable=False))
    owner: str | None = Field(sa_column=Column(Text))  # the owner of the API key that made it
    created_by: str | None = Field(sa_column=Column(Text))  # `name (key id)` of that key
    changed_by: str | None = Field(sa_column=Column(Text))  # and of the last one that changed it
    state: str = Field(sa_column=Column(Text, nullable=False))  # active, paused, disabled
    state_reason: str = Field(sa_column=Column(Text, nullable=False))
    # Fernet tokens: a dump of the database does not reveal the signing secrets.
    secret: str = Field(sa_column=Column(Text, nullable=False))
    previous_secret: str | None = Field(sa_column=Column(Text))
    previous_secret_until: datetime | None = Field(sa_column=Column(DateTime(timezone=True)))
    failing_since: datetime | None = Field(sa_column=Column(DateTime(timezone=True)))
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))


class Delivery(SQLModel, table=True):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("subscription_id", "event_id", name="uq_webhook_deliveries_event"),
        Index("ix_webhook_deliveries_subscription", "subscription_id", "created_at"),
    )

    id: uuid.UUID = Field(primary_key=True)
    subscription_id: str = Field(
        sa_column=Column(Text, ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"), nullable=False)
    )
    event_id: uuid.UUID
    event_type: str = Field(sa_column=Column(Text, nullable=False))
    stream_id: str = Field(sa_column=Column(Text, nullable=False))
    body: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(sa_column=Column(Text, nullable=False))  # pending, delivered, failed
    status_reason: str = Field(sa_column=Column(Text, nullable=False, server_default=""))
    attempts: int = Field(sa_column=Column(Integer, nullable=False, server_default="0"))
    next_attempt_at: datetime | None = Field(sa_column=Column(DateTime(timezone=True)))
    delivered_at: datetime | None = Field(sa_column=Column(DateTime(timezone=True)))
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))
    replay_id: str | None = Field(default=None, sa_column=Column(Text))  # the replay that last reopened it


class Attempt(SQLModel, table=True):
    __tablename__ = "webhook_attempts"

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True))
    delivery_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    attempted_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    status_code: int | None = Field(sa_column=Column(Integer))
    latency_ms: float
    error: str = Field(sa_column=Column(Text, nullable=False))
    response: str = Field(sa_column=Column(Text, nullable=False))  # its first bytes
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
