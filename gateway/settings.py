"""Gateway settings."""

from __future__ import annotations

from typing import Annotated

from limits import parse
from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from platograph.settings import CoreSettings


class GatewaySettings(CoreSettings):
    """The gateway appends review decisions itself, so it needs the event log too."""

    ingest_url: str = "http://127.0.0.1:8001"
    graph_url: str = "http://127.0.0.1:8002"
    similarity_url: str = "http://127.0.0.1:8003"
    webhooks_url: str = "http://127.0.0.1:8004"
    access_url: str = "http://127.0.0.1:8005"
    # Reads (views, lists, search, status) without a key: for a local demo only.
    public_reads: bool = False
    # How long a key's principal is kept: a revoked key stops working within this many seconds.
    key_cache_s: float = Field(5.0, ge=0, le=5)
    # Host headers the gateway answers (others get 400): add the name it is reached by when exposed.
    allowed_hosts: Annotated[list[str], NoDecode] = ["localhost", "127.0.0.1"]
    # Request budgets per key (a key may carry its own), in the `limits` notation; over it: 429, Retry-After.
    rate_read: str = "6000/minute"
    rate_write: str = "1200/minute"
    # Origins whose pages may call the API from a browser (CORS); none by default.
    cors_origins: Annotated[list[str], NoDecode] = []

    @field_validator("rate_read", "rate_write")
    @classmethod
    def _budget(cls, value: str) -> str:
        parse(value)  # ValueError names what it cannot read
        return value

    @field_validator("allowed_hosts", "cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value

    # None: the similarity service's default for its model, which the view reports as `threshold`.
    similarity_threshold: float | None = Field(None, ge=-1, le=1)
    # Finished neighborhood views kept in each gateway process (gateway/adapters/view_cache.py); 0: none.
    view_cache_mb: int = Field(64, ge=0, le=65_536)
    # The longest a view is kept, whatever is announced: bounds what a write around the projector leaves.
    view_cache_ttl_s: float = Field(60.0, gt=0, le=86_400)
    timeout_s: float = Field(30.0, gt=0)
    upstream_connections: int = Field(16, ge=1, le=1000)
    read_your_writes_wait_ms: int = Field(5000, ge=0, le=30_000)
    # Requests of this gateway waiting for the projection at once (`after=`, `wait_ms`), each on a
    # connection of a pool of their own so plain reads never queue behind them; more get 429.
    projection_waiters: int = Field(256, ge=1, le=10_000)
