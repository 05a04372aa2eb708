"""Replaying dead letters through the gateway, once their cause is fixed: each group handles its own record
again, at the entry's own stream position, and a record that fails again stays."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import text

from platograph.contracts import ENTRY_FIELD, EntityUpserted, encode_entry, new_envelope
from services.graph.adapters import projection_store
from services.graph.bootstrap import bootstrap as graph_bootstrap
from services.graph.entrypoints import projector
from services.graph.settings import GraphSettings
from tests.helpers import FailingEmbedder, eventually
from tests.integration.test_gateway import EMBEDDER, system

pytestmark = pytest.mark.integration


def dead(api: TestClient) -> list[dict[str, Any]]:
    return list(api.get("/v1/dead-letters").json()["items"])


def test_a_graph_dead_letter_replays_at_its_own_position_and_a_later_write_still_wins(
    env: dict[str, str], engine: Any, tmp_path: Path
) -> None:
    fixed: list[int] = []

    def rejects_old(engine: Any, events: Any, consumer: str, last: str) -> int:
        if not fixed and any(e.envelope.payload.get("name") == "Old" for e in events):
            raise psycopg.DataError("simulated: Postgres rejects this entry")
        return projection_store.project(engine, events, consumer, last)

    with contextmanager(system)(tmp_path / "index", project=rejects_old) as api:
        api.post("/v1/entities", json=[{"id": "concept:x", "name": "Old"}, {"id": "concept:y", "name": "Only here"}])
        later = api.post("/v1/entities", json=[{"id": "concept:x", "name": "New"}]).json()["position"]
        (record,) = eventually(lambda: dead(api))
        assert record["group"] == "graph" and "rejected by Postgres" in record["reason"]
        assert api.get("/v1/entities/concept:y").status_code == 404
        assert api.get("/v1/entities/concept:x", params={"after": later}).json()["name"] == "New"

        fixed.append(1)  # the cause is fixed
        replayed = api.post(f"/v1/dead-letters/{record['id']}/replay")
        assert replayed.status_code == 200, replayed.text
        body = replayed.json()
        assert body["group"] == "graph" and body["result"] == {"new_events": 2}
        assert body["replayed"]["entry_id"] == record["entry_id"]
        assert api.get("/v1/entities/concept:y").json()["name"] == "Only here"
        # At its own, earlier, position: the later write keeps the name.
        assert api.get("/v1/entities/concept:x").json()["name"] == "New"
        assert dead(api) == []
        again = api.post(f"/v1/dead-letters/{record['id']}/replay")
        assert again.status_code == 404 and again.json()["detail"][0]["type"] == "not_found"
        assert api.post("/v1/dead-letters/not-an-id/replay").status_code == 422


def test_a_record_that_fails_again_stays(
    env: dict[str, str], engine: Any, tmp_path: Path, redis_client: redis.Redis, stream: str
) -> None:
    broken = {"event_id": str(uuid.uuid4()), "type": "entity.upserted", "occurred_at": "2026-11-28T00:00:00Z",
              "producer": "test", "payload": {"id": "concept:x", "type": "concept"}}  # fmt: skip
    with contextmanager(system)(tmp_path / "index") as api:
        redis_client.xadd(stream, {ENTRY_FIELD: orjson.dumps([broken])})
        (record,) = eventually(lambda: dead(api))
        assert record["index"] == 0
        response = api.post(f"/v1/dead-letters/{record['id']}/replay")
        assert response.status_code == 409
        (detail,) = response.json()["detail"]
        assert detail["type"] == "failed_again" and "name" in detail["msg"]
        assert [r["id"] for r in dead(api)] == [record["id"]]


@pytest.fixture
def poisoned(env: dict[str, str], engine: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The similarity consumer fails on any entity named "Poisoned" until `cured` is set."""
    monkeypatch.setenv("PLATOGRAPH_RESTART_PAUSE_S", "0.05")
    monkeypatch.setenv("PLATOGRAPH_MAX_DELIVERIES", "1")
    cured: list[int] = []
    embedder = FailingEmbedder(EMBEDDER, lambda texts: not cured and any("Poisoned" in t for t in texts))
    with contextmanager(system)(tmp_path / "index", embedder=embedder) as api:
        yield api, cured


def test_a_similarity_dead_letter_replays_with_the_entity_as_the_graph_has_it_now(poisoned: Any) -> None:
    api, cured = poisoned
    api.post("/v1/entities", json=[{"id": "concept:p", "name": "Poisoned"}])
    (record,) = eventually(lambda: dead(api))
    assert record["group"] == "similarity"
    written = api.post("/v1/entities", json=[{"id": "concept:p", "name": "Protein folding by diffusion"}])
    # The later write was indexed on its own; the replay must not put the older name back.
    eventually(lambda: api.get("/v1/entities/concept:p/similar").json().get("indexed"))  # an answer may be a 503
    cured.append(1)
    replayed = api.post(f"/v1/dead-letters/{record['id']}/replay")
    assert replayed.status_code == 200, replayed.text
    assert replayed.json()["group"] == "similarity"
    assert dead(api) == []
    assert api.get("/v1/entities/concept:p", params={"after": written.json()["position"]}).status_code == 200
    (top,) = api.get("/v1/search", params={"q": "Protein folding by diffusion", "mode": "dense", "limit": 1}).json()[
        "items"
    ]
    assert top["entity"]["id"] == "concept:p" and top["entity"]["name"] == "Protein folding by diffusion"
    assert top["score"] > 0.99


def test_the_projectors_own_loop_dead_letters_an_entry_that_fails_every_time(
    env: dict[str, str], engine: Any, redis_client: redis.Redis, stream: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not Postgres refusing it (that is dead-lettered at once): a bug that fails on one entry every time.
    The process exits and is started again (as `platograph up` does), and after PLATOGRAPH_MAX_DELIVERIES
    deliveries the entry is set aside with the last error; the entry behind it is projected."""
    monkeypatch.setenv("PLATOGRAPH_MAX_DELIVERIES", "3")
    tries: list[int] = []

    def fails_on_bad(engine: Any, events: Any, consumer: str, last: str) -> int:
        if any(e.envelope.payload.get("name") == "Bad" for e in events):
            tries.append(1)
            raise RuntimeError("simulated bug in the projector")
        return projection_store.project(engine, events, consumer, last)

    for name in ("Bad", "Good"):
        envelope = new_envelope(EntityUpserted(id=f"concept:{name.lower()}", type="concept", name=name), producer="t")
        redis_client.xadd(stream, encode_entry([envelope]))  # type: ignore[arg-type]
    graph = graph_bootstrap(GraphSettings(consumer="it-projector", block_ms=50, claim_idle_ms=10))
    graph.project = fails_on_bad
    stop, crashes = threading.Event(), []
    worker: threading.Thread | None = None

    def process() -> None:  # one run of the projector process, until it crashes or is stopped
        try:
            projector.run(graph, stop)
        except RuntimeError as exc:
            crashes.append(exc)

    try:
        for _ in range(10):  # the supervisor starting it again after each crash
            worker = threading.Thread(target=process, daemon=True)
            worker.start()
            worker.join(5)
            if worker.is_alive():  # it no longer crashes: the bad entry was set aside
                break
        assert graph.consumer.dead_letters(None, 10), f"not dead-lettered after {len(crashes)} crashes"
        (record,) = graph.consumer.dead_letters(None, 10)
        assert "simulated bug in the projector" in record["reason"], record
        # The first read's batch failed, then the entry alone: three deliveries crashed, the fourth set it aside.
        assert (len(tries), len(crashes)) == (4, 3)
        eventually(lambda: graph.consumer.reached(redis_client.xinfo_stream(stream)["last-generated-id"].decode()))
        with engine.connect() as conn:
            names = conn.execute(text("SELECT name FROM entities ORDER BY id")).scalars().all()
        assert names == ["Good"]
    finally:
        stop.set()
        if worker is not None:
            worker.join(10)  # before its connections are closed under it
        graph.close()
