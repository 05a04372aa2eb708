"""From entity events to candidates and back, through the public API with every service in-process."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import text

from platograph.contracts import CandidateProposed, decode_entry
from tests.helpers import FailingEmbedder, eventually
from tests.helpers import append as append_events
from tests.integration.test_gateway import EMBEDDER, QUOTE, load_seeds, system

pytestmark = pytest.mark.integration
SEED_PAGE_RELATED = {
    "hypothesis:the-platonic-representation-hypothesis",
    "hypothesis:linear-representation-hypothesis",
    "hypothesis:superposition-hypothesis",
    "hypothesis:convergence-extends-to-brain-machine-alignment",
    "claim:primary-empirical-claim-of-the-prh",
    "quote:vision-statement-in-the-conclusion",
    "finding:empirical-evidence-for-the-universality-hypothesis",
    "hypothesis:universality-hypothesis",
}


@pytest.fixture
def api(env: dict[str, str], engine: Any, tmp_path: Path) -> Iterator[TestClient]:
    yield from system(tmp_path / "index")


def reviewer(api: TestClient, name: str) -> dict[str, str]:
    """The Authorization header of a new key with the review scope, held by `name`."""
    made = api.post("/v1/keys", json={"name": name, "scopes": ["review"]})
    assert made.status_code == 201, made.text
    return {"Authorization": f"Bearer {made.json()['key']}"}


def candidates(api: TestClient, **params: Any) -> list[tuple[str, str]]:
    page = api.get("/v1/candidates", params=params | {"limit": 500}).json()
    return [(c["a"]["id"], c["b"]["id"]) for c in page["items"]]


def test_seed_quote_related_list_holds_page_entities_and_no_typed_neighbor(api: TestClient) -> None:
    position = load_seeds(api)
    neighbors = {
        n["entity"]["id"]
        for g in api.get(f"/v1/entities/{QUOTE}/neighborhood", params={"after": position}).json()["neighborhood"]
        for n in g["neighbors"]
    }
    view = eventually(lambda: (v := api.get(f"/v1/entities/{QUOTE}/neighborhood").json())["related_by_similarity"]
                      ["count"] and v)  # fmt: skip
    related = view["related_by_similarity"]
    ids = [i["entity"]["id"] for i in related["items"]]
    assert related["threshold"] == 0.5 and related["count"] == len(ids)
    assert set(ids) & SEED_PAGE_RELATED, ids
    assert not set(ids) & neighbors
    scores = [i["score"] for i in related["items"]]
    assert scores == sorted(scores, reverse=True) and min(scores) >= 0.5
    # The list is the quote's proposed candidates (the view reads them from the graph in one call).
    proposed = api.get("/v1/candidates", params={"entity": QUOTE, "limit": 500}).json()["items"]
    others = [c["b"]["id"] if c["a"]["id"] == QUOTE else c["a"]["id"] for c in proposed]
    assert ids == others[:20] and related["count"] == len(others)
    assert all(i["kind"] in ("link", "duplicate") and i["reason"] for i in related["items"])
    # Below the threshold candidates are proposed at, the view asks for a live search instead.
    lower = api.get(f"/v1/entities/{QUOTE}/neighborhood", params={"min_score": 0.3}).json()["related_by_similarity"]
    assert lower["threshold"] == 0.3 and lower["count"] >= related["count"]
    assert min(i["score"] for i in lower["items"]) >= 0.3 and "kind" not in lower["items"][0]
    wide = api.get(f"/v1/entities/{QUOTE}/similar", params={"min_score": 0.3, "limit": 50}).json()
    assert SEED_PAGE_RELATED <= {i["entity"]["id"] for i in wide["items"]}
    with_linked = api.get(
        f"/v1/entities/{QUOTE}/similar", params={"min_score": 0.0, "limit": 50, "include_linked": True}
    )
    assert neighbors <= {i["entity"]["id"] for i in with_linked.json()["items"]}


def test_entity_event_to_candidate_on_the_stream_to_the_view(
    api: TestClient, redis_client: redis.Redis, stream: str
) -> None:
    api.post("/v1/entities", json=[
        {"id": "hypothesis:lrh", "name": "Linear representation hypothesis",
         "text": "Neural networks represent meaningful concepts as directions in their activation spaces."},
        {"id": "claim:directions", "name": "Concepts are directions",
         "text": "Language models encode concepts as linear directions in activation space."},
    ])  # fmt: skip
    pair = ("claim:directions", "hypothesis:lrh")
    eventually(lambda: pair in candidates(api))
    on_stream = [
        e for _, f in redis_client.xrange(stream) for e in decode_entry(f) if e["type"] == "candidate.proposed"
    ]
    assert any((e["payload"]["a"], e["payload"]["b"]) == pair and e["producer"] == "similarity" for e in on_stream)
    item = api.get("/v1/candidates").json()["items"][0]
    assert item["kind"] == "link" and item["suggested_edge"] == "supports" and "cosine" in item["reason"]
    view = api.get("/v1/entities/hypothesis:lrh/neighborhood").json()
    assert [i["entity"]["id"] for i in view["related_by_similarity"]["items"]] == ["claim:directions"]
    found = api.get("/v1/search", params={"q": "concepts as directions", "limit": 2}).json()["items"]
    assert found[0]["entity"]["id"] in pair
    assert [i["fused"] for i in found] == sorted((i["fused"] for i in found), reverse=True)  # hybrid: the order
    dense = api.get("/v1/search", params={"q": "concepts as directions", "mode": "dense"}).json()["items"]
    assert "fused" not in dense[0] and [i["score"] for i in dense] == sorted((i["score"] for i in dense), reverse=True)
    page = api.get("/").text  # the status page a person looks at lists the candidate
    assert "Concepts are directions ↔ Linear representation hypothesis" in page


def test_a_typed_edge_withdraws_the_candidate(api: TestClient) -> None:
    api.post("/v1/entities", json=[
        {"id": "finding:alignment", "name": "Bigger models share representations",
         "text": "Bigger vision models converge to more similar representations."},
        {"id": "hypothesis:capacity", "name": "Capacity hypothesis",
         "text": "Bigger models are more likely to converge to a shared representation."},
    ])  # fmt: skip
    pair = ("finding:alignment", "hypothesis:capacity")
    eventually(lambda: pair in candidates(api))
    api.post("/v1/edges", json={"source": "finding:alignment", "target": "hypothesis:capacity", "type": "supports"})
    eventually(lambda: pair in candidates(api, status="withdrawn"))
    assert pair not in candidates(api)
    withdrawn = api.get("/v1/candidates", params={"status": "withdrawn"}).json()["items"][0]
    assert withdrawn["status_reason"] == "typed edge added: supports"
    view = api.get("/v1/entities/finding:alignment/neighborhood").json()
    assert view["related_by_similarity"]["items"] == []


def test_a_rejected_pair_is_never_proposed_again(api: TestClient, redis_client: redis.Redis, stream: str) -> None:
    first = [
        {"id": "claim:sleep", "name": "Sleep consolidates memory", "text": "Sleep helps consolidate new memories."},
        {"id": "finding:sleep", "name": "Sleep improves recall", "text": "Participants recalled more after sleep."},
    ]
    api.post("/v1/entities", json=first)
    pair = ("claim:sleep", "finding:sleep")
    eventually(lambda: pair in candidates(api))
    # Who decided is the key's holder: a `by` in the body is only a note.
    ada = reviewer(api, "ada")
    rejected = api.post(f"/v1/candidates/{pair[1]}/{pair[0]}/reject", json={"by": "mallory", "reason": "same study"},
                        headers=ada)  # fmt: skip
    assert rejected.status_code == 202, rejected.text
    eventually(lambda: pair in candidates(api, status="rejected"))
    item = api.get("/v1/candidates", params={"status": "rejected"}).json()["items"][0]
    assert item["decided_by"] == "ada" and item["decided_at"] is not None
    changed = [dict(first[1], text="Participants recalled more words after a night of sleep.")]
    position = api.post("/v1/entities", json=changed).json()["position"]
    api.get("/v1/projection", params={"position": position, "wait_ms": 5000})
    # A third, close entity after an idle spell: the consumer is alive and proposes it, not the rejected pair.
    time.sleep(1.5)
    api.post("/v1/entities", json={"id": "claim:sleep-memory", "name": "Sleep strengthens memory",
                                   "text": "Sleep helps consolidate and strengthen new memories."})  # fmt: skip
    eventually(lambda: any("claim:sleep-memory" in p for p in candidates(api)))
    assert pair not in candidates(api) and pair in candidates(api, status="rejected")
    assert "claim:sleep" not in {
        i["entity"]["id"]
        for i in api.get("/v1/entities/finding:sleep/similar", params={"min_score": 0}).json()["items"]
    }
    # Taking the rejection back lets the pair be proposed (and decided) again.
    unrejected = api.post(f"/v1/candidates/{pair[0]}/{pair[1]}/unreject", json={"by": "ada"})
    assert unrejected.status_code == 202, unrejected.text
    assert api.post(f"/v1/candidates/{pair[0]}/{pair[1]}/unreject", json={}).status_code == 409
    eventually(lambda: pair not in candidates(api, status="rejected"))
    api.post("/v1/entities", json=[dict(first[1], text="Participants recalled more after sleep.")])
    eventually(lambda: pair in candidates(api))
    assert api.post(f"/v1/candidates/{pair[0]}/{pair[1]}/reject", json={}).status_code == 202


def test_retracting_an_entity_withdraws_its_candidates(api: TestClient) -> None:
    api.post("/v1/entities", json=[
        {"id": "claim:coffee", "name": "Coffee improves alertness", "text": "Drinking coffee makes people more alert."},
        {"id": "finding:coffee", "name": "Caffeine raises alertness", "text": "Caffeine intake increased alertness."},
    ])  # fmt: skip
    pair = ("claim:coffee", "finding:coffee")
    eventually(lambda: pair in candidates(api))
    api.post("/v1/entities", json={"id": "finding:coffee", "name": "Caffeine raises alertness",
                                   "text": "Caffeine intake increased alertness.", "status": "retracted"})  # fmt: skip
    eventually(lambda: pair in candidates(api, status="withdrawn"))
    assert pair not in candidates(api)
    found = api.get("/v1/search", params={"q": "caffeine alertness", "limit": 5}).json()["items"]
    assert "finding:coffee" not in {i["entity"]["id"] for i in found}


def test_accepting_a_candidate_makes_the_edge_and_a_second_decision_is_409(api: TestClient) -> None:
    api.post("/v1/entities", json=[
        {"id": "finding:bigger", "name": "Bigger models share representations",
         "text": "Bigger vision models converge to more similar representations."},
        {"id": "hypothesis:capacity", "name": "Capacity hypothesis",
         "text": "Bigger models are more likely to converge to a shared representation."},
    ])  # fmt: skip
    pair = ("finding:bigger", "hypothesis:capacity")
    eventually(lambda: pair in candidates(api))
    url = f"/v1/candidates/{pair[0]}/{pair[1]}"
    forbidden = api.post(f"{url}/accept", json={"edge_type": "introduces"})
    assert forbidden.status_code == 422 and forbidden.json()["detail"][0]["loc"] == ["body", "edge_type"]
    assert "evidence_for" in forbidden.json()["detail"][0]["msg"]  # the message lists what is allowed
    accepted = api.post(f"{url}/accept", json={"edge_type": "evidence_for"}, headers=reviewer(api, "ada"))
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["edge"] == {"source": pair[0], "type": "evidence_for", "target": pair[1]}
    second = api.post(f"{url}/reject", json={}, headers=reviewer(api, "bob"))
    assert second.status_code == 409 and "accepted by ada" in second.json()["detail"][0]["msg"]
    view = api.get(f"/v1/entities/{pair[0]}/neighborhood", params={"after": accepted.json()["position"]}).json()
    assert [n["entity"]["id"] for g in view["neighborhood"] for n in g["neighbors"]] == [pair[1]]
    eventually(lambda: pair in candidates(api, status="accepted"))
    assert api.get(f"/v1/entities/{pair[0]}/neighborhood").json()["related_by_similarity"]["items"] == []
    assert api.post("/v1/candidates/claim:none/claim:nothing/reject", json={}).status_code == 404


def test_concurrent_accept_and_reject_one_wins(api: TestClient, engine: Any) -> None:
    api.post("/v1/entities", json=[
        {"id": "claim:tea", "name": "Tea improves focus", "text": "Drinking green tea improves focus."},
        {"id": "finding:tea", "name": "Green tea raised focus", "text": "Green tea intake improved focus scores."},
    ])  # fmt: skip
    pair = ("claim:tea", "finding:tea")
    eventually(lambda: pair in candidates(api))
    url = f"/v1/candidates/{pair[0]}/{pair[1]}"
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda call: call(), [
            lambda: api.post(f"{url}/accept", json={"edge_type": "supports", "direction": "b_to_a"}),
            lambda: api.post(f"{url}/reject", json={}),
        ]))  # fmt: skip
    assert sorted(r.status_code for r in results) == [202, 409]
    winner, loser = sorted(results, key=lambda r: r.status_code)
    decided = "accepted" if winner is results[0] else "rejected"
    assert f"already {decided}" in loser.json()["detail"][0]["msg"]  # the loser is told what won
    api.get("/v1/projection", params={"position": winner.json()["position"], "wait_ms": 5000})
    with engine.connect() as conn:
        journal = conn.execute(text(
            "SELECT type FROM journal WHERE type IN ('candidate.accepted', 'candidate.rejected') "
            "AND payload->>'a' = :a AND payload->>'b' = :b"), {"a": pair[0], "b": pair[1]}).scalars().all()  # fmt: skip
    assert journal == [f"candidate.{decided}"]  # the winner's decision, once, and never the loser's


def test_candidates_follow_the_model_after_a_crash_in_the_middle_of_a_switch(
    env: dict[str, str], engine: Any, tmp_path: Path, redis_client: redis.Redis, stream: str
) -> None:
    """A switch marks "candidates must follow" before it happens; a similarity service that starts and finds
    the mark (its predecessor died mid-pass) proposes from the model that answers and withdraws the rest."""
    stale = ("concept:platonic-representation", "quote:vision-statement-in-the-conclusion")
    running = contextmanager(system)
    with running(tmp_path / "index") as api:
        load_seeds(api)
        ours = eventually(lambda: api.get("/v1/candidates", params={"limit": 500}).json()["items"])
        model = ours[0]["model"]
        proposed = {(c["a"]["id"], c["b"]["id"]) for c in ours}
        assert stale not in proposed
        left_behind = CandidateProposed(a=stale[0], b=stale[1], score=0.9, kind="link", model="earlier-model-v1",
                                        reason="cosine 0.900")  # fmt: skip
        append_events(redis_client, stream, left_behind)
        eventually(lambda: stale in set(candidates(api)))
    redis_client.set(f"{stream}:reembed:follow", "switch-before-the-crash")
    with running(tmp_path / "index") as api:  # the restart finds the mark
        eventually(lambda: stale not in set(candidates(api)) and not redis_client.exists(f"{stream}:reembed:follow"))
        after = api.get("/v1/candidates", params={"limit": 500}).json()["items"]
        assert {c["model"] for c in after} == {model}
        assert {(c["a"]["id"], c["b"]["id"]) for c in after} == proposed
        withdrawn = api.get("/v1/candidates", params={"status": "withdrawn", "limit": 500}).json()["items"]
        assert stale in {(c["a"]["id"], c["b"]["id"]) for c in withdrawn}


def settled(api: TestClient) -> dict[str, Any]:
    """The similarity consumer and the projector have nothing pending or unread."""
    status = api.get("/v1/status").json()
    sim, graph = status["similarity"] or {}, status["graph"] or {}
    done = sim.get("lag") == 0 and sim.get("pending") == 0 and graph.get("lag") == 0 and graph.get("pending") == 0
    return sim if done else {}


REWIND = "reading the stream again to rebuild it"


def test_a_lost_index_is_rebuilt_by_reading_the_stream_again(
    env: dict[str, str], engine: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The index directory is gone between two runs (a lost disk, a new server): the next start finds it
    empty behind a group that has read everything, reads the stream again, and the index, the answers
    and the candidates come back as they were, with no candidate event journaled twice."""
    running = contextmanager(system)
    with running(tmp_path / "index") as api:
        load_seeds(api)
        eventually(lambda: candidates(api))
        indexed = eventually(lambda: settled(api))["indexed"]
        similar = api.get(f"/v1/entities/{QUOTE}/similar", params={"limit": 8}).json()["items"]
        proposed = set(candidates(api))
        journaled = api.get("/v1/status").json()["graph"]["journal_events"]
    assert REWIND not in caplog.text
    shutil.rmtree(tmp_path / "index")
    with running(tmp_path / "index") as api:
        eventually(lambda: (s := settled(api)) and s["indexed"] == indexed, timeout=60)
        again = api.get(f"/v1/entities/{QUOTE}/similar", params={"limit": 8}).json()["items"]
        assert [i["entity"]["id"] for i in again] == [i["entity"]["id"] for i in similar]
        assert set(candidates(api)) == proposed
        assert api.get("/v1/status").json()["graph"]["journal_events"] == journaled
    assert REWIND in caplog.text


def test_an_index_empty_because_nothing_is_active_is_not_read_again(
    env: dict[str, str], engine: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    running = contextmanager(system)
    with running(tmp_path / "index") as api:
        api.post("/v1/entities", json=[{"id": "concept:gone", "name": "Gone"}]).raise_for_status()
        api.post(
            "/v1/entities", json=[{"id": "concept:gone", "name": "Gone", "status": "retracted"}]
        ).raise_for_status()
        eventually(
            lambda: (
                (s := settled(api))
                and s["indexed"] == 0
                and api.get("/v1/status").json()["graph"]["journal_events"] >= 2
            )
        )
    shutil.rmtree(tmp_path / "index")
    with running(tmp_path / "index") as api:
        eventually(lambda: settled(api))
    assert REWIND not in caplog.text


def test_the_consumer_survives_an_unexpected_error_and_loses_nothing(
    env: dict[str, str], engine: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The graph answers 500 to the consumer once, in the middle of a read (not a transient error): the
    consumer loop starts again, handles the entry it had read, and says in the status that it failed."""

    monkeypatch.setenv("PLATOGRAPH_RESTART_PAUSE_S", "0.1")
    failed = threading.Event()

    def linked_once_broken(request: httpx.Request) -> httpx.Response | None:
        if request.url.path == "/v1/linked" and not failed.is_set():
            failed.set()
            return httpx.Response(500, request=request)
        return None

    with contextmanager(system)(tmp_path / "index", graph_fault=linked_once_broken) as api:
        position = load_seeds(api)
        eventually(lambda: failed.is_set())
        sim = eventually(lambda: settled(api))
        assert sim["consumer"]["failures"] == 1
        assert sim["consumer"]["running"] is True
        assert "HTTPStatusError" in sim["consumer"]["last_error"]
        view = api.get(f"/v1/entities/{QUOTE}/neighborhood", params={"after": position}).json()
        assert {i["entity"]["id"] for i in view["related_by_similarity"]["items"]} & SEED_PAGE_RELATED
        page = api.get("/").text
        assert "consumer errors" in page and "HTTPStatusError" in page


def test_an_entry_the_consumer_fails_on_every_time_is_dead_lettered_and_the_rest_indexed(
    env: dict[str, str], engine: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug that one entity meets every time: after PLATOGRAPH_MAX_DELIVERIES deliveries its entry is set
    aside with the error, and the entities written before and after it are indexed."""

    monkeypatch.setenv("PLATOGRAPH_RESTART_PAUSE_S", "0.05")
    monkeypatch.setenv("PLATOGRAPH_MAX_DELIVERIES", "2")
    embedder = FailingEmbedder(EMBEDDER, lambda texts: any("poison" in t for t in texts))
    with contextmanager(system)(tmp_path / "index", embedder=embedder) as api:
        for name in ("before", "poison", "after"):
            written = api.post("/v1/entities", json=[{"id": f"concept:{name}", "name": f"The {name} concept"}])
            assert written.status_code == 202
        dead = eventually(lambda: api.get("/v1/dead-letters").json()["items"])
        assert [d["group"] for d in dead] == ["similarity"]
        assert "concept:poison" in dead[0]["raw"]["events"]
        assert "delivered 3 times" in dead[0]["reason"] and "RuntimeError: a bug this entity meets" in dead[0]["reason"]
        sim = eventually(lambda: settled(api))
        for name in ("before", "after"):
            assert api.get(f"/v1/entities/concept:{name}/similar").json()["indexed"] is True
        assert sim["consumer"]["failures"] == 2 and sim["pending"] == 0


def test_decisions_and_merges_survive_losing_redis(api: TestClient, redis_client: redis.Redis, stream: str) -> None:
    """Postgres, projected from the journal, is the truth of people's decisions: with Redis emptied, the
    gateway rebuilds its cache from it before anyone decides again."""
    api.post("/v1/entities", json=[
        {"id": "claim:tea", "name": "Tea improves focus", "text": "Drinking green tea improves focus."},
        {"id": "finding:tea", "name": "Green tea raised focus", "text": "Green tea intake improved focus scores."},
        {"id": "claim:coffee", "name": "Coffee improves focus", "text": "Drinking coffee improves focus."},
        {"id": "finding:coffee", "name": "Coffee raised focus", "text": "Coffee intake improved focus scores."},
        {"id": "concept:a", "name": "A"}, {"id": "concept:b", "name": "B"}, {"id": "concept:c", "name": "C"},
    ])  # fmt: skip
    tea, coffee = ("claim:tea", "finding:tea"), ("claim:coffee", "finding:coffee")
    eventually(lambda: {tea, coffee} <= set(candidates(api)))
    assert (
        api.post(
            f"/v1/candidates/{tea[0]}/{tea[1]}/accept", json={"edge_type": "supports", "direction": "b_to_a"}
        ).status_code
        == 202
    )
    assert api.post(f"/v1/candidates/{coffee[0]}/{coffee[1]}/reject", json={}).status_code == 202
    merged = api.post("/v1/entities/concept:a/merge", json={"into": "concept:b"})
    assert merged.status_code == 202, merged.text
    api.get("/v1/projection", params={"position": merged.json()["position"], "wait_ms": 10_000})
    for key in redis_client.scan_iter(match=f"{stream}:*"):  # Redis loses everything of ours (Postgres kept)
        if not key.endswith(b":catch-up:graph") and key != stream.encode():
            redis_client.delete(key)
    again = api.post(f"/v1/candidates/{tea[0]}/{tea[1]}/reject", json={})
    assert again.status_code == 409 and "already accepted" in again.json()["detail"][0]["msg"], again.text
    assert api.post(f"/v1/candidates/{coffee[0]}/{coffee[1]}/reject", json={}).status_code == 409
    chained = api.post("/v1/entities/concept:b/merge", json={"into": "concept:c"})
    assert chained.status_code == 409, chained.text  # B holds A: merges do not chain
    assert api.post("/v1/entities/concept:a/unmerge", json={}).status_code == 202  # A is known to be merged


def test_status_and_the_home_page_show_embedding_and_the_loader_can_follow_it(api: TestClient) -> None:
    from ops import loader

    position = load_seeds(api)
    assert api.get("/v1/projection", params={"position": position, "wait_ms": 10_000}).json()["reached"]
    state = loader.wait_embedded(api, show_progress=False, poll_s=0.1, timeout_s=60)
    assert state.caught_up and state.waiting == 0
    status = api.get("/v1/status").json()
    assert status["embedding"]["done"] == status["similarity"]["indexed"] == status["graph"]["active_entities"]
    assert status["embedding"]["waiting"] == 0 and "per_s" in status["embedding"]
    assert "done, 0 waiting" in api.get("/").text
