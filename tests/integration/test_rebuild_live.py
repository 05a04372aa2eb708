"""A rebuild under load: while the projector keeps projecting new writes and a reader keeps reading views,
the read model is rebuilt from the journal into copies and swapped in. No read fails or waits over a
second, the writes made meanwhile are in the result, and the result equals a quiet rebuild of the same
journal, adjacency and counters included."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from platograph.contracts import EdgeAdded, EntityUpserted
from services.graph.adapters import projection_store
from services.graph.bootstrap import bootstrap as graph_bootstrap
from services.graph.entrypoints import http as graph_http
from services.graph.entrypoints import projector
from services.graph.settings import GraphSettings
from tests.helpers import append, eventually, snapshot
from tests.integration.test_hub_views import _event, assert_adjacency_is_recomputed, random_events

pytestmark = pytest.mark.integration


def counters(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        kept = conn.execute(text("SELECT key, sum(delta) FROM stat_deltas GROUP BY key HAVING sum(delta) <> 0"))
        return {key: int(n) for key, n in kept}


def test_a_rebuild_under_load_keeps_the_views_answering_and_equals_a_quiet_one(
    env: dict[str, str], engine: Engine, redis_client: redis.Redis, stream: str
) -> None:
    rng = random.Random(4)
    history = random_events(rng, entities=3000, edges=12_000, merges=True)
    events = [_event(p, 1 + n) for n, p in enumerate(history)]  # positions far before the stream's
    for start in range(0, len(events), 2000):
        chunk = events[start : start + 2000]
        projection_store.project(engine, chunk, "history", chunk[-1].stream_id)
    graph = graph_bootstrap(GraphSettings(consumer="it-projector", block_ms=50))
    api = TestClient(graph_http.create_app(graph), base_url="http://graph")
    stop, quiet = threading.Event(), threading.Event()  # the projector stops last, once all is projected
    latencies: list[float] = []
    failures: list[str] = []
    written: list[str] = []

    def write() -> None:  # new claims, each linked to a hub, through the stream and the live projector
        n = 0
        while not quiet.is_set():
            claim = f"claim:live{n}"
            append(redis_client, stream, EntityUpserted(id=claim, type="claim", name=f"Live {n}"),
                   EdgeAdded(source=claim, target="paper:e0", type="associated_with"))  # fmt: skip
            written.append(claim)
            n += 1
            time.sleep(0.005)

    def read() -> None:
        while not quiet.is_set():
            entity = rng.choice(["paper:e0", f"concept:e{rng.randrange(3000)}", f"claim:e{rng.randrange(3000)}"])
            began = time.monotonic()
            response = api.get(f"/v1/entities/{entity}/neighborhood", params={"limit": 20})
            latencies.append(time.monotonic() - began)
            if response.status_code not in (200, 404):
                failures.append(f"{entity}: {response.status_code} {response.text[:200]}")

    threads = [threading.Thread(target=projector.run, args=(graph, stop), daemon=True),
               threading.Thread(target=write, daemon=True), threading.Thread(target=read, daemon=True)]  # fmt: skip
    with api:
        for thread in threads:
            thread.start()
        try:
            eventually(lambda: len(written) > 20)
            before = len(written)
            replayed = projection_store.rebuild(engine, batch=3000)
            assert len(written) > before + 20  # writes went on during the rebuild
            quiet.set()
            threads[1].join(30)

            def live() -> set[str]:
                with engine.connect() as conn:
                    return {r[0] for r in conn.execute(text("SELECT id FROM entities WHERE id LIKE 'claim:live%'"))}

            # Every claim written, during the rebuild too, is in the rebuilt model once projected.
            eventually(lambda: live() == set(written))
        finally:
            quiet.set()
            stop.set()
            for thread in threads:
                thread.join(30)
        assert replayed >= len(events) and not failures, failures[:5]
        assert latencies and max(latencies) < 1.0, sorted(latencies)[-5:]
    graph.close()
    after = snapshot(engine)
    kept = counters(engine)
    assert_adjacency_is_recomputed(engine)
    assert projection_store.rebuild(engine) == len(events) + 2 * len(written)  # quiet, from the same journal
    assert snapshot(engine) == after and counters(engine) == kept
    with engine.connect() as conn:
        schemas = conn.execute(text("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'rebuild%'")).scalar_one()
    assert schemas == 0


def test_one_rebuild_at_a_time(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    from services.graph.adapters import rebuilding

    started, release = threading.Event(), threading.Event()
    outcome: list[Any] = []

    def slow(conn: Any, after: int, batch: int) -> tuple[int, int]:
        started.set()
        release.wait(10)
        return 0, after

    first = threading.Thread(target=lambda: outcome.append(rebuilding.rebuild(engine, slow)))
    first.start()
    assert started.wait(10)
    with pytest.raises(RuntimeError, match="another rebuild is running"):
        rebuilding.rebuild(engine, slow)
    release.set()
    first.join(10)
    assert outcome == [0]
