"""Views assembled from the services, shared by the API's routers and the pages: waiting for a position,
the neighborhood view, an entity or a candidate fetched from the graph, and the status of the system."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import orjson
from fastapi import HTTPException, Response
from fastapi.responses import RedirectResponse

from gateway.adapters.clients import Services
from gateway.adapters.upstream import call, raise_for_client_error
from gateway.domain.refusals import NotFound
from gateway.settings import GatewaySettings
from platograph.splicing import splice
from platograph.urls import segment

MERGED = b'"merged_into":"'
# A merge can be undone: browsers must not keep its (permanent) redirect for good.
UNDOABLE = {"Cache-Control": "no-store"}
RELATED_LIMIT = 20  # related-by-similarity items in a view
SERVICES = ("ingest", "graph", "similarity", "webhooks")


async def wait_for(services: Services, settings: GatewaySettings, after: str | None) -> None:
    """Block until the projection has reached `after`; 503 with Retry-After if it does not in time."""
    if after is None:
        return
    with services.waiting.slot():
        response = await call(services.graph_waits, "graph", "GET", "/v1/projection",
                              params={"position": after, "wait_ms": settings.read_your_writes_wait_ms})  # fmt: skip
    if response.status_code == 422:  # not a token, or one no write was given: the graph says which
        found = response.json().get("detail") or [{}]
        msg, kind = found[0].get("msg", "not a position token"), found[0].get("type", "value_error")
        raise HTTPException(422, detail=[{"loc": ["query", "after"], "msg": msg, "type": kind}])
    raise_for_client_error(response)
    if not response.json()["reached"]:
        raise HTTPException(
            503,
            headers={"Retry-After": "1"},
            detail=[
                {
                    "loc": ["query", "after"],
                    "msg": "the projection has not reached this position yet",
                    "type": "not_reached",
                }
            ],
        )


async def neighborhood(
    services: Services,
    settings: GatewaySettings,
    entity_id: str,
    *,
    after: str | None = None,
    limit: int = 50,
    group: str | None = None,
    cursor: str | None = None,
    min_score: float | None = None,
) -> Response:
    """The entity, its source paper, typed neighbors by type and related-by-similarity (the candidates
    proposed with it; with a `min_score` below what candidates are proposed at, a live search instead),
    as JSON; a merged entity's view redirects to its survivor."""
    await wait_for(services, settings, after)
    requested = settings.similarity_threshold if min_score is None else min_score
    known = await services.thresholds.get(services.similarity)
    asked: dict[str, str | int | None] = {"limit": limit, "group": group, "cursor": cursor}
    params: dict[str, str | int | float] = {k: v for k, v in asked.items() if v is not None}
    path = f"/v1/entities/{segment(entity_id)}/neighborhood"
    if requested is None or (known is not None and requested >= known.ceiling):
        # One call: the graph reads the candidates it has projected (the view's hot path).
        if requested is None:  # every proposed candidate (each above its pair's threshold), the default reported
            at_least, reported = (known.floor, known.threshold) if known else (None, None)
        else:
            at_least = reported = requested
        related = {"related_limit": RELATED_LIMIT, "related_min_score": at_least, "related_threshold": reported}
        params |= {k: v for k, v in related.items() if v is not None}
        # The query encoded here: httpx merging `params` parses the URL once more.
        url, kept = f"{path}?{query(params)}", services.views
        if after is None and kept.max_bytes:  # with `after`, an announcement may still be on its way
            view = kept.get(url)
            if view is not None:
                return redirect_if_merged(view) or Response(view, media_type="application/json")
        ticket = kept.ticket()
        response = await call(services.graph, "graph", "GET", url)
        raise_for_client_error(response)
        view = splice(response.content, {"warnings": b"[]"})
        if "no-store" not in response.headers.get("cache-control", ""):  # read from a replica: not kept
            kept.keep(ticket, entity_id, url, view)
        return redirect_if_merged(view) or Response(view, media_type="application/json")
    graph_call = call(services.graph, "graph", "GET", path, params=params)
    similar_call = call(services.similarity, "similarity", "GET", f"/v1/entities/{segment(entity_id)}/similar",
                        params={"min_score": requested, "limit": RELATED_LIMIT})  # fmt: skip
    graph_response, similar = await asyncio.gather(graph_call, similar_call, return_exceptions=True)
    if isinstance(graph_response, BaseException):
        raise graph_response
    raise_for_client_error(graph_response)
    redirect = redirect_if_merged(graph_response.content)
    if redirect is not None:
        return redirect
    warnings: list[str] = []
    if isinstance(similar, BaseException) or similar.status_code != 200:
        warnings.append("similarity service unavailable: related_by_similarity is empty")
        related_json = orjson.dumps({"threshold": requested, "count": 0, "items": []})
    else:
        related_json = similar.content
    members = {"related_by_similarity": related_json, "warnings": orjson.dumps(warnings)}
    return Response(splice(graph_response.content, members), media_type="application/json")


def query(params: dict[str, str | int | float]) -> str:
    """A query string (urlencode's generality was ~3.5% of the gateway's time a view in a profile: numbers need no
    quoting)."""
    return "&".join(f"{k}={v if isinstance(v, int | float) else quote(v, safe='')}" for k, v in params.items())


def redirect_if_merged(view: bytes) -> Response | None:
    """A merged entity's view moves to its survivor (parsed only then: this is the hottest read)."""
    if MERGED in view:
        into = orjson.loads(view)["entity"].get("merged_into")
        if into:
            return RedirectResponse(f"/v1/entities/{segment(into)}/neighborhood", status_code=301, headers=UNDOABLE)
    return None


async def entity(services: Services, entity_id: str, loc: list[str]) -> dict[str, Any]:
    """One entity as the graph holds it; NotFound naming `loc`."""
    response = await call(services.graph, "graph", "GET", f"/v1/entities/{segment(entity_id)}")
    if response.status_code == 404:
        raise NotFound(loc, f"no entity {entity_id!r}", "not_found")
    raise_for_client_error(response)
    return dict(response.json())


async def candidate(services: Services, a: str, b: str) -> dict[str, Any]:
    """The candidate of a pair (in order); NotFound when the pair has none."""
    response = await call(services.graph, "graph", "GET", "/v1/candidates/pair", params={"a": a, "b": b})
    if response.status_code == 404:
        raise NotFound(["path", "b"], f"no candidate for {a} and {b}", "not_found")
    raise_for_client_error(response)
    return dict(response.json())


async def status(services: Services) -> dict[str, Any]:
    """Health of every service, each one's statistics, and the re-embed job (None where a service is away)."""
    out: dict[str, Any] = {"services": {}}
    for name in SERVICES:
        client = getattr(services, name)
        try:
            response = await client.get("/healthz")
            out["services"][name] = "ok" if response.status_code == 200 else f"HTTP {response.status_code}"
        except Exception as exc:  # noqa: BLE001 - any failure is reported as that service's state
            out["services"][name] = f"unreachable: {exc.__class__.__name__}"
    places = (("graph", "graph", "/v1/stats"), ("similarity", "similarity", "/v1/stats"),
              ("webhooks", "webhooks", "/v1/stats"), ("reembed", "similarity", "/v1/reembed/current"))  # fmt: skip
    for name, service, path in places:
        try:
            stats = await getattr(services, service).get(path)
            out[name] = stats.json() if stats.status_code == 200 else None
        except Exception:  # noqa: BLE001 - reported above as unreachable
            out[name] = None
    out["embedding"] = embedding(out.get("graph"), out.get("similarity"))
    return out


def embedding(graph: dict[str, Any] | None, similarity: dict[str, Any] | None) -> dict[str, Any] | None:
    """Entities embedded, waiting to be, and the rate: what a person watching a big import wants to know."""
    if not graph or not similarity or "active_entities" not in graph:
        return None
    done, total = int(similarity.get("indexed") or 0), int(graph["active_entities"])
    waiting = max(0, total - done)
    rate = similarity.get("indexed_per_s")
    eta = round(waiting / rate) if rate and waiting else None
    return {"done": done, "waiting": waiting, "per_s": rate, "eta_s": eta}
