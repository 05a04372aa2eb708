"""Settings every process shares, read from the environment and checked at start-up."""

from __future__ import annotations

import os
import re
from pathlib import Path

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
)

from platograph.body_limit import MIB, BodyLimits
from platograph.ontology import DEFAULT_PATH
from platograph.redis_clients import is_cluster

HASH_TAG = re.compile(r"\{[^{}]+\}")


class SecretFiles(BaseSettings):
    """Settings from the environment, and where PLATOGRAPH_SECRETS_DIR names a directory (Docker's and
    Kubernetes' /run/secrets), from the files in it named as the variables (`REDIS_URL`,
    `PLATOGRAPH_INTERNAL_TOKEN`, …): a password need not sit in the environment. The environment wins."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        directory = os.environ.get("PLATOGRAPH_SECRETS_DIR")
        files = (SecretsSettingsSource(settings_cls, secrets_dir=directory),) if directory else ()
        return init_settings, env_settings, *files


class CoreSettings(SecretFiles):
    """Where the event log and the database are; which ontology applies."""

    model_config = SettingsConfigDict(env_prefix="PLATOGRAPH_", extra="ignore")

    redis_url: str = Field(validation_alias=AliasChoices("REDIS_URL", "PLATOGRAPH_REDIS_URL"))
    # RQ's queues (webhook deliveries, re-embed batches, background jobs): a standalone server, since RQ
    # takes no cluster client. Unset: REDIS_URL's server.
    rq_redis_url: str | None = Field(None, validation_alias=AliasChoices("RQ_REDIS_URL", "PLATOGRAPH_RQ_REDIS_URL"))
    stream: str = "platograph:events"
    ontology: Path = DEFAULT_PATH
    # Seconds a background loop (a consumer thread) waits before starting again after an unexpected error.
    restart_pause_s: float = Field(5.0, gt=0, le=300)
    # Deliveries without an ack after which a consumer group dead-letters an entry (platograph.consuming).
    max_deliveries: int = Field(5, ge=1, le=1000)
    # A group member idle this long with nothing pending is deleted from its group (platograph.retiring);
    # 0: never. Names made from pod or host names change with each deploy.
    consumer_retire_s: float = Field(86_400.0, ge=0)
    # What callers of the internal services send (platograph.internal); `platograph up` makes one.
    internal_token: str | None = Field(None, min_length=32)
    # Request bodies over these are refused with 413 as they arrive (platograph.body_limit); an import is
    # checked whole before any line is appended, so it is held in memory: split bigger files (the loader does).
    max_body_bytes: int = Field(16 * MIB, ge=1024, le=1024 * MIB)
    max_import_bytes: int = Field(16 * MIB, ge=1024, le=1024 * MIB)

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://")):
            raise ValueError("REDIS_URL must start with redis://, rediss:// or unix://, or for a Redis Cluster "
                             "redis+cluster:// or rediss+cluster://")  # fmt: skip
        return value

    @field_validator("rq_redis_url")
    @classmethod
    def _rq_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("RQ_REDIS_URL must name a standalone server (redis://, rediss:// or unix://): "
                             "RQ does not support Redis Cluster")  # fmt: skip
        return value

    @model_validator(mode="after")
    def _cluster_needs(self) -> CoreSettings:
        if is_cluster(self.redis_url):
            if not HASH_TAG.search(self.stream):
                raise ValueError(f"PLATOGRAPH_STREAM {self.stream!r} needs a hash tag on a Redis Cluster, e.g. "
                                 f"'{{platograph}}:events': every key derived from it must share one slot")  # fmt: skip
            if self.rq_redis_url is None:
                raise ValueError("REDIS_URL names a Redis Cluster: set RQ_REDIS_URL to a standalone server for "
                                 "RQ's queues (RQ does not support Redis Cluster)")  # fmt: skip
        return self

    @property
    def rq_url(self) -> str:
        """Where RQ's queues live."""
        return self.rq_redis_url or self.redis_url

    @property
    def body_limits(self) -> BodyLimits:
        return BodyLimits(self.max_body_bytes, {"/v1/import": self.max_import_bytes})

    @property
    def dead_letter_stream(self) -> str:
        return f"{self.stream}:dead"


class DatabaseSettings(SecretFiles):
    """The Postgres database (URL in libpq or SQLAlchemy form)."""

    model_config = SettingsConfigDict(env_prefix="PLATOGRAPH_", extra="ignore")

    database_url: str = Field(validation_alias=AliasChoices("DATABASE_URL", "PLATOGRAPH_DATABASE_URL"))
    # Off behind PgBouncer in transaction mode, which cannot keep prepared statements (platograph.database).
    db_prepared_statements: bool = True

    @field_validator("database_url")
    @classmethod
    def _sqlalchemy_url(cls, value: str) -> str:
        return sqlalchemy_url(value)


def libpq_url(url: str) -> str:
    """The same URL as psycopg itself takes it (postgresql://), from either form."""
    return "postgresql://" + sqlalchemy_url(url).removeprefix("postgresql+psycopg://")


def sqlalchemy_url(url: str) -> str:
    """Turn a libpq URL (postgresql://, postgres://) into one SQLAlchemy opens with psycopg 3."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise ValueError("DATABASE_URL must be a postgresql:// URL")
