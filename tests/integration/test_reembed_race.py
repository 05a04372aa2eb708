"""While a re-embed runs, a change the consumer wrote to the new collection wins over a batch that read the
entity earlier; a worker's batch arrives as binary vectors, checked (real Redis; the embedded index; no
graph needed)."""

from __future__ import annotations

import base64
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from rq import Queue

from platograph.contracts import EntityUpserted
from services.graph.bootstrap import bootstrap as graph_bootstrap
from services.graph.entrypoints import http as graph_http
from services.graph.settings import GraphSettings
from services.similarity.adapters.edge_index import EdgeIndex
from services.similarity.adapters.index import Indexed
from services.similarity.bootstrap import Served
from services.similarity.bootstrap import bootstrap as similarity_bootstrap
from services.similarity.domain.models import E5_SMALL, MINILM
from services.similarity.entrypoints import http as similarity_http
from services.similarity.entrypoints import reembed_jobs
from services.similarity.service_layer import indexing, reembed
from services.similarity.settings import SimilaritySettings
from tests.helpers import drain
from tests.integration.test_gateway import EMBEDDER

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_a_batch_read_before_a_change_does_not_overwrite_it(env: dict[str, str], tmp_path: Path) -> None:
    sim = similarity_bootstrap(SimilaritySettings(index_dir=tmp_path), embedder=EMBEDDER,
                               graph=httpx.Client(base_url="http://127.0.0.1:9"))  # fmt: skip
    try:
        # A job towards another collection (run with the same encoder here: the point is the bookkeeping).
        sim.target = Served(E5_SMALL, EMBEDDER, EdgeIndex(tmp_path, E5_SMALL.key, E5_SMALL.dimension))
        job = sim.store.create(E5_SMALL.name, MINILM.name, False, [{"after": "", "last": "claim:x", "count": 1}])
        old = Indexed(id="claim:x", type="claim", name="X", text="The old text.")
        new = EntityUpserted(id="claim:x", type="claim", name="X", text="The new text, written meanwhile.")
        indexing.index_entities(sim, [new])  # the consumer: both collections get the change
        assert reembed.accept_batch(sim, job, 0, [old], EMBEDDER.embed([old.text]))  # counted once…
        found = sim.target.index.lookup("claim:x")
        assert found is not None and found[0].text == E5_SMALL.text_of(new.model_dump())  # …but not written
        assert not reembed.accept_batch(sim, job, 0, [old], EMBEDDER.embed([old.text]))  # redone: not recounted
        assert sim.store.job(job)["done"] == 1  # type: ignore[index]
    finally:
        sim.close()


def test_a_batch_travels_as_binary_vectors_and_bad_ones_are_refused_naming_the_field(
    env: dict[str, str], tmp_path: Path
) -> None:
    sim = similarity_bootstrap(SimilaritySettings(index_dir=tmp_path), embedder=EMBEDDER,
                               graph=httpx.Client(base_url="http://127.0.0.1:9"))  # fmt: skip
    try:
        # The app first: made with a job running, it would open that job's collection itself.
        api = TestClient(similarity_http.create_app(sim, consume=False))
        sim.target = Served(E5_SMALL, EMBEDDER, EdgeIndex(tmp_path, E5_SMALL.key, E5_SMALL.dimension))
        spec = [{"after": "", "last": "claim:y", "count": 2}]
        job = sim.store.create(E5_SMALL.name, MINILM.name, False, spec)
        items = [{"id": f"claim:{c}", "type": "claim", "name": c.upper(), "text": f"Text {c}."} for c in "xy"]
        vectors = EMBEDDER.embed([i["text"] for i in items]).astype("<f4")

        def encoded(rows: np.ndarray) -> str:
            return base64.b64encode(rows.tobytes()).decode()

        refused = {
            "not base64": "%%%",
            "bytes do not make": encoded(vectors)[:-8],
            "rows of 192 values": encoded(vectors[:, :192].copy()),
            "finite": encoded(np.full_like(vectors, np.nan)),
            "only ASCII": "\n\u0081v",  # found by tests/e2e/test_api_fuzz.py: was a 500
        }
        for message, body in refused.items():
            answer = api.post(f"/v1/reembed/{job}/batches/0", json={"items": items, "vectors": body})
            assert answer.status_code == 422, message
            (detail,) = answer.json()["detail"]
            assert detail["loc"] == ["body", "vectors"] and message in detail["msg"]
        untyped = api.post(f"/v1/reembed/{job}/batches/0", json={"items": [{"name": "X"}], "vectors": ""})
        assert untyped.status_code == 422 and untyped.json()["detail"][0]["loc"] == ["body", "items", 0, "id"]
        assert sim.store.job(job)["done"] == 0  # type: ignore[index]
        answer = api.post(f"/v1/reembed/{job}/batches/0", json={"items": items, "vectors": encoded(vectors)})
        assert answer.status_code == 200 and answer.json() == {"counted": True}
        stored = sim.target.index.lookup("claim:y")
        assert stored is not None
        # The embedded shard stores Turbo8: the same direction up to quantization, not the same floats.
        got = np.array(stored[1])
        assert float(got @ vectors[1] / (np.linalg.norm(got) * np.linalg.norm(vectors[1]))) > 0.9999
        assert sim.store.job(job)["done"] == 2  # type: ignore[index]
    finally:
        sim.close()


def open_job(sim: Any, tmp_path: Path, batches: int) -> str:
    sim.target = Served(E5_SMALL, EMBEDDER, EdgeIndex(tmp_path, E5_SMALL.key, E5_SMALL.dimension))
    plan = [{"after": f"claim:{n}", "last": f"claim:{n + 1}", "count": 1} for n in range(batches)]
    return str(sim.store.create(E5_SMALL.name, MINILM.name, False, plan))


def test_a_job_never_switches_to_an_incomplete_collection(env: dict[str, str], tmp_path: Path) -> None:
    sim = similarity_bootstrap(SimilaritySettings(index_dir=tmp_path), embedder=EMBEDDER,
                               graph=httpx.Client(base_url="http://127.0.0.1:9"))  # fmt: skip
    try:
        job = open_job(sim, tmp_path, batches=3)
        item = Indexed(id="claim:1", type="claim", name="One", text="One.")
        assert reembed.accept_batch(sim, job, 0, [item], EMBEDDER.embed([item.text]))
        with pytest.raises(reembed.ReembedError, match="1 of 3 batches done and 0 failed"):
            reembed.finish(sim, job)
        sim.store.mark_failed(job, 1, "worker died three times")
        assert reembed.accept_batch(sim, job, 2, [], EMBEDDER.embed(["x"])[:0])
        with pytest.raises(reembed.ReembedError, match="2 of 3 batches done and 1 failed"):
            reembed.finish(sim, job)
        assert sim.store.alias().get("active") != E5_SMALL.name  # nothing switched
        # The coordinator: nothing left to run and a batch failed for good, so the job fails, with the count.
        settings = reembed_jobs.ReembedSettings()
        queue = Queue(settings.reembed_queue, connection=sim.store.client)
        assert reembed_jobs.tick(settings, sim.store, queue, httpx.Client(base_url="http://127.0.0.1:9")) == "failed"
        ended = sim.store.job(job)
        assert ended is not None and ended["status"] == "failed" and "1 of 3 batches failed" in ended["error"]
        assert sim.store.current() is None
    finally:
        sim.close()


def test_a_restart_after_the_switch_and_before_the_job_was_marked_done_completes_it(
    env: dict[str, str], tmp_path: Path
) -> None:
    sim = similarity_bootstrap(SimilaritySettings(index_dir=tmp_path), embedder=EMBEDDER,
                               graph=httpx.Client(base_url="http://127.0.0.1:9"))  # fmt: skip
    try:
        job = open_job(sim, tmp_path, batches=1)
        # As flip leaves it when killed between setting the alias and marking the job done.
        sim.store.set_alias(E5_SMALL.name, MINILM.name)
        sim.target = None
        reembed.resume(sim)  # the restarted process
        ended = sim.store.job(job)
        assert ended is not None and ended["status"] == "done" and sim.store.current() is None
        assert sim.target is None  # the active collection is not reopened as a target to build again
        assert sim.store.alias() == {"active": E5_SMALL.name, "previous": MINILM.name}  # the rollback stays
    finally:
        sim.close()


def test_a_service_that_lost_its_alias_takes_the_model_back_from_the_journal(
    env: dict[str, str], engine: Any, tmp_path: Path, redis_client: Any, stream: str
) -> None:
    """A switch is recorded in the journal (model.switched); with Redis emptied, the similarity service
    starts with the model the journal names, not the configured one, and puts the alias back."""
    graph = graph_bootstrap(GraphSettings(consumer="it-projector", block_ms=50))
    graph_api = TestClient(graph_http.create_app(graph), base_url="http://graph")
    sim = similarity_bootstrap(SimilaritySettings(index_dir=tmp_path), embedder=EMBEDDER, graph=graph_api)
    try:
        assert sim.model.name == MINILM.name  # configured, and no switch yet: the graph answers 404
        reembed.set_alias(sim, E5_SMALL.name, MINILM.name, "re-embed test")
        graph.consumer.ensure_group()
        drain(graph.consumer, engine)  # the projector journals the event
        redis_client.delete(f"{stream}:similarity:alias")  # Redis lost it
        again = similarity_bootstrap(SimilaritySettings(index_dir=tmp_path), embedder=EMBEDDER, graph=graph_api)
        try:
            assert again.model.name == E5_SMALL.name
            assert again.store.alias() == {"active": E5_SMALL.name, "previous": MINILM.name}  # put back
        finally:
            again.close()
    finally:
        sim.close()
        graph.close()


def test_re_embed_records_survive_losing_redis_and_an_interrupted_job_ends_failed(
    env: dict[str, str], engine: Any, tmp_path: Path, redis_client: Any, stream: str
) -> None:
    """Each change of a job's status is journaled (reembed.changed); with Redis emptied, the similarity
    service puts the records back, and a job that was running ends failed, saying why, instead of being
    forgotten or left looking as if it ran."""
    graph = graph_bootstrap(GraphSettings(consumer="it-projector", block_ms=50))
    graph_api = TestClient(graph_http.create_app(graph), base_url="http://graph")
    sim = similarity_bootstrap(SimilaritySettings(index_dir=tmp_path), embedder=EMBEDDER, graph=graph_api)
    try:
        plan = [{"after": "", "last": "claim:x", "count": 1}]
        finished = sim.store.create(E5_SMALL.name, MINILM.name, False, plan, started_by="ops")
        sim.store.mark_done(finished, 0, 1)
        sim.store.finish(finished, "done")
        running = sim.store.create(E5_SMALL.name, MINILM.name, True, plan + plan, started_by="ops")
        graph.consumer.ensure_group()
        drain(graph.consumer, engine)  # the projector journals the events
        records = {j["id"]: j for j in graph_api.get("/v1/reembed-jobs").json()["items"]}
        assert (records[finished]["status"], records[finished]["done"]) == ("done", 1)
        assert (records[running]["status"], records[running]["batches"], records[running]["review"]) == (
            "running", 2, True)  # fmt: skip
        assert reembed.restore(sim) == 0  # Redis has them: nothing to do

        for key in redis_client.scan_iter(f"{stream}:reembed*"):  # Redis lost them (the stream was projected)
            redis_client.delete(key)
        assert sim.store.job(finished) is None and sim.store.current() is None
        assert reembed.restore(sim) == 2
        done, interrupted = sim.store.job(finished), sim.store.job(running)
        assert done is not None and (done["status"], done["done"], done["started_by"]) == ("done", 1, "ops")
        assert interrupted is not None and interrupted["status"] == "failed" and "lost" in interrupted["error"]
        assert sim.store.current() is None  # a new job may start
        assert reembed.restore(sim) == 0  # once
        drain(graph.consumer, engine)
        records = {j["id"]: j for j in graph_api.get("/v1/reembed-jobs").json()["items"]}
        assert records[running]["status"] == "failed" and "lost" in records[running]["error"]  # journaled too
    finally:
        sim.close()
        graph.close()


@pytest.mark.parametrize("step", ["before-alias", "before-finish", "before-follow"])
def test_a_kill_9_at_each_step_of_the_switch_leaves_a_state_a_restart_completes(
    env: dict[str, str], engine: Any, tmp_path: Path, step: str
) -> None:
    """A real SIGKILL of the process switching (tests/crash_switch.py), at each step: the restarted service
    ends with the job done, the new model answering, the old one kept for a rollback, and the candidates
    followed; killed before the alias, the job is still running, and finishing it again completes it."""
    child = subprocess.run([sys.executable, "-m", "tests.crash_switch", step, str(tmp_path)], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert child.returncode == -signal.SIGKILL, child.stdout + child.stderr
    job = child.stdout.split()[0]
    graph = graph_bootstrap(GraphSettings(consumer="it-projector", block_ms=50))
    graph_api = TestClient(graph_http.create_app(graph), base_url="http://graph")
    sim = similarity_bootstrap(SimilaritySettings(index_dir=tmp_path), embedder=EMBEDDER, graph=graph_api)
    try:
        reembed.resume(sim)  # what the restarted process does first
        if step == "before-alias":
            running = sim.store.job(job)
            assert running is not None and running["status"] == "running" and sim.model.name == MINILM.name
            assert sim.target is not None and sim.target.model.name == E5_SMALL.name  # still building it
            reembed.flip(sim, job)  # the coordinator asks to finish again
        ended = sim.store.job(job)
        assert ended is not None and ended["status"] == "done" and sim.store.current() is None
        assert sim.model.name == E5_SMALL.name and sim.target is None
        assert sim.store.alias() == {"active": E5_SMALL.name, "previous": MINILM.name}
        found = sim.served().index.lookup("claim:1")  # the collection that answers is the one built
        assert found is not None and found[0].text == "One entity, re-embedded."
        deadline = time.monotonic() + 30
        while sim.store.candidates_to_follow() and time.monotonic() < deadline:
            time.sleep(0.1)  # the candidates follow the switch (a pass the crash interrupted is redone)
        assert sim.store.candidates_to_follow() is None
    finally:
        for thread in threading.enumerate():  # a follow pass still talking to the graph finishes first
            if thread.name == "candidates-follow":
                thread.join(30)
        sim.close()
        graph.close()
