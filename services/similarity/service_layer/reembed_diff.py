"""A re-embed's candidate diff, sharded by the job's id ranges (the same ranges its batches embedded).

A shard searches the new collection for its entities and stages the pairs the new model would propose in
the graph's Postgres (a pair found from both its sides is one row there); the diff is then counted in SQL
against the candidates users see now. So no process holds a corpus's ids or pairs: a shard holds a page
of entities and their hits. Shards run as RQ jobs the coordinator queues (any replica can take one: the
index is shared or each replica writes the same batches); `compute` runs here whatever shard is left.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import numpy as np

from platograph.graph_api import entity_pages_between
from services.similarity.adapters import graph_reads
from services.similarity.bootstrap import Served, Similarity
from services.similarity.domain.candidates import pair, threshold_for
from services.similarity.service_layer import candidates, replicas

log = logging.getLogger(__name__)
PAGE = 500  # entities a shard reads, searches and stages at a time (the graph's largest page)
STAGE = 10_000  # pairs a request to the graph (its limit: 20,000)


class DiffError(ValueError):
    def __init__(self, status: int, msg: str) -> None:
        super().__init__(msg)
        self.status, self.msg = status, msg


def new_pairs(
    sim: Similarity, served: Served, ids: list[str], blocked: dict[str, set[str]]
) -> list[tuple[str, str, float]]:
    """The pairs `served` proposes for these entities: neighbors above their type pair's threshold (its
    default, per type pair as configured) with no typed edge and no rejection."""
    threshold = served.model.default_threshold
    floor = min([threshold, *sim.settings.thresholds.values()])
    out: dict[tuple[str, str], float] = {}
    for start in range(0, len(ids), candidates.SEARCH_BATCH):
        with sim.index_lock:
            found = [(e, served.index.lookup(e)) for e in ids[start : start + candidates.SEARCH_BATCH]]
            rows = [(e, hit[1]) for e, hit in found if hit is not None]
            if not rows:
                continue
            answers = served.index.search_many(
                np.asarray([vector for _, vector in rows], dtype=np.float32),
                limit=sim.settings.candidates_per_entity,
                min_score=floor,
                exclude=[sorted(blocked.get(e, set()) | {e}) for e, _ in rows],
            )
        for (entity_id, _), hits in zip(rows, answers, strict=True):
            kind = entity_id.partition(":")[0]
            for hit in hits:
                if hit.score >= threshold_for(kind, hit.entity.type, threshold, sim.settings.thresholds):
                    out[pair(entity_id, hit.entity.id)] = round(hit.score, 4)
    return [(a, b, score) for (a, b), score in out.items()]


def stage(sim: Similarity, tag: str, pairs: list[tuple[str, str, float]]) -> None:
    for start in range(0, len(pairs), STAGE):
        response = sim.graph.post(f"/v1/staged-pairs/{tag}", json={"pairs": pairs[start : start + STAGE]})
        response.raise_for_status()


def shard(sim: Similarity, job_id: str, n: int) -> int:
    """Stage what the job's new model proposes for the entities of range `n` (the last range is open: it
    takes entities created since the plan). Redone after a crash, it stages nothing twice. Returns the
    pairs found."""
    job = sim.store.job(job_id)
    if job is None or job["status"] != "running":
        raise DiffError(409, f"re-embed {job_id} is not running")
    if not 0 <= n < job["batches"]:
        raise DiffError(404, f"re-embed {job_id} has no range {n}")
    target = replicas.target_of(sim, job["model"])
    if target is None:
        raise DiffError(409, f"re-embed {job_id} has no open target collection here")
    spec = sim.store.batch(job_id, n)
    last = None if n == job["batches"] - 1 else spec["last"]
    found = 0
    for page in entity_pages_between(sim.graph, spec["after"], last, page_size=PAGE):
        ids = [e["id"] for e in page]
        pairs = new_pairs(sim, target, ids, graph_reads.linked(sim.graph, ids))
        stage(sim, job_id, pairs)
        found += len(pairs)
    sim.store.mark_diffed(job_id, n)
    return found


def compute(sim: Similarity, job_id: str, from_model: str, to_model: str) -> dict[str, Any]:
    """The job's diff: the shards no worker ran are run here, then the graph counts."""
    job = sim.store.job(job_id)
    assert job is not None
    for n in sim.store.pending_diff(job_id, job["batches"]):
        shard(sim, job_id, n)
    response = sim.graph.get(f"/v1/staged-pairs/{job_id}/diff")
    response.raise_for_status()
    counted: dict[str, Any] = response.json()
    return {"from_model": from_model, "to_model": to_model} | counted


def drop(sim: Similarity, job_id: str) -> None:
    """Forget a job's staged pairs (best effort: a leftover is an UNLOGGED table's rows under the job's tag,
    dropped by the next call for the job, or by PostgreSQL's crash recovery)."""
    try:
        sim.graph.delete(f"/v1/staged-pairs/{job_id}").raise_for_status()
    except httpx.HTTPError as exc:  # the job's outcome does not depend on it
        log.warning("staged pairs of re-embed %s not dropped: %s", job_id, exc)
