"""Kept views: which views the graph announces a commit changed (real Postgres), the gateway following
the announcements (real Redis), and views through the gateway staying current while kept."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from gateway.adapters import view_cache
from gateway.adapters.view_cache import ViewCache
from platograph import view_changes
from platograph.contracts import (
    CandidateProposed,
    EdgeAdded,
    EdgeRemoved,
    EntityMerged,
    EntityUpserted,
    ViewsChanged,
)
from platograph.redis_clients import async_redis
from services.graph.adapters import view_changes as view_changes_adapter
from services.graph.adapters.view_changes import Announcer, views_changed
from services.graph.domain.view_changes import Touched
from services.graph.service_layer import projecting
from tests.helpers import append, consumer, drain, eventually
from tests.integration.test_gateway import QUOTE, load_seeds, system

pytestmark = pytest.mark.integration


@pytest.fixture
def graph(engine: Engine, redis_client: redis.Redis, stream: str) -> Engine:
    """paper:p ← extracted_from ← concept:c ← supports ← claim:x; claim:x ~ finding:f (a candidate);
    quote:m → mentions → claim:y, and quote:m merged into concept:s."""
    append(
        redis_client,
        stream,
        *[EntityUpserted(id=i, type=i.partition(":")[0], name=i) for i in
          ("paper:p", "concept:c", "claim:x", "finding:f", "claim:y", "quote:m", "concept:s", "claim:alone")],
        EdgeAdded(source="concept:c", target="paper:p", type="extracted_from"),
        EdgeAdded(source="claim:x", target="concept:c", type="supports"),
        EdgeAdded(source="quote:m", target="claim:y", type="mentions"),
        CandidateProposed(a="claim:x", b="finding:f", score=0.8, kind="link", model="m"),
        EntityMerged(id="quote:m", into="concept:s"),
    )  # fmt: skip
    drain(consumer(redis_client, stream), engine)
    return engine


def changed(engine: Engine, views: set[str] | None = None, shown: set[str] | None = None) -> set[str]:
    message = views_changed(engine, Touched(frozenset(views or ()), frozenset(shown or ())))
    assert not message.everything
    return set(message.ids)


def test_an_entitys_change_reaches_every_view_that_shows_it(graph: Engine) -> None:
    assert changed(graph, shown={"paper:p"}) == {"paper:p", "concept:c"}  # c's source paper
    assert changed(graph, shown={"concept:c"}) == {"concept:c", "paper:p", "claim:x"}
    assert changed(graph, shown={"finding:f"}) == {"finding:f", "claim:x"}  # x's related by similarity
    # y's neighbour quote:m shows in concept:s's view (merged into it)
    assert changed(graph, shown={"claim:y"}) == {"claim:y", "quote:m", "concept:s"}
    # what is merged into concept:s shows its edges there: their other ends show concept:s
    assert changed(graph, shown={"concept:s"}) == {"concept:s", "claim:y"}
    assert changed(graph, shown={"claim:alone"}) == {"claim:alone"}


def test_an_edges_change_reaches_its_ends_and_what_they_are_merged_into(graph: Engine) -> None:
    assert changed(graph, views={"claim:x", "concept:c"}) == {"claim:x", "concept:c"}
    assert changed(graph, views={"claim:y", "quote:m"}) == {"claim:y", "quote:m", "concept:s"}


def test_too_many_views_changed_is_everything(graph: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(view_changes_adapter, "VIEWS_AT_MOST", 2)
    assert views_changed(graph, Touched(shown=frozenset({"concept:c"}))).everything
    assert not views_changed(graph, Touched(shown=frozenset({"claim:alone"}))).everything


def test_the_projector_announces_after_its_commit(engine: Engine, redis_client: redis.Redis, stream: str) -> None:
    c = consumer(redis_client, stream)
    announcer = Announcer(engine, redis_client, stream)
    append(redis_client, stream, EntityUpserted(id="claim:a", type="claim", name="A"),
           EntityUpserted(id="claim:b", type="claim", name="B"))  # fmt: skip
    append(redis_client, stream, EdgeAdded(source="claim:a", target="claim:b", type="supports"))
    entries = c.read_new(100, block_ms=10)
    projecting.handle(entries, engine=engine, consumer=c, announce=announcer)
    (entry,) = redis_client.xrange(view_changes.key(stream))
    assert view_changes.read(entry[1]).ids == ("claim:a", "claim:b")
    # A redelivered batch, whose events the journal holds already, announces again (its first announcement
    # may have been lost to a crash after the commit).
    projecting.handle(entries, engine=engine, consumer=c, announce=announcer)
    assert len(redis_client.xrange(view_changes.key(stream))) == 2
    append(redis_client, stream, EdgeRemoved(source="claim:a", target="claim:b", type="supports"),
           EntityMerged(id="claim:a", into="claim:b"))  # fmt: skip
    projecting.handle(c.read_new(100, block_ms=10), engine=engine, consumer=c, announce=announcer)
    assert view_changes.read(redis_client.xrange(view_changes.key(stream))[-1][1]).everything


def test_the_follower_drops_what_is_announced_and_starts_over_when_behind(
    redis_client: redis.Redis, stream: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(view_cache, "BATCH", 2)
    monkeypatch.setattr(view_cache, "BLOCK_MS", 50)
    cache = ViewCache(1 << 20, 60.0)
    key = view_changes.key(stream)

    async def scenario() -> None:
        client = async_redis(env["REDIS_URL"])
        stop = asyncio.Event()
        task = asyncio.create_task(view_cache.follow(cache, client, stream, stop))
        try:
            await wait_for(lambda: cache.following)
            for entity in ("claim:a", "claim:b"):
                assert cache.keep(cache.ticket(), entity, f"/{entity}", b"{}")
            view_changes.announce(redis_client, stream, ViewsChanged(ids=("claim:a",)))
            await wait_for(lambda: cache.get("/claim:a") is None)
            assert cache.get("/claim:b") == b"{}" and cache.following
            # Two at once fill a batch: the follower may have missed some, so it starts over with nothing kept.
            message = ViewsChanged(ids=("claim:zzz",)).model_dump_json()
            redis_client.eval("redis.call('XADD', KEYS[1], '*', 'm', ARGV[1]); "
                              "redis.call('XADD', KEYS[1], '*', 'm', ARGV[1])", 1, key, message)  # fmt: skip
            await wait_for(lambda: cache.get("/claim:b") is None)
            await wait_for(lambda: cache.following)
        finally:
            stop.set()  # ends the loop within a blocked read's time, without cancelling it
            await asyncio.wait_for(task, timeout=5)
            await client.aclose()
        assert not cache.following

    asyncio.run(scenario())


async def wait_for(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@pytest.fixture
def api(env: dict[str, str], engine: Any, tmp_path: Path) -> Iterator[TestClient]:
    yield from system(tmp_path / "index")


VIEW = f"/v1/entities/{QUOTE}/neighborhood"


def names(view: dict[str, Any]) -> set[str]:
    return {n["entity"]["name"] for g in view["neighborhood"] for n in g["neighbors"]}


def kept(api: TestClient) -> dict[str, Any]:
    """The quote's view once the gateway serves it from memory (the similarity consumer's candidates for the
    seeds, announced as they come, drop it meanwhile)."""

    def served_from_memory() -> dict[str, Any] | None:
        before = view_cache.LOOKUPS.labels("hit")._value.get()
        response = api.get(VIEW)
        hit = response.status_code == 200 and view_cache.LOOKUPS.labels("hit")._value.get() == before + 1
        return dict(response.json()) if hit else None

    return dict(eventually(served_from_memory, timeout=15))


def rename_a_neighbour(api: TestClient, view: dict[str, Any]) -> tuple[str, str]:
    neighbour = next(g for g in view["neighborhood"] if g["type"] == "hypothesis")["neighbors"][0]["entity"]
    name = f"{neighbour['name']} (renamed)"
    position = api.post("/v1/entities", json={"id": neighbour["id"], "name": name}).json()["position"]
    assert api.get("/v1/projection", params={"position": position, "wait_ms": 5000}).json()["reached"]
    return name, position


def test_a_kept_view_follows_a_change_to_a_neighbour(api: TestClient) -> None:
    load_seeds(api)
    name, _ = rename_a_neighbour(api, kept(api))
    eventually(lambda: name in names(api.get(VIEW).json()), timeout=5)
    kept(api)  # and is kept again


def test_without_announcements_a_kept_view_would_stay_stale(api: TestClient) -> None:
    """The control for the test above: the view is served from memory, and only the announcement refreshes it."""
    load_seeds(api)
    kept(api)
    api.app.state.wired.graph.announce = None  # type: ignore[attr-defined]
    time.sleep(0.5)  # a batch the projector was announcing has been announced
    name, position = rename_a_neighbour(api, kept(api))
    time.sleep(1.0)
    assert name not in names(api.get(VIEW).json())
    assert name in names(api.get(VIEW, params={"after": position}).json())  # read-your-writes: not from memory
