"""The graph's read API as the similarity service reads it (httpx, sync)."""

from __future__ import annotations

import httpx

from platograph.contracts import EntityUpserted
from platograph.graph_api import pages
from platograph.urls import segment

#: Ids the graph's /v1/linked takes in one request.
LINKED_BATCH = 5000


def linked(graph: httpx.Client, ids: list[str]) -> dict[str, set[str]]:
    """Ids each entity must not be proposed with: typed neighbors and pairs a person rejected (any number
    of ids: the graph takes 5,000 a request)."""
    out: dict[str, set[str]] = {}
    for start in range(0, len(ids), LINKED_BATCH):
        response = graph.post("/v1/linked", json={"ids": ids[start : start + LINKED_BATCH]})
        response.raise_for_status()
        out |= {k: set(v["edge"]) | set(v["rejected"]) for k, v in response.json().items()}
    return out


def proposed_with(graph: httpx.Client, entity_id: str) -> list[tuple[str, str]]:
    """Pairs currently proposed that involve an entity."""
    params = {"entity": entity_id, "status": "proposed", "limit": 500}
    return [(c["a"]["id"], c["b"]["id"]) for page in pages(graph, "/v1/candidates", params) for c in page]


def known(graph: httpx.Client, entity_id: str) -> bool:
    """Whether the graph holds the entity, in any status. True when the graph cannot say: an entity the
    index lacks is then reported as not indexed yet, not as unknown."""
    try:
        return entity(graph, entity_id) is not None
    except httpx.HTTPError:
        return True


def entity(graph: httpx.Client, entity_id: str) -> EntityUpserted | None:
    """An entity as the graph holds it now, in the shape of its upsert; None when the graph has none."""
    response = graph.get(f"/v1/entities/{segment(entity_id)}")
    if response.status_code == 404:
        return None
    response.raise_for_status()
    e = response.json()
    return EntityUpserted(id=e["id"], type=e["type"], name=e["name"], text=e["text"], description=e["description"],
                          status=e["status"], attributes=e["attributes"])  # fmt: skip
