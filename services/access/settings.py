"""Access service settings."""

from __future__ import annotations

from platograph.settings import DatabaseSettings


class AccessSettings(DatabaseSettings):
    """Only the database: the keys' hashes live in Postgres."""
