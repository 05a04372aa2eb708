"""Real Redis and Postgres for tests: the machine's servers ("external"), embedded ones, or a Valkey
cluster beside the machine's PostgreSQL ("cluster")."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import redis

from ops.embedded import EmbeddedPostgres, EmbeddedRedis
from tests.valkey_cluster import valkey_cluster

EXTERNAL_REDIS = os.environ.get("PLATOGRAPH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
EXTERNAL_POSTGRES = os.environ.get("PLATOGRAPH_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@dataclass(frozen=True)
class Servers:
    kind: str
    redis_url: str
    database_url: str
    rq_redis_url: str | None = None  # RQ's own server, where REDIS_URL is a cluster


def _unavailable(what: str, exc: Exception) -> None:
    message = f"external {what} unavailable: {exc}"
    if os.environ.get("CI"):
        pytest.fail(message)  # CI machines start both servers: their absence is a failure there
    pytest.skip(message)


@contextmanager
def external() -> Iterator[Servers]:
    """A fresh database on the machine's PostgreSQL, and its Redis (tests use unique stream names)."""
    try:
        redis.Redis.from_url(EXTERNAL_REDIS).ping()
    except redis.RedisError as exc:
        _unavailable("Redis", exc)
    with _fresh_database() as database_url:
        yield Servers("external", EXTERNAL_REDIS, database_url)


@contextmanager
def cluster(data_dir: Path) -> Iterator[Servers]:
    """A 3-master Valkey cluster (tests/valkey_cluster.py) for the event stream and everything derived
    from it; RQ's queues on the machine's Redis (RQ takes no cluster client); a fresh database."""
    try:
        redis.Redis.from_url(EXTERNAL_REDIS).ping()
    except redis.RedisError as exc:
        _unavailable("Redis", exc)
    with valkey_cluster(data_dir) as ports, _fresh_database() as database_url:
        yield Servers("cluster", f"redis+cluster://127.0.0.1:{ports[0]}", database_url, rq_redis_url=EXTERNAL_REDIS)


@contextmanager
def _fresh_database() -> Iterator[str]:
    name = f"platograph_test_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(EXTERNAL_POSTGRES, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        _unavailable("PostgreSQL", exc)
    base, _, _ = EXTERNAL_POSTGRES.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(EXTERNAL_POSTGRES, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def embedded(data_dir: Path) -> Iterator[Servers]:
    """Valkey and PostgreSQL from their pip wheels, in data_dir."""
    valkey = EmbeddedRedis(data_dir / "valkey")
    postgres = EmbeddedPostgres(data_dir / "pg")
    redis_url = valkey.start()
    try:
        yield Servers("embedded", redis_url, postgres.start())
    finally:
        postgres.stop()
        valkey.stop()
