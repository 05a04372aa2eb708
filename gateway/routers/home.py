"""A page a person can look at: system status and links into the API."""

from __future__ import annotations

from html import escape
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from gateway.deps import ServicesDep
from gateway.routers.reads import status

router = APIRouter(tags=["operations"])

PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Platograph</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem;color:#222}}
table{{border-collapse:collapse}}td,th{{padding:.2rem .8rem;border-bottom:1px solid #ddd;text-align:left}}
.ok{{color:#18794e}}.bad{{color:#b42318}}code{{background:#f4f4f4;padding:0 .2rem}}</style></head><body>
<h1>Platograph</h1><p>Research knowledge graph. API docs: <a href="/docs">/docs</a> ·
metrics: <a href="/metrics">/metrics</a> · JSON status: <a href="/v1/status">/v1/status</a></p>
<h2>Services</h2><table>{services}</table>
<h2>Graph</h2><table>{graph}</table>
<p>Entries the consumer groups set aside, with the reason: <a href="/v1/dead-letters">/v1/dead-letters</a></p>
<h2>Similarity</h2><table>{similarity}</table>
<h2>Webhooks</h2><table>{webhooks}</table>
<h2>Candidates</h2><p>Close in meaning, no typed edge yet (<a href="/v1/candidates">all, as JSON</a>):</p>
<ul>{candidates}</ul>
<h2>Entities</h2><ul>{entities}</ul></body></html>"""


def _rows(items: dict[str, Any]) -> str:
    return "".join(
        f'<tr><th>{escape(str(k))}</th><td class="{"ok" if v == "ok" else ""}">{escape(str(v))}</td></tr>'
        for k, v in items.items()
    )


def _loop_errors(name: str, loop: dict[str, Any] | None) -> dict[str, str]:
    """A row when a background loop has started again after an error (platograph.background), with the last."""
    if not loop or not loop.get("failures"):
        return {}
    now = "running" if loop.get("running") else "paused"
    return {f"{name} errors": f"{loop['failures']}, {now}; last: {loop.get('last_error')}"}


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def home(services: ServicesDep) -> HTMLResponse:
    """Status of the system, the best candidates, and the first entities with links to their neighborhoods."""
    state = await status(services)
    graph = state.get("graph") or {}
    counts = {f"entities: {k}": v for k, v in sorted((graph.get("entities") or {}).items())}
    counts |= {k: graph.get(k) for k in ("edges", "journal_events", "stream_length", "pending", "dead_letters")}
    response = await services.graph.get("/v1/entities", params={"limit": 20}) if graph else None
    items = response.json()["items"] if response is not None and response.status_code == 200 else []
    entities = "".join(
        f'<li><a href="/v1/entities/{escape(e["id"])}/neighborhood">{escape(e["name"])}</a> '
        f"<code>{escape(e['type'])}</code></li>"
        for e in items
    )
    similarity = state.get("similarity") or {}
    sim_rows = {k: similarity.get(k) for k in ("model", "indexed", "threshold", "pending", "lag")}
    sim_rows |= _loop_errors("consumer", similarity.get("consumer"))
    reembed = state.get("reembed") or {}
    job = reembed.get("job")
    if job:
        sim_rows["re-embedding"] = f"{job['model']}: {job['status']} {job['done']}/{job['total']} ({job['rate']}/s)"
    if (reembed.get("alias") or {}).get("previous"):
        sim_rows["kept for rollback"] = reembed["alias"]["previous"]
    found = await services.graph.get("/v1/candidates", params={"limit": 10}) if graph else None
    pairs = found.json()["items"] if found is not None and found.status_code == 200 else []
    candidates = "".join(
        f"<li>{escape(c['a']['name'])} ↔ {escape(c['b']['name'])} <code>{c['score']:.3f}</code> "
        f"<code>{escape(c['kind'])}</code> {escape(c['suggested_edge'] or '')}</li>"
        for c in pairs
    )
    hooks = state.get("webhooks") or {}
    hook_rows = {f"endpoints: {k}": v for k, v in sorted((hooks.get("subscriptions") or {}).items())}
    hook_rows |= {f"deliveries: {k}": v for k, v in sorted((hooks.get("deliveries") or {}).items())}
    hook_rows |= {k: hooks.get(k) for k in ("queued_jobs", "scheduled_jobs") if k in hooks}
    hook_rows |= _loop_errors("dispatcher", hooks.get("dispatcher"))
    return HTMLResponse(
        PAGE.format(
            webhooks=_rows(hook_rows or {"endpoints": "none"}),
            services=_rows(state["services"]),
            graph=_rows(counts),
            similarity=_rows(sim_rows),
            candidates=candidates or "<li>none yet</li>",
            entities=entities or "<li>none yet</li>",
        )
    )
