"""The public API over in-process services (httpx ASGITransport), a real projector thread, real servers."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import orjson
import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text

from gateway.app import create_app
from gateway.settings import GatewaySettings
from platograph.api.access import KeyIn
from platograph.api.graph import NeighborhoodView
from platograph.contracts import ENTRY_FIELD
from services.access.bootstrap import bootstrap as access_bootstrap
from services.access.entrypoints import http as access_http
from services.access.service_layer import keys
from services.graph.adapters.projection_store import Project
from services.graph.bootstrap import bootstrap as graph_bootstrap
from services.graph.entrypoints import http as graph_http
from services.graph.entrypoints import projector
from services.graph.settings import GraphSettings
from services.ingest.bootstrap import bootstrap as ingest_bootstrap
from services.ingest.entrypoints import http as ingest_http
from services.similarity.adapters.embedder import MiniLMOnnx
from services.similarity.bootstrap import bootstrap as similarity_bootstrap
from services.similarity.entrypoints import consumer as similarity_consumer
from services.similarity.entrypoints import http as similarity_http
from services.similarity.settings import SimilaritySettings
from services.webhooks.bootstrap import bootstrap as webhook_bootstrap
from services.webhooks.entrypoints import dispatcher
from services.webhooks.entrypoints import http as webhooks_http
from tests.conftest import SEED_FILE
from tests.helpers import Fault, FaultyGraph

pytestmark = pytest.mark.integration
QUOTE = (
    "quote:neural-networks-trained-with-different-objectives-on-different-data-and-modalities-are-converging-"
    "to-a-shared-statistical-model-of-reality-in-their-representation-spaces"
)


SEED_PAGE_COUNTS = [("Papers", 1), ("Concepts", 1), ("Hypotheses", 5), ("Claims", 3), ("Findings", 2), ("Questions", 1)]


class Down(httpx.AsyncBaseTransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("down", request=request)


EMBEDDER = MiniLMOnnx()  # loaded once for the module's tests


def _webhooks_away(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("the webhooks service does not run in this test", request=request)


def system(
    index_dir: Path,
    similarity: httpx.AsyncBaseTransport | None = None,
    webhooks: bool = False,
    *,
    embedder: Any = EMBEDDER,
    graph_fault: Fault | None = None,
    project: Project | None = None,
) -> Iterator[TestClient]:
    """Every service in-process, with the projector and the similarity consumer on threads (and, with
    `webhooks`, the webhook service and its dispatcher; delivery workers are the test's to start).
    Injected: the similarity service's `embedder`, a `graph_fault` that may answer the similarity and
    webhook services' requests to the graph instead of it, and where the projector writes (`project`).
    The gateway app's state keeps what was wired (`wired`), for a test that swaps a collaborator."""
    graph = graph_bootstrap(GraphSettings(consumer="it-projector", block_ms=50))
    if project is not None:
        graph.project = project
    graph_app = graph_http.create_app(graph)
    graph_client = TestClient(graph_app, base_url="http://graph")  # a sync httpx client over the ASGI app
    reader = graph_client if graph_fault is None else httpx.Client(
        base_url="http://graph", transport=FaultyGraph(graph_client, graph_fault)
    )  # fmt: skip
    sim = similarity_bootstrap(
        SimilaritySettings(index_dir=index_dir, similarity_consumer="it-similarity"), embedder=embedder,
        graph=reader,
    )  # fmt: skip
    stop = threading.Event()
    threads = [threading.Thread(target=projector.run, args=(graph, stop), daemon=True),
               threading.Thread(target=similarity_consumer.run, args=(sim, stop), daemon=True)]  # fmt: skip
    hooks = webhook_bootstrap(graph=reader) if webhooks else None
    if hooks is not None:
        threads.append(threading.Thread(target=dispatcher.run, args=(hooks, stop), daemon=True))
    for thread in threads:
        thread.start()
    ingest = ingest_bootstrap()
    ingest_app: FastAPI = ingest_http.create_app(ingest)
    access = access_bootstrap()
    admin = keys.create(access.engine, KeyIn(name="it-admin", scopes=["admin"])).key
    transports: dict[str, httpx.AsyncBaseTransport] = {
        "ingest": httpx.ASGITransport(app=ingest_app),
        "access": httpx.ASGITransport(app=access_http.create_app(access)),
        "graph": httpx.ASGITransport(app=graph_app),
        "similarity": similarity or httpx.ASGITransport(app=similarity_http.create_app(sim, consume=False)),
    }
    if hooks is not None:
        transports["webhooks"] = httpx.ASGITransport(app=webhooks_http.create_app(hooks, dispatch=False))
    else:  # away, whatever listens on the default port of this machine (a `make chaos`, say)
        transports["webhooks"] = httpx.MockTransport(_webhooks_away)
    try:
        gateway = create_app(GatewaySettings(allowed_hosts=["testserver"]), transports)
        gateway.state.wired = SimpleNamespace(graph=graph, similarity=sim, webhooks=hooks)
        with TestClient(gateway, headers={"Authorization": f"Bearer {admin}"}) as client:
            # The graph and ingest apps run inside this client's event loop (ASGITransport runs no lifespan).
            client.portal.call(graph_app.state.views.open)  # type: ignore[union-attr]
            yield client
            client.portal.call(graph_app.state.views.close)  # type: ignore[union-attr]
            client.portal.call(ingest.log.aclose)  # type: ignore[union-attr]
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
        sim.close()
        graph.close()
        access.close()
        if hooks is not None:
            hooks.close()


@pytest.fixture
def api(env: dict[str, str], engine: Any, tmp_path: Path) -> Iterator[TestClient]:
    yield from system(tmp_path / "index")


def load_seeds(api: TestClient) -> str:
    response = api.post("/v1/import", content=SEED_FILE.read_bytes(),
                       headers={"Idempotency-Key": "seeds", "content-type": "application/x-ndjson"})  # fmt: skip
    assert response.status_code == 202, response.text
    return str(response.json()["position"])


def test_seed_quote_neighborhood_matches_the_seed_page(api: TestClient) -> None:
    position = load_seeds(api)
    response = api.get(f"/v1/entities/{QUOTE}/neighborhood", params={"after": position})
    assert response.status_code == 200, response.text
    view = response.json()
    NeighborhoodView.model_validate(view)  # the SQL-built document has the documented shape
    assert view["entity"]["type"] == "quote" and view["entity"]["status"] == "active"
    assert view["entity"]["description"] == (
        "The paper's central thesis statement, presented prominently after the abstract"
    )
    counts = [(g["label"], g["count"]) for g in view["neighborhood"]]
    assert counts == SEED_PAGE_COUNTS
    paper = view["source_paper"]
    assert (paper["name"], paper["year"]) == ("The Platonic Representation Hypothesis", 2024)
    assert paper["authors"] == ["Minyoung Huh", "Brian Cheung", "Tongzhou Wang", "Phillip Isola"]
    groups = {g["type"]: g for g in view["neighborhood"]}
    assert groups["paper"]["neighbors"][0]["edges"] == ["introduces"]
    assert groups["question"]["neighbors"][0]["edges"] == ["gates"]
    assert {n["entity"]["name"] for n in groups["hypothesis"]["neighbors"]} >= {
        "Multitask Scaling Hypothesis",
        "Capacity Hypothesis",
        "Simplicity Bias Hypothesis",
    }


def test_loading_seeds_twice_changes_nothing(api: TestClient) -> None:
    first = api.get(f"/v1/entities/{QUOTE}", params={"after": load_seeds(api)}).json()
    again = api.post("/v1/import", content=SEED_FILE.read_bytes(),
                     headers={"Idempotency-Key": "seeds", "content-type": "application/x-ndjson"})  # fmt: skip
    assert again.json()["replayed"] is True
    # Even with another key (the stored reply expired, say), the derived event ids differ but content is equal.
    assert api.get(f"/v1/entities/{QUOTE}", params={"after": load_seeds(api)}).json() == first


def test_a_retry_after_the_stored_reply_expired_changes_nothing(
    api: TestClient, engine: Any, redis_client: redis.Redis, stream: str
) -> None:
    body, key = {"id": "concept:once", "name": "Once"}, {"Idempotency-Key": "write-once"}
    first = api.post("/v1/entities", json=body, headers=key).json()
    api.get("/v1/projection", params={"position": first["position"], "wait_ms": 5000})
    entity = api.get("/v1/entities/concept:once").json()
    with engine.connect() as conn:
        journal = conn.execute(text("SELECT count(*) FROM journal")).scalar_one()
    (reply,) = list(redis_client.scan_iter(match=f"{stream}:idem:*write-once"))
    redis_client.delete(reply)  # expired (or lost with Redis)
    again = api.post("/v1/entities", json=body, headers=key).json()
    assert again["replayed"] is False and again["event_ids"] == first["event_ids"]  # appended again, same ids
    api.get("/v1/projection", params={"position": again["position"], "wait_ms": 5000})
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM journal")).scalar_one() == journal  # skipped, not applied
    assert api.get("/v1/entities/concept:once").json() == entity  # version and times unchanged


def test_neighbors_are_ranked_by_edge_count_and_groups_paginate(api: TestClient) -> None:
    entities = [{"id": "concept:hub", "name": "Hub"}] + [{"id": f"claim:c{i}", "name": f"C{i}"} for i in range(5)]
    api.post("/v1/entities", json=entities)
    edges = [{"source": f"claim:c{i}", "target": "concept:hub", "type": "supports"} for i in range(5)]
    edges += [{"source": "claim:c3", "target": "concept:hub", "type": "mentions"}]
    position = api.post("/v1/edges", json=edges).json()["position"]
    view = api.get("/v1/entities/concept:hub/neighborhood", params={"after": position, "limit": 2}).json()
    NeighborhoodView.model_validate(view)
    (claims,) = view["neighborhood"]
    assert claims["count"] == 5
    assert [n["entity"]["id"] for n in claims["neighbors"]] == ["claim:c3", "claim:c0"]
    assert claims["neighbors"][0]["edge_count"] == 2 and claims["neighbors"][0]["edges"] == ["mentions", "supports"]
    page2 = api.get(
        "/v1/entities/concept:hub/neighborhood", params={"group": "claim", "cursor": claims["next_cursor"], "limit": 2}
    ).json()
    assert [n["entity"]["id"] for n in page2["neighborhood"][0]["neighbors"]] == ["claim:c1", "claim:c2"]


def test_dangling_edges_wait_for_their_endpoint(api: TestClient) -> None:
    position = api.post("/v1/edges", json={"source": "paper:later", "target": "quote:q", "type": "introduces"}).json()[
        "position"
    ]
    api.get("/v1/projection", params={"position": position, "wait_ms": 5000})
    assert [e["source"] for e in api.get("/v1/edges", params={"dangling": True}).json()["items"]] == ["paper:later"]
    api.post("/v1/entities", json=[{"id": "paper:later", "name": "Later"}, {"id": "quote:q", "name": "Q"}])
    position = api.post("/v1/entities", json={"id": "concept:x", "name": "X"}).json()["position"]
    view = api.get("/v1/entities/quote:q/neighborhood", params={"after": position}).json()
    assert view["neighborhood"][0]["neighbors"][0]["entity"]["id"] == "paper:later"
    assert api.get("/v1/edges").json()["items"] == []


def test_past_the_gateways_cap_of_waiting_requests_a_wait_is_refused_with_429(api: TestClient) -> None:
    position = api.post("/v1/entities", json={"id": "concept:x", "name": "X"}).json()["position"]
    slots = api.app.state.services.waiting  # type: ignore[attr-defined]
    slots.used = slots.limit  # as if that many requests were parked
    try:
        for path, params in (("/v1/entities/concept:x", {"after": position}),
                             ("/v1/projection", {"position": position, "wait_ms": 1000})):  # fmt: skip
            refused = api.get(path, params=params)
            assert refused.status_code == 429 and refused.headers["retry-after"] == "1", (path, refused.text)
            assert refused.json()["detail"][0]["type"] == "too_many_waiters"
        assert api.get("/v1/entities/concept:x").status_code in (200, 404)  # a read without a wait is not held
    finally:
        slots.used = 0
    assert api.get("/v1/entities/concept:x", params={"after": position}).status_code == 200


def test_list_with_type_filter_search_and_cursor(api: TestClient) -> None:
    load_seeds(api)
    api.get("/v1/projection", params={"position": load_seeds(api), "wait_ms": 5000})
    first = api.get("/v1/entities", params={"type": "hypothesis", "limit": 4}).json()
    second = api.get("/v1/entities", params={"type": "hypothesis", "limit": 4, "cursor": first["next_cursor"]}).json()
    ids = [e["id"] for e in first["items"] + second["items"]]
    assert len(ids) == len(set(ids)) > 4 and all(i.startswith("hypothesis:") for i in ids)
    found = api.get("/v1/entities", params={"q": "superposition"}).json()["items"]
    assert {e["id"] for e in found} >= {"hypothesis:superposition-hypothesis", "paper:toy-models-of-superposition"}
    bad = api.get("/v1/entities", params={"type": "widget"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "type"]


def test_errors_are_4xx_naming_the_field(api: TestClient) -> None:
    missing = api.get("/v1/entities/concept:nope/neighborhood")
    assert missing.status_code == 404 and missing.json()["detail"][0]["loc"] == ["path", "id"]
    bad = api.post("/v1/edges", json={"source": "concept:a", "target": "quote:b", "type": "introduces"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "type"]
    token = api.get("/v1/entities/concept:nope", params={"after": "yesterday"})
    assert token.status_code == 422 and token.json()["detail"][0]["loc"] == ["query", "after"]
    # A well-formed position no write was given can never be reached: refused at once, not waited for.
    started = time.monotonic()
    future = api.get("/v1/entities/concept:nope", params={"after": "99999999999999-0"})
    assert future.status_code == 422 and future.json()["detail"][0]["type"] == "not_issued"
    assert future.json()["detail"][0]["loc"] == ["query", "after"] and time.monotonic() - started < 4
    assert api.get("/v1/entities", params={"cursor": "!!"}).status_code == 422


@pytest.mark.parametrize(
    ("path", "named"),
    [
        ("/v1/entities/%0F%01/neighborhood", "'\\x0f\\x01'"),  # control characters: was an invalid upstream URL, a 500
        ("/v1/entities/concept:x%3Flimit=1", "'concept:x?limit=1'"),  # was the graph's /v1/entities/concept:x
        ("/v1/entities/concept:a%23b", "'concept:a#b'"),
        ("/v1/entities/concept:a%23b/similar", "'concept:a#b'"),  # was a 200 with `indexed: false`
    ],
)
def test_an_id_addresses_itself_upstream_whatever_it_holds(api: TestClient, path: str, named: str) -> None:
    response = api.get(path)
    assert response.status_code == 404, response.text
    (detail,) = response.json()["detail"]
    assert detail["loc"] == ["path", "id"] and named in detail["msg"]


def test_an_id_holding_slashes_reaches_no_other_route(api: TestClient) -> None:
    # Was the graph's /v1/stats. An id cannot hold '/', so no entity route takes it: a plain 404.
    response = api.get("/v1/entities/..%2F..%2Fv1%2Fstats")
    assert response.status_code == 404 and "entities" not in response.text, response.text


def test_text_postgres_cannot_store_is_a_422_not_a_500(api: TestClient) -> None:
    for path in ("/v1/entities/a%00b", "/v1/entities/a%00b/neighborhood", "/entities/a%00b"):
        response = api.get(path)
        assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["path"], path
    response = api.get("/v1/candidates", params={"entity": "a\x00b"})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", "entity"]


def test_dead_letters_are_listed_with_their_reason_and_paged(
    api: TestClient, redis_client: redis.Redis, stream: str
) -> None:
    redis_client.xadd(stream, {"garbage": "1"})
    broken = {"event_id": str(uuid.uuid4()), "type": "entity.upserted", "occurred_at": "2026-11-28T00:00:00Z",
              "producer": "test", "payload": {"id": "concept:x", "type": "concept"}}  # fmt: skip
    redis_client.xadd(stream, {ENTRY_FIELD: orjson.dumps([broken])})
    deadline = time.monotonic() + 30
    while (first := api.get("/v1/dead-letters", params={"limit": 1}).json())["total"] < 2:
        assert time.monotonic() < deadline, first
        time.sleep(0.05)
    (undecodable,) = first["items"]
    assert undecodable["group"] == "graph" and "undecodable entry" in undecodable["reason"]
    assert undecodable["raw"] == {"garbage": "1"} and undecodable["index"] is None
    second = api.get("/v1/dead-letters", params={"limit": 1, "cursor": first["next_cursor"]}).json()
    (contract,) = second["items"]
    assert "breaks its contract" in contract["reason"] and "name" in contract["reason"]
    assert contract["index"] == 0 and contract["raw"]["event_id"] == broken["event_id"]
    last = api.get("/v1/dead-letters", params={"limit": 1, "cursor": contract["id"]}).json()
    assert last["items"] == [] and last["next_cursor"] is None
    bad = api.get("/v1/dead-letters", params={"cursor": "yesterday"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "cursor"]
    assert 'href="/v1/dead-letters"' in api.get("/").text


def test_compare_is_validated_and_documented_at_the_gateway(api: TestClient) -> None:
    pairs = [["Vitamin D promotes bone growth.", "Vitamin D counteracts bone growth."]]
    answer = api.post("/v1/compare", json={"pairs": pairs})
    assert answer.status_code == 200, answer.text
    (item,) = answer.json()["items"]
    assert item["score"] > 0.8 and item["kind"] == "link"  # negated twins: close, but not duplicates
    for body, loc in (({"pairs": []}, ["body", "pairs"]), ({"pairs": [["a"]]}, ["body", "pairs", 0, 1]),
                      ({"pairs": pairs, "extra": 1}, ["body", "extra"])):  # fmt: skip
        refused = api.post("/v1/compare", json=body)
        assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == loc, refused.text
    schema = api.get("/openapi.json").json()
    assert "ComparePairs" in str(schema["paths"]["/v1/compare"]["post"]["requestBody"])


def test_openapi_documents_the_public_routes(api: TestClient) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    assert {"/v1/entities", "/v1/edges", "/v1/import", "/v1/entities/{id}/neighborhood", "/v1/status"} <= set(paths)
    assert {
        "/v1/webhooks",
        "/v1/webhooks/{id}/deliveries",
        "/v1/reembed",
        "/v1/reembed/{job}",
        "/v1/entities/{id}/merge",
        "/v1/entities/{id}/unmerge",
        "/v1/candidates/{a}/{b}/unreject",
    } <= set(paths)
    assert "/entities/{id}" not in paths  # pages are for people, not in the API reference
    assert api.get("/").status_code == 200 and "Platograph" in api.get("/").text
    assert "platograph_http_requests_total" in api.get("/metrics").text


def test_similarity_down_degrades_the_view_not_the_request(env: dict[str, str], engine: Any, tmp_path: Path) -> None:
    for api in system(tmp_path / "index", similarity=Down()):
        position = api.post("/v1/entities", json={"id": "concept:a", "name": "A"}).json()["position"]
        view = api.get("/v1/entities/concept:a/neighborhood", params={"after": position})
        # The default view reads related-by-similarity from the projected candidates: no similarity call.
        assert view.status_code == 200 and view.json()["warnings"] == []
        assert view.json()["related_by_similarity"] == {"threshold": None, "count": 0, "items": []}
        # A threshold below what candidates are proposed at needs a live search, which cannot be had.
        view = api.get("/v1/entities/concept:a/neighborhood", params={"min_score": 0.1})
        assert view.status_code == 200
        assert view.json()["warnings"] == ["similarity service unavailable: related_by_similarity is empty"]


def test_a_hypothesis_view_and_page_carry_its_evidence_meter(
    api: TestClient, redis_client: redis.Redis, stream: str
) -> None:
    from platograph.contracts import CandidateProposed
    from tests.helpers import append

    entities = [{"id": "hypothesis:h", "name": "H"}, {"id": "claim:for", "name": "For"},
                {"id": "finding:seen", "name": "Seen"}, {"id": "claim:against", "name": "Against"},
                {"id": "claim:denied", "name": "Denied"}, {"id": "claim:twin", "name": "Twin"},
                {"id": "concept:c", "name": "C"}]  # fmt: skip
    api.post("/v1/entities", json=entities)
    edges = [{"source": "claim:for", "target": "hypothesis:h", "type": "supports"},
             {"source": "finding:seen", "target": "hypothesis:h", "type": "evidence_for"},
             {"source": "claim:against", "target": "hypothesis:h", "type": "contradicts"},
             {"source": "hypothesis:h", "target": "claim:denied", "type": "contradicts"},
             {"source": "claim:for", "target": "concept:c", "type": "mentions"}]  # fmt: skip
    api.post("/v1/edges", json=edges)
    reversed_twin = CandidateProposed(a="claim:twin", b="hypothesis:h", score=0.97, kind="link", model="m",
                                      reason="negation on one side", suggested_edge="contradicts")  # fmt: skip
    position, _ = append(redis_client, stream, reversed_twin)
    view = api.get("/v1/entities/hypothesis:h/neighborhood", params={"after": position}).json()
    NeighborhoodView.model_validate(view)
    meter = view["evidence"]
    assert meter["supporting"]["count"] == 2
    assert [(i["entity"]["id"], i["edge"], i["via"]) for i in meter["supporting"]["items"]] == [
        ("claim:for", "supports", "edge"), ("finding:seen", "evidence_for", "edge")]  # fmt: skip
    assert meter["contradicting"]["count"] == 3
    assert [(i["entity"]["id"], i["via"]) for i in meter["contradicting"]["items"]] == [
        ("claim:against", "edge"), ("claim:denied", "edge"), ("claim:twin", "candidate")]  # fmt: skip
    assert "evidence" not in api.get("/v1/entities/concept:c/neighborhood").json()  # concepts have none
    page = api.get("/entities/hypothesis:h").text
    assert "Supports it (2)" in page and "Contradicts it (3)" in page and "the wording reverses it" in page
