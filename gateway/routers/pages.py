"""Web pages for people: an entity's page (everything the seed page shows, a picture, review controls)
and search. Server-rendered with Jinja2; the only script is the review buttons' (served from /static)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gateway import assembly, picture
from gateway.adapters.upstream import call
from gateway.authorization import page_scope
from gateway.deps import ServicesDep, SettingsDep
from gateway.templating import templates
from platograph import ontology

router = APIRouter(include_in_schema=False, dependencies=page_scope("read"))


def review_options(onto: ontology.Ontology, a: str, b: str) -> list[dict[str, str]]:
    """Edge types the ontology allows between a pair, in either direction, as the accept control offers them."""
    ta, tb = a.partition(":")[0], b.partition(":")[0]
    options = [{"type": t, "direction": "a_to_b", "label": f"{ta} —{t}→ {tb}"} for t in onto.allowed_edge_types(ta, tb)]
    options += [
        {"type": t, "direction": "b_to_a", "label": f"{tb} —{t}→ {ta}"} for t in onto.allowed_edge_types(tb, ta)
    ]
    return options


@router.get("/entities/{id:path}", response_class=HTMLResponse)
async def entity_page(
    id: str, request: Request, services: ServicesDep, settings: SettingsDep, after: str | None = Query(None)
) -> Response:
    # The view and the entity's open candidates (for the review controls) are asked for at once.
    view_call = assembly.neighborhood(services, settings, id, after=after)
    candidates_call = call(services.graph, "graph", "GET", "/v1/candidates",
                           params={"entity": id, "status": "proposed", "limit": 200})  # fmt: skip
    try:
        raw, found = await asyncio.gather(view_call, candidates_call)
    except HTTPException as exc:
        if exc.status_code == 404:
            page = templates.TemplateResponse(request, "search.html", {"q": id, "found": [], "meaning": []})
            page.status_code = 404
            return page
        raise
    if raw.status_code == 301:  # a merged id: its page is the survivor's
        survivor = raw.headers["location"].removeprefix("/v1/entities/").removesuffix("/neighborhood")
        return RedirectResponse(f"/entities/{survivor}", status_code=301, headers=assembly.UNDOABLE)
    view = orjson.loads(raw.body)
    onto = ontology.load(settings.ontology)
    candidates: dict[str, dict[str, Any]] = {}
    for c in found.json()["items"] if found.status_code == 200 else []:
        a, b = c["a"]["id"], c["b"]["id"]
        other = b if a == id else a
        candidates[other] = {"a": a, "b": b, "kind": c["kind"], "suggested_edge": c["suggested_edge"],
                             "options": review_options(onto, a, b)}  # fmt: skip
    context = {
        "view": view, "e": view["entity"], "paper": view["source_paper"], "related": view["related_by_similarity"],
        "candidates": candidates, "picture": picture.neighborhood_svg(view),
    }  # fmt: skip
    return templates.TemplateResponse(request, "entity.html", context)


@router.get("/search", response_class=HTMLResponse)
async def search_page(request: Request, services: ServicesDep, q: str = Query("", max_length=200)) -> Response:
    found: list[dict[str, Any]] = []
    meaning: list[dict[str, Any]] = []
    if q.strip():
        by_text = await call(services.graph, "graph", "GET", "/v1/entities", params={"q": q, "limit": 50})
        found = by_text.json()["items"] if by_text.status_code == 200 else []
        try:
            by_meaning = await call(
                services.similarity, "similarity", "GET", "/v1/search", params={"q": q, "limit": 10}
            )
            meaning = by_meaning.json()["items"] if by_meaning.status_code == 200 else []
        except HTTPException:
            meaning = []  # the similarity service is away: text matches still answer
    return templates.TemplateResponse(request, "search.html", {"q": q, "found": found, "meaning": meaning})
