"""A page a person can look at: system status and links into the API."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from gateway import assembly
from gateway.authorization import page_scope
from gateway.deps import ServicesDep
from gateway.templating import templates

router = APIRouter(tags=["operations"], dependencies=page_scope("read"))


def _loop_errors(name: str, loop: dict[str, Any] | None) -> dict[str, str]:
    """A row when a background loop has started again after an error (platograph.background), with the last."""
    if not loop or not loop.get("failures"):
        return {}
    now = "running" if loop.get("running") else "paused"
    return {f"{name} errors": f"{loop['failures']}, {now}; last: {loop.get('last_error')}"}


async def _learned(services: Any) -> dict[str, str]:
    """A row per type pair whose threshold people's decisions moved (GET /v1/thresholds)."""
    try:
        response = await services.similarity.get("/v1/thresholds", timeout=2.0)
        pairs = response.json()["type_pairs"] if response.status_code == 200 else []
    except (httpx.HTTPError, ValueError, KeyError):
        return {}
    rows = {}
    for t in pairs:
        if t["source"] == "learned":
            precision = "" if t["precision"] is None else f", precision {t['precision']:.2f}"
            rows[f"threshold {t['type_pair']}"] = (
                f"{t['threshold']:.4f}, learned from {t['decisions']} decisions{precision}"
            )
    return rows


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def home(request: Request, services: ServicesDep) -> HTMLResponse:
    """Status of the system, the best candidates, and the first entities with links to their neighborhoods."""
    state = await assembly.status(services)
    graph = state.get("graph") or {}
    counts = {f"entities: {k}": v for k, v in sorted((graph.get("entities") or {}).items())}
    counts |= {k: graph.get(k) for k in ("edges", "journal_events", "stream_length", "pending", "dead_letters")}
    response = await services.graph.get("/v1/entities", params={"limit": 20}) if graph else None
    entities = response.json()["items"] if response is not None and response.status_code == 200 else []
    similarity = state.get("similarity") or {}
    sim_rows = {k: similarity.get(k) for k in ("model", "indexed", "threshold", "pending", "lag")}
    if progress := state.get("embedding"):
        rate = f", {progress['per_s']:,}/s" if progress["per_s"] else ""
        eta = f", about {progress['eta_s']:,} s left" if progress["eta_s"] else ""
        sim_rows["embedded"] = f"{progress['done']:,} done, {progress['waiting']:,} waiting{rate}{eta}"
    if graph_state := similarity.get("index_graph"):
        built = f"HNSW over {graph_state['points']:,} points" if graph_state["points"] else "scanned (no HNSW yet)"
        since = graph_state.get("since") if graph_state["points"] else 0
        tail = f", {since:,} written since (scanned)" if since else ""
        sim_rows["index"] = built + tail + (", building the next" if graph_state["building"] else "")
    sim_rows |= _loop_errors("consumer", similarity.get("consumer"))
    sim_rows |= await _learned(services) if similarity else {}
    reembed = state.get("reembed") or {}
    job = reembed.get("job")
    if job:
        sim_rows["re-embedding"] = f"{job['model']}: {job['status']} {job['done']}/{job['total']} ({job['rate']}/s)"
    if (reembed.get("alias") or {}).get("previous"):
        sim_rows["kept for rollback"] = reembed["alias"]["previous"]
    found = await services.graph.get("/v1/candidates", params={"limit": 10}) if graph else None
    candidates = found.json()["items"] if found is not None and found.status_code == 200 else []
    hooks = state.get("webhooks") or {}
    hook_rows = {f"endpoints: {k}": v for k, v in sorted((hooks.get("subscriptions") or {}).items())}
    hook_rows |= {f"deliveries: {k}": v for k, v in sorted((hooks.get("deliveries") or {}).items())}
    hook_rows |= {k: hooks.get(k) for k in ("queued_jobs", "scheduled_jobs") if k in hooks}
    hook_rows |= _loop_errors("dispatcher", hooks.get("dispatcher"))
    context = {"services": state["services"], "graph": counts, "similarity": sim_rows, "webhooks": hook_rows,
               "candidates": candidates, "entities": entities}  # fmt: skip
    return templates.TemplateResponse(request, "home.html", context)
