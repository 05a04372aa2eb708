"""Ingest settings."""

from __future__ import annotations

from platograph.settings import CoreSettings


class IngestSettings(CoreSettings):
    max_batch: int = 1000
    max_import_lines: int = 200_000
    events_per_entry: int = 500
    idempotency_ttl_s: int = 7 * 24 * 3600
