"""Webhooks end to end: the public API, the dispatcher on the event log, real RQ worker processes and a
real receiver on 127.0.0.1; signatures are checked with the official `standardwebhooks` package."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from rq import Queue
from rq.job import Job
from rq.registry import ScheduledJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer
from sqlalchemy import Engine, text
from standardwebhooks import Webhook

from platograph.contracts import CandidateProposed, encode_entry, new_envelope
from services.graph.bootstrap import bootstrap as graph_bootstrap
from services.graph.entrypoints import http as graph_http
from services.similarity.domain.candidates import PRODUCER as SIMILARITY
from services.webhooks.bootstrap import bootstrap
from services.webhooks.entrypoints import dispatcher
from services.webhooks.service_layer import queueing
from tests.helpers import FailingQueue, FaultyGraph, eventually
from tests.integration.test_gateway import system
from tests.receiver import Received, receiver

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
PAIR = ("claim:directions", "hypothesis:lrh")


@dataclass
class Hooks:
    api: TestClient
    env: dict[str, str]
    redis: redis.Redis
    stream: str
    engine: Engine
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        argv = [sys.executable, "-m", "ops.cli", *args]
        process = subprocess.Popen(argv, env=os.environ | self.env, cwd=ROOT, stdin=subprocess.DEVNULL)
        self.processes.append(process)
        return process

    def start_worker(self) -> subprocess.Popen[bytes]:
        queue = self.env["PLATOGRAPH_WEBHOOK_QUEUE"]
        return self.start("worker", "--queue", queue, "--simple", "--maintenance-s", "1")

    def register(self, url: str, **fields: Any) -> dict[str, Any]:
        response = self.api.post("/v1/webhooks", json={"url": url} | fields)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def entities(self) -> None:
        position = self.api.post("/v1/entities", json=[
            {"id": PAIR[1], "name": "Linear representation hypothesis",
             "text": "Neural networks represent meaningful concepts as directions in their activation spaces."},
            {"id": PAIR[0], "name": "Concepts are directions",
             "text": "Language models encode concepts as linear directions in activation space."},
        ]).json()["position"]  # fmt: skip
        self.api.get("/v1/projection", params={"position": position, "wait_ms": 10_000})

    def propose(self, a: str = PAIR[0], b: str = PAIR[1], score: float = 0.8) -> uuid.UUID:
        """A candidate.proposed event as the similarity service appends it."""
        envelope = new_envelope(
            CandidateProposed(a=a, b=b, score=score, kind="link", model="test"), producer=SIMILARITY
        )
        self.redis.xadd(self.stream, encode_entry([envelope]))  # type: ignore[arg-type]
        return envelope.event_id

    def deliveries(self, subscription: str, **params: Any) -> list[dict[str, Any]]:
        return list(self.api.get(f"/v1/webhooks/{subscription}/deliveries", params=params).json()["items"])

    def settled(self, subscription: str) -> bool:
        """The positive signal that nothing more will be sent: every delivery in its final state, and no
        delivery job queued, scheduled or running. (A wake job may still be scheduled: one covers a probe
        whose holder might die, due when the probe expires; with nothing parked it sends nothing.)"""
        queue = Queue(self.env["PLATOGRAPH_WEBHOOK_QUEUE"], connection=self.redis)
        scheduled = Job.fetch_many(ScheduledJobRegistry(queue=queue).get_job_ids(), connection=self.redis,
                                   serializer=JSONSerializer)  # fmt: skip
        waiting = [job for job in scheduled if job is not None and job.func_name != queueing.WAKE]
        idle = queue.count == 0 and not waiting and not StartedJobRegistry(queue=queue).count
        final = all(d["status"] in ("delivered", "failed") for d in self.deliveries(subscription))
        return idle and final


@pytest.fixture
def hooks(
    env: dict[str, str], engine: Engine, redis_client: redis.Redis, stream: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Hooks]:  # fmt: skip
    extra = {
        "PLATOGRAPH_WEBHOOK_KEY": Fernet.generate_key().decode(),
        "PLATOGRAPH_WEBHOOK_ALLOWLIST": "127.0.0.0/8",
        "PLATOGRAPH_WEBHOOK_RETRY_SCHEDULE": "0.2,0.2,0.2",
        "PLATOGRAPH_WEBHOOK_BREAKER_FIRST_S": "0.2",  # the breaker's pauses as short as the retries'
        "PLATOGRAPH_WEBHOOK_BREAKER_LONGEST_S": "0.4",
        "PLATOGRAPH_WEBHOOK_JITTER": "0",
        "PLATOGRAPH_WEBHOOK_TIMEOUT_S": "3",
        "PLATOGRAPH_WEBHOOK_ENDPOINT_CONCURRENCY": "1",
        "PLATOGRAPH_WEBHOOK_QUEUE": f"test-webhooks-{uuid.uuid4().hex[:8]}",
        "PLATOGRAPH_RESTART_PAUSE_S": "0.2",
    }
    for key, value in extra.items():
        monkeypatch.setenv(key, value)
    with contextmanager(system)(tmp_path / "index", webhooks=True) as api:
        h = Hooks(api, env | extra, redis_client, stream, engine)
        h.start("scheduler", "--queue", extra["PLATOGRAPH_WEBHOOK_QUEUE"])
        h.start_worker()
        h.start_worker()
        try:
            yield h
        finally:
            for process in h.processes:
                process.terminate()
            for process in h.processes:
                process.wait(10)


def verify(secret: str, request: Received) -> dict[str, Any]:
    return dict(Webhook(secret).verify(request.body, request.headers))


def test_a_candidate_made_through_the_public_api_arrives_signed(hooks: Hooks) -> None:
    with receiver() as endpoint:
        created = hooks.register(endpoint.url, description="integration test")
        assert created["secret"].startswith("whsec_") and created["event_types"] == ["candidate.proposed"]
        hooks.entities()  # the similarity service proposes the pair by itself (maybe twice: once per side)
        request = endpoint.wait(1)[0]
        message = verify(created["secret"], request)
        assert message["type"] == "candidate.proposed"
        data = message["data"]
        assert (data["a"], data["b"]) == (
            {"id": PAIR[0], "type": "claim", "name": "Concepts are directions"},
            {"id": PAIR[1], "type": "hypothesis", "name": "Linear representation hypothesis"},
        )
        assert 0.5 < data["score"] <= 1 and data["kind"] == "link"
        (delivery,) = eventually(lambda: [d for d in hooks.deliveries(created["id"], status="delivered")
                                          if d["event_id"] == request.headers["webhook-id"]])  # fmt: skip
        assert [a["status_code"] for a in delivery["attempt_log"]] == [200]
        assert delivery["attempt_log"][0]["response"] == "ok"
    shown = hooks.api.get(f"/v1/webhooks/{created['id']}").json()
    assert "secret" not in shown and shown["deliveries"]["delivered"] >= 1


def test_failures_are_retried_until_exactly_one_delivery_is_accepted(hooks: Hooks) -> None:
    with receiver(lambda n: (500, 0.0) if n <= 2 else (200, 0.0)) as endpoint:
        created = hooks.register(endpoint.url)
        events = [hooks.propose(), hooks.propose("claim:directions", "hypothesis:lrh", 0.9)]
        endpoint.wait(2, accepted=True)
        eventually(lambda: hooks.settled(created["id"]))  # anything more would have been sent by now
        accepted = [r.headers["webhook-id"] for r in endpoint.accepted()]
        assert sorted(accepted) == sorted(str(e) for e in events)
        assert len(endpoint.requests) == 4  # two failures, then one success per event
        logs = {d["event_id"]: d for d in hooks.deliveries(created["id"])}
        attempts = sorted(len(d["attempt_log"]) for d in logs.values())
        assert attempts == [1, 3] or attempts == [2, 2]
        assert all(d["status"] == "delivered" for d in logs.values())


def test_retries_give_up_and_the_failed_delivery_can_be_retried_and_replayed(hooks: Hooks) -> None:
    answers = {"status": 503}
    with receiver(lambda n: (answers["status"], 0.0)) as endpoint:
        created = hooks.register(endpoint.url)
        hooks.propose()
        (failed,) = eventually(lambda: hooks.deliveries(created["id"], status="failed"))
        assert len(failed["attempt_log"]) == 4  # the first try and three retries
        assert failed["status_reason"] == "gave up after 4 attempts (last: HTTP 503)"
        answers["status"] = 200
        retried = hooks.api.post(f"/v1/webhooks/{created['id']}/deliveries/{failed['id']}/retry")
        assert retried.status_code == 202
        eventually(lambda: hooks.deliveries(created["id"], status="delivered"))
        replay = hooks.api.post(f"/v1/webhooks/{created['id']}/replay", json={"since": "2000-01-01T00:00:00Z"})
        assert replay.json()["requeued"] == 1
        endpoint.wait(2, accepted=True)
        assert {r.headers["webhook-id"] for r in endpoint.accepted()} == {failed["event_id"]}


def test_410_disables_the_endpoint(hooks: Hooks) -> None:
    with receiver(lambda n: (410, 0.0)) as endpoint:
        created = hooks.register(endpoint.url)
        hooks.propose()
        endpoint.wait(1)
        shown = eventually(lambda: (s := hooks.api.get(f"/v1/webhooks/{created['id']}").json())["state"] == "disabled"
                           and s)  # fmt: skip
        assert "410" in shown["state_reason"]
        hooks.propose(score=0.7)
        time.sleep(1.0)
        assert len(endpoint.requests) == 1
        resumed = hooks.api.post(f"/v1/webhooks/{created['id']}/resume").json()
        assert resumed["state"] == "active"


def test_a_worker_killed_mid_delivery_does_not_lose_the_message(hooks: Hooks) -> None:
    for worker in hooks.processes[2:]:
        worker.terminate()
        worker.wait()
    # The first request hangs until after its worker is dead; the retry is answered.
    with receiver(lambda n: (503, 5.0) if n == 1 else (200, 0.0)) as endpoint:
        created = hooks.register(endpoint.url, event_types=["candidate.proposed"])
        event = hooks.propose()
        endpoint.wait(1)
        hooks.processes[1].send_signal(signal.SIGKILL)
        hooks.processes[1].wait()
        hooks.start_worker()  # as `platograph up` restarts a dead child
        # RQ requeues the dead worker's job once its heartbeat lapses (job timeout + 10 s), then the
        # endpoint's slot the dead worker held expires (job timeout): about 25 s here.
        (arrived,) = endpoint.wait(1, timeout=90, accepted=True)
        verify(created["secret"], arrived)
        assert arrived.headers["webhook-id"] == str(event)
        eventually(lambda: hooks.deliveries(created["id"], status="delivered"))


def test_a_crash_between_recording_and_queueing_loses_nothing(hooks: Hooks) -> None:
    # A dispatcher of our own (in its own consumer group) that dies after recording, before queueing.
    graph = graph_bootstrap()
    wh = bootstrap(graph=TestClient(graph_http.create_app(graph), base_url="http://graph"))
    wh.settings.webhook_group = wh.consumer.group = "crash-test"
    wh.consumer.ensure_group()
    try:
        with receiver() as endpoint:
            created = hooks.register(endpoint.url)
            # The service's own dispatcher records the event for the paused endpoint and moves on; its row is
            # then dropped, so only the crashing dispatcher below can bring the message out.
            hooks.api.post(f"/v1/webhooks/{created['id']}/pause")
            event = hooks.propose()
            eventually(lambda: hooks.deliveries(created["id"]))
            with hooks.engine.begin() as conn:
                conn.execute(text("DELETE FROM webhook_deliveries"))
            hooks.api.post(f"/v1/webhooks/{created['id']}/resume")

            crashed = RuntimeError("killed between recording and queueing")
            entries = wh.consumer.read_new(100, block_ms=100)
            queue, wh.queue = wh.queue, FailingQueue(wh.queue, lambda: True, crashed)  # type: ignore[assignment]
            with pytest.raises(RuntimeError):
                dispatcher.handle(wh, entries)
            wh.queue = queue
            assert [d["status"] for d in hooks.deliveries(created["id"])] == ["pending"]
            assert wh.consumer.backlog()["pending"] == len(entries)  # nothing acked
            dispatcher.handle(wh, wh.consumer.own_pending(100))  # the restarted dispatcher
            (arrived,) = endpoint.wait(1, accepted=True)
            assert arrived.headers["webhook-id"] == str(event)
            eventually(lambda: hooks.settled(created["id"]))
            assert len(endpoint.requests) == 1 and wh.consumer.backlog()["pending"] == 0
    finally:
        wh.close()
        graph.close()


def test_the_dispatcher_survives_an_unexpected_error_and_delivers_once(hooks: Hooks) -> None:
    """The service's own dispatcher fails once after recording, before queueing: its loop starts again,
    reads the entry it had not acked, and the message goes out once; the status says it failed."""
    failed: list[int] = []

    def fails_once() -> bool:
        first = not failed
        failed.append(1)
        return first

    wh = hooks.api.app.state.wired.webhooks  # type: ignore[attr-defined]
    wh.queue = FailingQueue(wh.queue, fails_once, RuntimeError("not a server away: a bug"))
    with receiver() as endpoint:
        created = hooks.register(endpoint.url)
        event = hooks.propose()
        (arrived,) = endpoint.wait(1, accepted=True)
        assert arrived.headers["webhook-id"] == str(event) and failed
        eventually(lambda: hooks.settled(created["id"]))
        assert len(endpoint.requests) == 1
        assert [d["status"] for d in hooks.deliveries(created["id"])] == ["delivered"]
    loop = hooks.api.get("/v1/status").json()["webhooks"]["dispatcher"]
    assert loop["failures"] == 1 and loop["running"] is True
    assert loop["last_error"] == "RuntimeError: not a server away: a bug"
    page = hooks.api.get("/").text
    assert "dispatcher errors" in page and "not a server away" in page


def test_an_entry_the_dispatcher_fails_on_every_time_is_dead_lettered_and_the_next_delivered(hooks: Hooks) -> None:
    """The graph answers 400 for one entry's events, every time: a bug, not an outage, so it is not waited
    out for ever. After PLATOGRAPH_MAX_DELIVERIES (5) deliveries the entry is set aside with the error,
    and the candidate behind it is delivered."""
    fixed: list[int] = []

    def refuses_poison(request: httpx.Request) -> httpx.Response | None:
        if not fixed and request.url.path == "/v1/briefs" and b"claim:poison" in request.content:
            return httpx.Response(400, request=request)
        return None

    wh = hooks.api.app.state.wired.webhooks  # type: ignore[attr-defined]
    wh.graph = httpx.Client(base_url="http://graph", transport=FaultyGraph(wh.graph, refuses_poison))
    with receiver() as endpoint:
        hooks.register(endpoint.url)
        poison = hooks.propose(a="claim:poison")
        event = hooks.propose()
        (arrived,) = endpoint.wait(1, accepted=True)
        assert arrived.headers["webhook-id"] == str(event)
        (dead,) = hooks.api.get("/v1/dead-letters").json()["items"]
        assert dead["group"] == "webhooks" and "claim:poison" in dead["raw"]["events"]
        assert "delivered 6 times" in dead["reason"] and "HTTPStatusError: Client error '400" in dead["reason"]
        fixed.append(1)  # once the cause is fixed, the record is replayed and its candidate announced
        replayed = hooks.api.post(f"/v1/dead-letters/{dead['id']}/replay")
        assert replayed.status_code == 200 and replayed.json()["result"] == {"deliveries_queued": 1}
        _, second = endpoint.wait(2, accepted=True)
        assert second.headers["webhook-id"] == str(poison)
        assert hooks.api.get("/v1/dead-letters").json()["items"] == []
    loop = hooks.api.get("/v1/status").json()["webhooks"]["dispatcher"]
    assert loop["failures"] == 5 and loop["running"] is True


def test_a_rotated_secret_and_the_old_one_both_verify(hooks: Hooks) -> None:
    with receiver() as endpoint:
        created = hooks.register(endpoint.url)
        rotated = hooks.api.post(f"/v1/webhooks/{created['id']}/rotate-secret", json={"grace_s": 3600}).json()
        assert rotated["secret"] != created["secret"]
        hooks.propose()
        (request,) = endpoint.wait(1)
        assert len(request.headers["webhook-signature"].split(" ")) == 2
        assert verify(created["secret"], request) == verify(rotated["secret"], request)
        hooks.api.post(f"/v1/webhooks/{created['id']}/rotate-secret", json={"grace_s": 0})
        hooks.propose(score=0.7)
        (_, later) = endpoint.wait(2)
        assert len(later.headers["webhook-signature"].split(" ")) == 1


def test_a_slow_endpoint_does_not_delay_the_others(hooks: Hooks) -> None:
    with receiver(lambda n: (200, 2.0)) as slow, receiver() as fast:
        hooks.register(slow.url)
        hooks.register(fast.url)
        started = time.monotonic()
        for i in range(6):
            hooks.propose(score=0.6 + i / 100)
        fast.wait(6, timeout=30)
        assert time.monotonic() - started < 8  # the slow one needs 12 s for its six (one at a time)
        assert len(slow.requests) < 6


def test_a_dead_endpoint_is_backed_off_as_a_whole_beside_a_healthy_one(hooks: Hooks) -> None:
    """An endpoint that refuses connections gets a probe per breaker pause, not an attempt per delivery,
    while a healthy endpoint beside it gets every event within a second."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # nothing listens once it is closed: connections are refused
    with receiver() as healthy:
        dead = hooks.register(f"http://127.0.0.1:{closed}/dead")
        hooks.register(healthy.url)
        sent: dict[str, float] = {}
        # Paced so that the healthy endpoint's own batches rarely overlap: with one send at a time per endpoint
        # (this fixture), a batch that finds its endpoint busy waits a scheduler round (issue 25).
        for i in range(40):
            sent[str(hooks.propose(score=0.5 + i / 1000))] = time.time()
            time.sleep(0.3)
        arrived = healthy.wait(40, timeout=60, accepted=True)
        latencies = sorted(r.at - sent[r.headers["webhook-id"]] for r in arrived)
        assert latencies[len(latencies) // 2] < 1.0, latencies
        time.sleep(1)
        attempts = sum(d["attempts"] for d in hooks.deliveries(dead["id"], limit=500))
        assert len(hooks.deliveries(dead["id"], limit=500)) == 40
        # Per delivery, its four tries (retries at 0.2 s here) would make 160 attempts; backed off as a whole,
        # about one probe per breaker pause (0.2-0.4 s) over the ~12 s.
        assert attempts < 80, attempts


def test_filters_redirects_and_addresses(hooks: Hooks) -> None:
    with receiver(lambda n: (302, 0.0)) as redirecting, receiver() as picky:
        moved = hooks.register(redirecting.url)
        hooks.register(picky.url, filter={"min_score": 0.85, "entity_types": ["claim"]})
        hooks.propose(score=0.8)
        hooks.propose(score=0.9)
        (request,) = picky.wait(1)
        assert orjson.loads(request.body)["data"]["score"] == 0.9
        redirecting.wait(2)
        attempt = eventually(lambda: [a for d in hooks.deliveries(moved["id"]) for a in d["attempt_log"]])[0]
        assert attempt["status_code"] == 302  # not followed
    for url, reason in [("http://10.1.2.3/hook", "10.1.2.3"), ("http://169.254.169.254/", "169.254.169.254"),
                        ("ftp://example.org/", "http"), ("http://user:pw@127.0.0.1/", "credentials")]:  # fmt: skip
        refused = hooks.api.post("/v1/webhooks", json={"url": url})
        assert refused.status_code == 422 and refused.json()["detail"][0]["loc"][-1] == "url", refused.text
        assert reason in refused.json()["detail"][0]["msg"]
    unknown = hooks.api.post("/v1/webhooks", json={"url": "http://127.0.0.1/", "event_types": ["edge.added"]})
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"] == ["body", "event_types"]


def test_crud_pagination_and_secrets_at_rest(hooks: Hooks) -> None:
    made = [hooks.register(f"http://127.0.0.1:9999/{i}", description=f"n{i}") for i in range(3)]
    first = hooks.api.get("/v1/webhooks", params={"limit": 2}).json()
    second = hooks.api.get("/v1/webhooks", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert sorted(s["id"] for s in first["items"] + second["items"]) == sorted(m["id"] for m in made)
    assert second["next_cursor"] is None
    patched = hooks.api.patch(f"/v1/webhooks/{made[0]['id']}", json={"description": "renamed"}).json()
    assert patched["description"] == "renamed" and patched["url"] == made[0]["url"]
    assert hooks.api.post(f"/v1/webhooks/{made[0]['id']}/pause").json()["state"] == "paused"
    assert hooks.api.delete(f"/v1/webhooks/{made[1]['id']}").status_code == 204
    missing = hooks.api.get(f"/v1/webhooks/{made[1]['id']}")
    assert missing.status_code == 404 and missing.json()["detail"][0]["loc"] == ["path", "id"]
    with hooks.engine.connect() as conn:
        dump = str(conn.execute(text("SELECT * FROM webhook_subscriptions")).all())
    assert not any(m["secret"] in dump or m["secret"][6:] in dump for m in made)
