"""Webhook service settings."""

from __future__ import annotations

import ipaddress
import os
import socket
from typing import Annotated

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import NoDecode

from platograph.settings import CoreSettings, DatabaseSettings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# Standard Webhooks' suggested schedule: about 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
DEFAULT_SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)


class WebhookSettings(CoreSettings, DatabaseSettings):
    graph_url: str = "http://127.0.0.1:8002"
    # Fernet keys (comma-separated, the first encrypts) that keep signing secrets unreadable in a dump.
    webhook_key: str = Field(validation_alias=AliasChoices("PLATOGRAPH_WEBHOOK_KEY"))
    # Networks that endpoints may resolve to although they are private, loopback or link-local.
    webhook_allowlist: Annotated[list[Network], NoDecode] = Field(default_factory=list)
    # Ports below 1024 (other than 80 and 443) that endpoints may use, e.g. 8 for a lab's odd receiver.
    webhook_ports: Annotated[frozenset[int], NoDecode] = frozenset()
    # Seconds before each retry; the number of retries is its length.
    webhook_retry_schedule: Annotated[tuple[float, ...], NoDecode] = DEFAULT_SCHEDULE
    webhook_jitter: float = Field(0.2, ge=0, le=1)  # each delay is scaled by a factor in [1-j, 1+j]
    webhook_timeout_s: float = Field(15.0, gt=0, le=300)
    webhook_response_cap: int = Field(64 * 1024, ge=0)  # bytes of a response body read at most
    webhook_excerpt: int = Field(500, ge=0, le=10_000)  # bytes of it kept in the attempt log
    webhook_rotation_grace_s: float = Field(24 * 3600.0, ge=0)
    # An endpoint failing without a success for this long is disabled.
    webhook_disable_after_s: float = Field(5 * 24 * 3600.0, gt=0)
    # Deliveries to one endpoint in flight at once, so a slow endpoint cannot hold every worker.
    webhook_endpoint_concurrency: int = Field(2, ge=1, le=100)
    # An endpoint that refuses, times out or answers 5xx/429 is backed off as a whole: first pause, doubling
    # with each failed probe up to the longest (adapters/breaker.py).
    webhook_breaker_first_s: float = Field(5.0, gt=0, le=3600)
    webhook_breaker_longest_s: float = Field(600.0, gt=0, le=24 * 3600)
    # Pending deliveries overdue this long have lost their job; they are queued again (every sweep_every_s).
    webhook_stuck_after_s: float = Field(900.0, ge=60)
    webhook_sweep_every_s: float = Field(60.0, gt=0)
    webhook_queue: str = "platograph-webhooks"
    webhook_group: str = "webhooks"
    webhook_consumer: str = Field(default_factory=lambda: f"webhooks-{socket.gethostname()}-{os.getpid()}")
    # Stream entries a dispatcher read takes (at most: a read returns what is there). With 50, a dispatcher
    # holding back a second per read recorded at most 50 events a second: 500 deliveries/s to 10 endpoints.
    webhook_batch_size: int = Field(200, ge=1, le=10_000)
    # Delivery jobs waiting in the queue past which the dispatcher holds back (up to webhook_hold_s) before
    # it reads on: the entries gather in the stream and go out as bigger batches, fewer jobs, instead of
    # a queue of one-delivery jobs that each pay the job's round trips.
    webhook_queue_high: int = Field(8, ge=1)
    webhook_hold_s: float = Field(1.0, ge=0, le=30)
    dispatch: bool = True  # run the stream dispatcher in this process

    @field_validator("webhook_allowlist", mode="before")
    @classmethod
    def _cidrs(cls, value: object) -> object:
        if isinstance(value, str):
            return [ipaddress.ip_network(part.strip(), strict=False) for part in value.split(",") if part.strip()]
        return value

    @field_validator("webhook_ports", "webhook_retry_schedule", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):  # pydantic turns each part into the field's item type
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("webhook_key")
    @classmethod
    def _fernet_keys(cls, value: str) -> str:
        from cryptography.fernet import Fernet

        for key in value.split(","):
            try:
                Fernet(key.strip())
            except ValueError as exc:
                raise ValueError(
                    "PLATOGRAPH_WEBHOOK_KEY must be Fernet keys (32 url-safe base64 bytes), comma-separated; "
                    "make one with `python -c 'from cryptography.fernet import Fernet as F; print(F.generate_key())'`"
                ) from exc
        return value
