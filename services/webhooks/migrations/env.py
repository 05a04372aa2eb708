"""Alembic environment of the webhooks service's tables (subscriptions, deliveries, attempts)."""

from __future__ import annotations

from sqlmodel import SQLModel

from platograph.migrating import run_environment
from services.webhooks.adapters import tables  # noqa: F401  (registers the tables on the metadata)

run_environment(SQLModel.metadata)
