"""A re-embed's candidate diff and follow-up, sharded by id range: the shards' diff equals the diff worked
out from scratch, whatever order the shards run in and however often, and the follow-up proposes each pair
once and withdraws exactly what the new model does not propose."""

from __future__ import annotations

import dataclasses
import random
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from rq import Queue
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer
from sqlalchemy import Engine, text

from platograph.graph_api import entity_ids
from services.similarity.adapters import graph_reads
from services.similarity.adapters.edge_index import EdgeIndex
from services.similarity.bootstrap import Served, Similarity
from services.similarity.bootstrap import bootstrap as similarity_bootstrap
from services.similarity.domain.candidates import pair, threshold_for
from services.similarity.domain.models import E5_SMALL, MINILM
from services.similarity.entrypoints import reembed_jobs
from services.similarity.service_layer import follow, reembed, reembed_diff
from services.similarity.settings import SimilaritySettings
from tests.helpers import eventually
from tests.integration.test_gateway import EMBEDDER, load_seeds, system

pytestmark = pytest.mark.integration


def settled(api: TestClient) -> bool:
    status = api.get("/v1/status").json()
    sim, graph = status["similarity"] or {}, status["graph"] or {}
    return sim.get("lag") == 0 and sim.get("pending") == 0 and graph.get("lag") == 0 and graph.get("pending") == 0


def open_job(sim: Similarity, tmp_path: Path, ids: list[str], size: int) -> str:
    """A job to E5's collection whose every batch is in: vectors of the entities' names alone (another
    "model", so that pairs are gained and lost). Its plan stops short of the last entities, which the
    last range (open-ended) must take."""
    # E5's threshold (0.88) over this encoder's vectors of names would only lose pairs: a lower one gains some.
    model = dataclasses.replace(E5_SMALL, default_threshold=0.6)
    target = Served(model, EMBEDDER, EdgeIndex(tmp_path / "target", E5_SMALL.key, E5_SMALL.dimension))
    items = [found[0] for e in ids if (found := sim.served().index.lookup(e)) is not None]
    target.index.upsert(items, EMBEDDER.embed([item.name for item in items]))
    sim.target = target
    planned = ids[:-7]
    plan = [{"after": planned[i - 1] if i else "", "last": planned[min(i + size, len(planned)) - 1],
             "count": len(planned[i : i + size])} for i in range(0, len(planned), size)]  # fmt: skip
    job = str(sim.store.create(E5_SMALL.name, MINILM.name, False, plan))
    for n in range(len(plan)):
        sim.store.mark_done(job, n, plan[n]["count"])
    return job


def from_scratch(sim: Similarity, served: Served, ids: list[str]) -> set[tuple[str, str]]:
    """Every entity's top neighbors above its type pair's threshold, by brute force, as the diff counts them."""
    found = {e: hit for e in ids if (hit := served.index.lookup(e)) is not None}
    names = list(found)
    vectors = np.asarray([found[e][1] for e in names], dtype=np.float32)
    blocked = graph_reads.linked(sim.graph, names)
    threshold, k = served.model.default_threshold, sim.settings.candidates_per_entity
    out = set()
    for i, e in enumerate(names):
        scores = vectors @ vectors[i]
        order = [j for j in np.argsort(-scores, kind="stable") if j != i and names[j] not in blocked.get(e, set())]
        for j in order[:k]:
            other = found[names[j]][0]
            if scores[j] >= threshold_for(e.partition(":")[0], other.type, threshold, sim.settings.thresholds):
                out.add(pair(e, names[j]))
    return out


def proposed(api: TestClient) -> dict[tuple[str, str], str]:
    out, cursor = {}, None
    while True:
        page = api.get("/v1/candidates", params={"limit": 500} | ({"cursor": cursor} if cursor else {})).json()
        out |= {(c["a"]["id"], c["b"]["id"]): c["model"] for c in page["items"]}
        if not (cursor := page["next_cursor"]):
            return out


def test_the_sharded_diff_and_follow_up_equal_the_candidates_worked_out_from_scratch(
    env: dict[str, str], engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pages of a few entities: most pairs are found from two pages (as at scale), not within one.
    monkeypatch.setattr(follow, "CHUNK", 4)
    monkeypatch.setattr(reembed_diff, "PAGE", 3)
    with contextmanager(system)(tmp_path / "index") as api:
        load_seeds(api)
        eventually(lambda: settled(api), timeout=60)
        sim: Any = api.app.state.wired.similarity  # type: ignore[attr-defined]
        ids = entity_ids(sim.graph)
        before = set(proposed(api))
        job = open_job(sim, tmp_path, ids, size=max(2, len(ids) // 5))
        batches = sim.store.job(job)["batches"]
        assert batches >= 3

        # Shards in any order, one of them twice (a worker that died after staging): nothing counts twice.
        order = list(range(batches)) + [1]
        random.Random(7).shuffle(order)
        for n in order[:-2]:
            reembed_diff.shard(sim, job, n)
        assert sim.store.pending_diff(job, batches) == sorted(set(range(batches)) - set(order[:-2]))
        with pytest.raises(reembed_diff.DiffError, match="no range"):
            reembed_diff.shard(sim, job, batches)
        reembed.finish(sim, job)  # runs what is left, counts, switches

        after = from_scratch(sim, sim.served(), ids)
        diff = sim.store.job(job)["diff"]
        expected = {"gained": len(after - before), "lost": len(before - after), "rescored": len(after & before)}
        assert {k: diff[k] for k in expected} == expected
        assert all(expected.values()), expected  # the corpus exercises every kind of change
        for kind, group in (("gained", after - before), ("lost", before - after), ("rescored", after & before)):
            assert {(s["a"], s["b"]) for s in diff["sample"][kind]} <= group
        by_type: dict[str, int] = {}
        for a, b in after - before:
            key = "|".join(sorted((a.partition(":")[0], b.partition(":")[0])))
            by_type[key] = by_type.get(key, 0) + 1
        assert {k: v["gained"] for k, v in diff["by_type_pair"].items() if "gained" in v} == by_type
        with engine.connect() as conn:  # the staged pairs went with the diff
            assert conn.execute(text("SELECT count(*) FROM staged_pairs WHERE tag = :t"), {"t": job}).scalar() == 0

        # The follow-up: exactly the new model's pairs stay proposed, each appended once by this pass.
        followed = eventually(lambda: sim.store.job(job)["candidates"], timeout=60)
        eventually(lambda: settled(api), timeout=60)
        now = proposed(api)
        assert set(now) == after and set(now.values()) == {E5_SMALL.key}
        assert followed == {"proposed": len(after), "withdrawn": len(before - after)}
        with engine.connect() as conn:
            journaled = conn.execute(text("""SELECT count(*), count(DISTINCT (payload->>'a', payload->>'b'))
                                               FROM journal WHERE type = 'candidate.proposed'
                                                AND payload->>'model' = :m"""), {"m": E5_SMALL.key}).one()  # fmt: skip
        assert journaled[0] == journaled[1] == len(after)


def test_staged_pairs_are_refused_naming_the_pair_out_of_order(env: dict[str, str], engine: Engine,
                                                               tmp_path: Path) -> None:  # fmt: skip
    with contextmanager(system)(tmp_path / "index") as api:
        sim: Any = api.app.state.wired.similarity  # type: ignore[attr-defined]
        response = sim.graph.post("/v1/staged-pairs/t1", json={"pairs": [["claim:a", "claim:b", 0.9],
                                                                          ["claim:d", "claim:c", 0.8]]})  # fmt: skip
        assert response.status_code == 422 and "pairs[1]" in response.text
        assert sim.graph.post("/v1/staged-pairs/bad tag", json={"pairs": []}).status_code == 422
        response = sim.graph.get("/v1/candidate-pairs", params={"after": "no-bar"})
        assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", "after"]


def test_the_coordinator_queues_a_diff_job_a_range_once_every_batch_is_in(env: dict[str, str], tmp_path: Path) -> None:
    sim = similarity_bootstrap(SimilaritySettings(index_dir=tmp_path), embedder=EMBEDDER,
                               graph=httpx.Client(base_url="http://127.0.0.1:9"))  # fmt: skip
    try:
        plan = [{"after": f"claim:{n}", "last": f"claim:{n + 1}", "count": 1} for n in range(3)]
        job = sim.store.create(E5_SMALL.name, MINILM.name, False, plan)
        settings = reembed_jobs.ReembedSettings()
        queue = Queue(settings.reembed_queue, connection=sim.store.client, serializer=JSONSerializer)
        nowhere = httpx.Client(base_url="http://127.0.0.1:9")
        assert reembed_jobs.tick(settings, sim.store, queue, nowhere) == "running"  # batches first
        assert sorted(queue.job_ids) == [f"reembed-{job}-{n}" for n in range(3)]
        queue.empty()
        for n in range(3):
            sim.store.mark_done(job, n, 1)
        sim.store.mark_diffed(job, 1)
        assert reembed_jobs.tick(settings, sim.store, queue, nowhere) == "diffing"
        assert sorted(queue.job_ids) == [f"reembed-{job}-diff-0", f"reembed-{job}-diff-2"]
        assert reembed_jobs.tick(settings, sim.store, queue, nowhere) == "diffing"  # queued once
        assert len(queue.job_ids) == 2
        assert sim.store.job(job)["diffed_batches"] == 1  # type: ignore[index]
        # A diff job whose retries are spent fails the job, saying which range.
        failed = queue.fetch_job(f"reembed-{job}-diff-2")
        assert failed is not None
        queue.remove(failed)
        FailedJobRegistry(queue=queue).add(failed, ttl=60, exc_string="similarity away")
        asked: list[tuple[str, str]] = []

        def similarity(request: httpx.Request) -> httpx.Response:
            asked.append((request.method, request.url.path))
            return httpx.Response(200, json={"job": job})

        recording = httpx.Client(base_url="http://similarity", transport=httpx.MockTransport(similarity))
        assert reembed_jobs.tick(settings, sim.store, queue, recording) == "failed"
        ended = sim.store.job(job)
        assert ended is not None and "the diff of range 2 failed" in ended["error"]
        assert asked == [("DELETE", f"/v1/reembed/{job}/diff")]  # the ranges staged so far are dropped
    finally:
        queue.empty()
        sim.close()
