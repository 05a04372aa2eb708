"""Fixtures: every integration and end-to-end test runs against external and embedded servers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine, text

from ops import migrate
from platograph.database import make_engine
from platograph.redis_clients import sync_redis
from tests import servers

# The modules whose tests also run with the event stream on a 3-master Valkey cluster (the rest use RQ or
# the whole system, which a cluster changes only through the modules below).
CLUSTER_MODULES = {
    "test_event_log_contract", "test_consuming", "test_atomic_append", "test_merges", "test_dead_letter_replay",
    "test_reembed_race", "test_catch_up", "test_ingest_api", "test_gateway", "test_projector", "test_similarity_flow",
    "test_graph_api", "test_webhook_attempts", "test_retiring", "test_similarity_replicas", "test_rate_leases",
    "test_view_changes",
}  # fmt: skip


# The modules whose tests also run with the database behind PgBouncer in transaction mode (prepared
# statements off): those that read and write Postgres the most.
PGBOUNCER_MODULES = {
    "test_graph_api", "test_projector", "test_gateway", "test_webhook_attempts", "test_merges", "test_catch_up",
    "test_similarity_flow", "test_access", "test_pgbouncer", "test_view_changes",
}  # fmt: skip
ONLY = {"cluster": CLUSTER_MODULES, "pgbouncer": PGBOUNCER_MODULES}

# Tests whose subject is RQ's and the workers' timing (a heartbeat lapsing, a breaker's pauses), which waits
# out tens of seconds and is the same on either server: they run against the machine's Redis only.
EXTERNAL_ONLY = {
    "test_a_worker_killed_mid_delivery_does_not_lose_the_message",
    "test_a_dead_endpoint_is_backed_off_as_a_whole_beside_a_healthy_one",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the "cluster" and "pgbouncer" backends only for their modules, and EXTERNAL_ONLY on one backend."""
    kept, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("backend") if callspec is not None else None
        module = item.module.__name__.rpartition(".")[2] if item.module else ""
        name = getattr(item, "originalname", item.name)
        other = backend in ONLY and module not in ONLY[backend]
        (dropped if other or (name in EXTERNAL_ONLY and backend != "external") else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(scope="session", params=["external", "embedded", "cluster", "pgbouncer"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Servers]:
    """Real Redis + Postgres, migrated: the machine's servers, the embedded ones, a Valkey cluster (with the
    machine's PostgreSQL), PgBouncer in front of the machine's PostgreSQL (with its Redis)."""
    if request.param == "external":
        context = servers.external()
    elif request.param == "cluster":
        context = servers.cluster(tmp_path_factory.mktemp("cluster"))
    elif request.param == "pgbouncer":
        context = servers.pgbouncer()
    else:
        context = servers.embedded(tmp_path_factory.mktemp("embedded"))
    with context as found:
        migrate.upgrade_all(found.direct_database_url or found.database_url)
        yield found


@pytest.fixture
def engine(backend: servers.Servers) -> Iterator[Engine]:
    """An engine on a database whose read model and journal start empty."""
    eng = make_engine(backend.database_url, prepared_statements=backend.prepared_statements)
    with eng.begin() as conn:
        conn.execute(
            text(
                "TRUNCATE journal, journal_ids, entities, edges, candidates, projection_tracking,"
                " webhook_subscriptions, webhook_deliveries, webhook_attempts"
            )
        )
    yield eng
    eng.dispose()


@pytest.fixture
def redis_client(backend: servers.Servers) -> Iterator[redis.Redis]:
    client = sync_redis(backend.redis_url)
    yield client
    client.close()


@pytest.fixture
def stream() -> str:
    """A stream name no other test uses, so tests share a Redis without flushing it."""
    return f"{{test-{uuid.uuid4().hex}}}:events"  # a hash tag: on a cluster its keys share one slot


@pytest.fixture
def env(backend: servers.Servers, stream: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment for settings classes and child processes."""
    values = {"REDIS_URL": backend.redis_url, "DATABASE_URL": backend.database_url, "PLATOGRAPH_STREAM": stream}
    if backend.rq_redis_url:
        values["RQ_REDIS_URL"] = backend.rq_redis_url
    if not backend.prepared_statements:
        values["PLATOGRAPH_DB_PREPARED_STATEMENTS"] = "false"
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


SEED_FILE = Path(__file__).resolve().parent.parent / "seeds" / "platonic-representation.ndjson"
