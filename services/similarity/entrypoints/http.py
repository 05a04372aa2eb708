"""The similarity API. This process owns the vector index; its stream consumer runs here as a thread."""

from __future__ import annotations

import threading
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, HTTPException, Query
from starlette.concurrency import run_in_threadpool

from platograph.api.similarity import ComparePairs
from platograph.background import thread_lifespan
from platograph.body_limit import MIB, BodyLimits
from platograph.dead_letters import Owner, replay_router
from platograph.internal import protect
from platograph.observability import fastapi_telemetry, in_thread, instrument
from platograph.outages import answer_outages
from services.similarity.adapters import graph_reads
from services.similarity.adapters.edge_index import EdgeIndex
from services.similarity.adapters.index import Hit
from services.similarity.bootstrap import Similarity, bootstrap
from services.similarity.domain.models import REGISTRY
from services.similarity.domain.thresholds import pair_key
from services.similarity.entrypoints import consumer, reembed_http
from services.similarity.entrypoints.deps import SimDep
from services.similarity.service_layer import index_builds, learning, queries, reembed, replicas

BATCH_BODY_BYTES = 64 * MIB

router = APIRouter(prefix="/v1", tags=["similarity"])


Mode = Annotated[Literal["dense", "hybrid"], Query(description="Ranking: cosine, or cosine fused with BM25")]
Types = Annotated[list[str] | None, Query(alias="type", description="Only these entity types (repeatable)")]


def _items(hits: list[Hit]) -> list[dict[str, Any]]:
    """Each hit with its cosine (`score`) and, from a hybrid search, the fusion score that orders the list."""
    return [
        {"entity": {"id": h.entity.id, "type": h.entity.type, "status": "active", "name": h.entity.name,
                    "description": h.entity.description},
         "score": round(h.score, 4)} | ({} if h.fused is None else {"fused": round(h.fused, 4)})
        for h in hits
    ]  # fmt: skip


def _check_types(sim: Similarity, types: list[str] | None) -> None:
    unknown = [t for t in types or [] if t not in sim.ontology.entity_types]
    if unknown:
        raise HTTPException(422, detail=[{"loc": ["query", "type"], "msg": f"unknown entity type(s) {unknown}",
                                           "type": "ontology"}])  # fmt: skip


@router.get("/entities/{id:path}/similar")
async def similar(
    id: str,
    sim: SimDep,
    limit: int = Query(20, ge=1, le=200),
    min_score: float | None = Query(None, ge=-1, le=1, description="Default: the configured threshold"),
    types: Types = None,
    include_linked: bool = Query(False, description="Also list entities that already have a typed edge"),
    mode: Mode = "dense",
) -> dict[str, Any]:
    """Entities close to this one, best first (typed neighbors excluded by default). `mode=dense` ranks by
    cosine; `mode=hybrid` fuses cosine with BM25 over the texts (better for finding sources) and orders by
    `fused`, the fusion score each item then carries. `score` is always the cosine and `min_score` applies
    to it. An entity the graph holds but the index does not yet
    answers an empty list with `indexed: false`; an id the graph does not know, a 404."""
    _check_types(sim, types)
    threshold = sim.threshold if min_score is None else min_score
    hits = await run_in_threadpool(
        queries.similar, sim, id, limit=limit, min_score=threshold, types=types, include_linked=include_linked,
        hybrid=mode == "hybrid",
    )  # fmt: skip
    if hits is None and not await run_in_threadpool(graph_reads.known, sim.graph, id):
        raise HTTPException(404, detail=[{"loc": ["path", "id"], "msg": f"no entity {id!r}", "type": "not_found"}])
    items = _items(hits or [])
    return {"threshold": threshold, "count": len(items), "items": items, "model": sim.model.key, "mode": mode,
            "indexed": hits is not None}  # fmt: skip


@router.get("/search")
async def search(
    sim: SimDep,
    q: str = Query(min_length=1, max_length=2000),
    limit: int = Query(20, ge=1, le=200),
    min_score: float | None = Query(None, ge=-1, le=1),
    types: Types = None,
    mode: Mode = "hybrid",
) -> dict[str, Any]:
    """Entities ranked for free text: dense + BM25 fused (`mode=hybrid`, default) or by cosine (`dense`)."""
    _check_types(sim, types)
    hits = await run_in_threadpool(
        queries.search, sim, q, limit=limit, min_score=min_score, types=types, hybrid=mode == "hybrid"
    )
    return {"q": q, "count": len(hits), "items": _items(hits), "model": sim.model.key, "mode": mode}


@router.post("/compare")
async def compare(body: ComparePairs, sim: SimDep) -> dict[str, Any]:
    """Cosine of text pairs, and whether each would be flagged a duplicate (with the evidence)."""
    return {"model": sim.model.key, "duplicate_threshold": sim.settings.duplicate_threshold,
            "items": await run_in_threadpool(queries.compare, sim, body.pairs)}  # fmt: skip


@router.get("/thresholds")
def thresholds(sim: SimDep) -> dict[str, Any]:
    """The thresholds candidates are proposed at: the default and per type pair, the lowest and the highest
    (at or above the highest, the proposed candidates hold every pair a live search would find). `type_pairs`
    says where each type pair's comes from (`configured`, `learned` from people's decisions, or the model's
    `default` while a pair has fewer than `min_decisions`), with the decisions used, their precision and
    recall at the threshold, and since when it holds."""
    per_pair = sim.pair_thresholds()
    every = [sim.threshold, *per_pair.values()]
    records = sim.thresholds.records(sim.model.key)
    configured = {pair_key(*k.split("|", 1)) for k in sim.settings.thresholds}
    pairs = []
    for key in sorted(set(records) | set(per_pair)):
        record = records.get(key, {})
        source = "configured" if key in configured else "learned" if record.get("learned") else "default"
        pairs.append({"type_pair": key, "threshold": per_pair.get(key, sim.threshold), "source": source,
                      "decisions": record.get("decisions", 0), "positives": record.get("positives", 0),
                      "negatives": record.get("negatives", 0), "precision": record.get("precision"),
                      "recall": record.get("recall"), "since": record.get("since")})  # fmt: skip
    settings = sim.settings
    learning_settings = {"enabled": settings.learn_thresholds, "min_decisions": settings.threshold_min_decisions,
                         "target_precision": settings.threshold_target_precision}  # fmt: skip
    return {"model": sim.model.key, "threshold": sim.threshold, "per_type_pair": per_pair,
            "floor": min(every), "ceiling": max(every), "type_pairs": pairs, "learning": learning_settings}  # fmt: skip


@router.get("/stats")
def stats(sim: SimDep) -> dict[str, Any]:
    """How many entities the index holds and how many it gained a second over the last minute of these
    reads (`indexed_per_s`, None until two reads a second apart), the embedded index's HNSW graph
    (`index_graph`: points it was built over, 0 before the first; points written since, which every search
    scans beside it; whether a build runs), for which model, how far behind the stream the consumer is, and
    whether its loop runs (`consumer`: running, failures, last_error)."""
    index = sim.served().index
    with sim.index_lock:
        indexed = index.count()
        graph = ({"points": index.built_points, "since": index.unbuilt_points, "building": index.building}
                 if isinstance(index, EdgeIndex) else None)  # fmt: skip
    loop = {"consumer": sim.loop.report()}
    counts = {"indexed": indexed, "indexed_per_s": sim.progress.observe(indexed), "index_graph": graph}
    return counts | {"model": sim.model.key, "threshold": sim.threshold} | sim.consumer.backlog() | loop


@router.get("/models")
def models(sim: SimDep) -> list[dict[str, Any]]:
    """Registered embedding models: which one answers, which is being built, which is kept for a rollback."""
    with sim.lock:
        active, target, previous = sim.model.name, sim.target, sim.previous
    return [{"name": m.name, "version": m.version, "key": m.key, "dimension": m.dimension, "active": m.name == active,
             "installed": m.installed, "default_threshold": m.default_threshold,
             "building": target is not None and target.model.name == m.name,
             "previous": previous is not None and previous.model.name == m.name}
            for m in REGISTRY.values()]  # fmt: skip


def create_app(sim: Similarity | None = None, consume: bool | None = None) -> FastAPI:
    """The similarity ASGI app; it starts the stream consumer unless told not to."""
    wired = sim or bootstrap()
    run_consumer = wired.settings.consume if consume is None else consume
    reembed.resume(wired)  # an unfinished re-embed keeps its target collection across restarts
    learning.restore(wired)  # learned thresholds a Redis lost, from the journal
    learning.refresh(wired)
    learning.resume(wired)  # candidates passes a crash left unfinished

    def background(stop: threading.Event) -> None:
        # Every replica follows the model state the others change (service_layer/replicas.py).
        follower = threading.Thread(target=replicas.run, args=(wired, stop), name="similarity-replicas", daemon=True)
        follower.start()
        # The embedded index's HNSW, built in a child process when due (service_layer/index_builds.py).
        builder = threading.Thread(target=index_builds.run, args=(wired, stop, wired.settings.index_build_check_s),
                                   name="index-builds", daemon=True)  # fmt: skip
        builder.start()
        if run_consumer:
            consumer.run(wired, stop)
        stop.wait()
        follower.join(5)
        builder.join(5)

    lifespan = thread_lifespan(background, name="similarity-consumer", enabled=True,
                               close=wired.close if sim is None else None)  # fmt: skip
    app = FastAPI(title="Platograph similarity", telemetry=fastapi_telemetry(), lifespan=lifespan)
    app.state.sim = wired
    app.include_router(router)
    app.include_router(reembed_http.router)
    app.include_router(replay_router(Owner(wired.consumer, partial(consumer.replay, wired))))
    app.add_exception_handler(reembed.ReembedError, reembed_http.reembed_error)
    # A re-embed batch carries its entities' texts (up to 50,000 characters each) with their vectors:
    # internal and token-only, so a larger limit than the public one.
    ready = {"redis": in_thread(wired.consumer.client.ping), "index": in_thread(lambda: wired.served().index.count())}
    instrument(app, "similarity", body_limits=BodyLimits(BATCH_BODY_BYTES), readiness=ready)
    protect(app, "similarity")
    answer_outages(app)
    return app
