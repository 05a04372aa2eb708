"""Graph service settings."""

from __future__ import annotations

import os
import socket
from typing import Annotated

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import NoDecode

from platograph.settings import CoreSettings, DatabaseSettings, sqlalchemy_url


class GraphSettings(CoreSettings, DatabaseSettings):
    group: str = "graph"
    consumer: str = Field(default_factory=lambda: f"projector-{socket.gethostname()}-{os.getpid()}")
    batch_size: int = 50  # entries per transaction; an entry holds up to events_per_entry events
    block_ms: int = 1000
    # Requests of this process waiting for the projection (read-your-writes) at once; more get 429.
    projection_waiters: int = Field(1000, ge=1, le=100_000)
    claim_idle_ms: int = 30_000
    # Trim stream entries every consumer group is done with (the journal keeps them); 0 = never.
    trim_every_s: float = 60.0
    # Past this many entries the oldest go even if a group other than this projector's still needs them:
    # it reads them back from the journal (platograph.trimming). None: wait for the slowest group.
    stream_maxlen: int | None = Field(1_000_000, ge=100)
    # Streaming replicas the neighborhood view and the entity reads go to (comma-separated; each request
    # takes the next); none: the primary. `after=` waits until each has replayed what the position needs.
    database_read_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=AliasChoices("DATABASE_READ_URL", "PLATOGRAPH_DATABASE_READ_URL")
    )

    @field_validator("database_read_urls", mode="before")
    @classmethod
    def _read_urls(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        return [sqlalchemy_url(url) for url in value] if isinstance(value, list) else value
