"""Merging duplicates and undoing it, through the public API with every service in-process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.helpers import count, eventually
from tests.integration.test_gateway import system
from tests.integration.test_similarity_flow import candidates

pytestmark = pytest.mark.integration
KEEP, DUP, OTHER = "quote:keep", "quote:dup", "quote:other"
TEXT = "Neural networks trained on different data converge to a shared model of reality."


@pytest.fixture
def api(env: dict[str, str], engine: Any, tmp_path: Path) -> Iterator[TestClient]:
    for client in system(tmp_path / "index"):
        client.follow_redirects = False
        yield client


def seed(api: TestClient) -> str:
    api.post("/v1/entities", json=[
        {"id": KEEP, "name": "Convergence thesis", "text": TEXT},
        {"id": DUP, "name": "Convergence thesis (again)", "text": TEXT.replace("different data", "varied data")},
        {"id": OTHER, "name": "Unrelated", "text": "Bread rises because yeast makes carbon dioxide."},
        {"id": "concept:prh", "name": "Platonic representation"},
        {"id": "claim:bigger", "name": "Bigger models align more"},
        {"id": "paper:prh", "name": "The Platonic Representation Hypothesis"},
    ])  # fmt: skip
    return str(api.post("/v1/edges", json=[
        {"source": KEEP, "target": "concept:prh", "type": "associated_with"},
        {"source": DUP, "target": "concept:prh", "type": "associated_with"},   # repeats KEEP's: one edge
        {"source": "claim:bigger", "target": DUP, "type": "supports"},        # moves to KEEP
        {"source": DUP, "target": KEEP, "type": "associated_with"},           # would be a self-loop
        {"source": DUP, "target": "paper:prh", "type": "extracted_from"},     # a member's paper: a neighbor
    ]).json()["position"])  # fmt: skip


def view(api: TestClient, entity_id: str, after: str | None = None) -> dict[str, Any]:
    response = api.get(f"/v1/entities/{entity_id}/neighborhood", params={"after": after} if after else {})
    assert response.status_code == 200, response.text
    body = response.json()
    groups = {g["type"]: [(n["entity"]["id"], n["edges"], n["edge_count"]) for n in g["neighbors"]]
              for g in body["neighborhood"]}  # fmt: skip
    return {"entity": body["entity"], "groups": groups}


def test_merge_moves_edges_redirects_and_unmerge_restores_exactly(api: TestClient, engine: Any) -> None:
    position = seed(api)
    before_keep, before_dup = view(api, KEEP, position), view(api, DUP)
    preview = api.post(f"/v1/entities/{DUP}/merge", params={"dry_run": True}, json={"into": KEEP})
    assert preview.status_code == 202, preview.text
    fates = {(e["source"], e["type"], e["target"]): e["fate"] for e in preview.json()["edges"]}
    assert fates == {
        (DUP, "associated_with", "concept:prh"): "dropped: duplicate",
        ("claim:bigger", "supports", DUP): "moved",
        (DUP, "associated_with", KEEP): "dropped: self-loop",
        (DUP, "extracted_from", "paper:prh"): "moved",
    }
    merged = api.post(f"/v1/entities/{DUP}/merge", json={"into": KEEP, "by": "ada"})
    assert merged.status_code == 202, merged.text
    view(api, KEEP, merged.json()["position"])
    assert count(engine, "SELECT count(*) FROM journal WHERE type = 'entity.merged'") == 1  # not 2: the preview
    after = view(api, KEEP, merged.json()["position"])
    assert after["groups"] == {
        "paper": [("paper:prh", ["extracted_from"], 1)],
        "concept": [("concept:prh", ["associated_with"], 1)],
        "claim": [("claim:bigger", ["supports"], 1)],
    }
    moved = api.get(f"/v1/entities/{DUP}")
    assert moved.status_code == 301 and moved.headers["location"] == f"/v1/entities/{KEEP}"
    assert api.get(f"/v1/entities/{DUP}/neighborhood").status_code == 301
    page = api.get(f"/entities/{DUP}")
    assert page.status_code == 301 and page.headers["location"] == f"/entities/{KEEP}"
    assert api.get(f"/v1/entities/{KEEP}", follow_redirects=True).json()["id"] == KEEP
    # Loading the duplicate again (a re-import) does not undo a person's merge.
    again = api.post("/v1/entities", json={"id": DUP, "name": "Convergence thesis (again)", "text": TEXT}).json()
    assert api.get(f"/v1/entities/{DUP}", params={"after": again["position"]}).status_code == 301

    undone = api.post(f"/v1/entities/{DUP}/unmerge", json={"by": "ada"})
    assert undone.status_code == 202 and undone.json()["into"] == KEEP
    assert view(api, KEEP, undone.json()["position"]) == before_keep
    restored = view(api, DUP)
    assert restored["groups"] == before_dup["groups"] and restored["entity"]["status"] == "active"


def test_awkward_merges_are_refused_with_the_reason(api: TestClient) -> None:
    position = seed(api)
    itself = api.post(f"/v1/entities/{KEEP}/merge", params={"after": position}, json={"into": KEEP})
    assert itself.status_code == 422 and itself.json()["detail"][0]["loc"] == ["body", "into"]
    missing = api.post(f"/v1/entities/{DUP}/merge", json={"into": "quote:nope"})
    assert missing.status_code == 404 and missing.json()["detail"][0]["loc"] == ["body", "into"]
    assert api.post(f"/v1/entities/{DUP}/merge", json={"into": KEEP}).status_code == 202
    twice = api.post(f"/v1/entities/{DUP}/merge", json={"into": OTHER})
    assert twice.status_code == 409 and "already merged into quote:keep" in twice.json()["detail"][0]["msg"]
    chain = api.post(f"/v1/entities/{OTHER}/merge", json={"into": DUP})
    assert chain.status_code == 409 and chain.json()["detail"][0]["msg"].endswith("merge into quote:keep")
    members = api.post(f"/v1/entities/{KEEP}/merge", json={"into": OTHER})
    assert members.status_code == 409 and "quote:dup are merged into quote:keep" in members.json()["detail"][0]["msg"]
    not_merged = api.post(f"/v1/entities/{OTHER}/unmerge", json={})
    assert not_merged.status_code == 409 and not_merged.json()["detail"][0]["loc"] == ["path", "id"]


def test_merging_withdraws_the_merged_entitys_candidates(api: TestClient) -> None:
    api.post("/v1/entities", json=[
        {"id": KEEP, "name": "Convergence thesis", "text": TEXT},
        {"id": DUP, "name": "Convergence thesis", "text": TEXT},
    ])  # fmt: skip
    pair = (DUP, KEEP)
    eventually(lambda: pair in candidates(api))
    item = next(c for c in api.get("/v1/candidates", params={"entity": KEEP}).json()["items"]
                if (c["a"]["id"], c["b"]["id"]) == pair)  # fmt: skip
    assert item["kind"] == "duplicate"
    api.post(f"/v1/entities/{DUP}/merge", json={"into": KEEP})
    eventually(lambda: pair in candidates(api, status="withdrawn"))
    withdrawn = api.get("/v1/candidates", params={"status": "withdrawn", "entity": DUP}).json()["items"][0]
    assert withdrawn["status_reason"] == f"{DUP} was merged into {KEEP}"
    related = api.get(f"/v1/entities/{KEEP}/neighborhood").json()["related_by_similarity"]["items"]
    assert DUP not in {i["entity"]["id"] for i in related}
