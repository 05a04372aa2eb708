"""One delivery attempt at a time, in-process against real Postgres and Redis: what happens to an endpoint
that keeps failing for days, and to one whose address stopped being allowed after registration."""

from __future__ import annotations

import itertools
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from rq.job import Job
from sqlalchemy import Connection, Engine, text

from services.webhooks.adapters import store
from services.webhooks.bootstrap import Webhooks, bootstrap
from services.webhooks.domain.messages import new_secret
from services.webhooks.entrypoints import dispatcher
from services.webhooks.entrypoints import http as webhooks_http
from services.webhooks.service_layer import backoff, delivery, queueing, sweeping, waking
from tests.receiver import receiver

pytestmark = pytest.mark.integration


@pytest.fixture
def wh(env: dict[str, str], engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Webhooks]:
    monkeypatch.setenv("PLATOGRAPH_WEBHOOK_KEY", Fernet.generate_key().decode())
    monkeypatch.setenv("PLATOGRAPH_WEBHOOK_ALLOWLIST", "127.0.0.0/8")
    monkeypatch.setenv("PLATOGRAPH_WEBHOOK_QUEUE", f"test-attempts-{uuid.uuid4().hex[:8]}")
    hooks = bootstrap()
    yield hooks
    hooks.close()


def subscribe(wh: Webhooks, url: str, failing_since: datetime | None = None) -> uuid.UUID:
    delivery_id = uuid.uuid4()
    with wh.engine.begin() as conn:
        store.create_subscription(conn, {
            "id": "wh_test", "url": url, "event_types": ["candidate.proposed"], "entity_types": None,
            "min_score": None, "description": "", "state": "active", "state_reason": "",
            "secret": wh.box.seal(new_secret()), "failing_since": failing_since,
        })  # fmt: skip
        store.insert_deliveries(conn, [{"id": delivery_id, "subscription_id": "wh_test", "event_id": uuid.uuid4(),
                                        "event_type": "candidate.proposed", "stream_id": "1-0", "body": "{}",
                                        "status": "pending"}])  # fmt: skip
    return delivery_id


def state(wh: Webhooks, delivery_id: uuid.UUID) -> tuple[str, str, str, str]:
    with wh.engine.connect() as conn:
        row = conn.execute(text("""SELECT d.status, d.status_reason, s.state, s.state_reason FROM webhook_deliveries d
                                   JOIN webhook_subscriptions s ON s.id = d.subscription_id WHERE d.id = :id"""),
                           {"id": delivery_id}).one()  # fmt: skip
    return row[0], row[1], row[2], row[3]


def test_an_endpoint_failing_for_days_is_disabled_and_says_why(wh: Webhooks) -> None:
    with receiver(lambda n: (500, 0.0)) as endpoint:
        delivery_id = subscribe(wh, endpoint.url, failing_since=datetime.now(UTC) - timedelta(days=6))
        assert delivery.attempt_batch(wh, [delivery_id], 0).endswith("1 failed, 0 postponed")
        assert len(endpoint.requests) == 1
    status, _, endpoint_state, reason = state(wh, delivery_id)
    assert (status, endpoint_state) == ("failed", "disabled")
    assert reason.startswith("no successful delivery since") and "HTTP 500" in reason


def test_the_address_is_checked_again_before_each_attempt(wh: Webhooks) -> None:
    with receiver() as endpoint:
        delivery_id = subscribe(wh, endpoint.url)  # registered while 127.0.0.0/8 was allowed
        wh.settings.webhook_allowlist = []  # …and no longer (as if the name now resolved somewhere private)
        delivery.attempt_batch(wh, [delivery_id], 0)
        assert endpoint.requests == []  # nothing was sent
    status, reason, endpoint_state, _ = state(wh, delivery_id)
    assert status == "pending" and reason.startswith("refused:") and "127.0.0.1" in reason
    assert endpoint_state == "active"  # retried later, in case the address changes back


@contextmanager
def tarpit(every_s: float) -> Iterator[str]:
    """A receiver that reads the request, then answers one byte every `every_s` seconds, for ever."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def trickle(conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            for byte in itertools.cycle(b"HTTP/1.1 200 OK\r\nX-Slow: "):
                if stop.wait(every_s):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=trickle, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/hook"
    finally:
        stop.set()
        server.close()


def test_a_receiver_that_trickles_its_answer_cannot_hold_a_worker_past_the_deadline(wh: Webhooks) -> None:
    wh.settings.webhook_timeout_s = 1.0  # each byte comes well within the read timeout: only a deadline helps
    with tarpit(every_s=0.2) as url:
        delivery_id = subscribe(wh, url)
        started = time.monotonic()
        assert delivery.attempt_batch(wh, [delivery_id], 0).endswith("1 failed, 0 postponed")
        assert time.monotonic() - started < 10  # not until the trickle ends (never)
    status, reason, _, _ = state(wh, delivery_id)
    assert status == "pending" and "no complete answer within 1 s" in reason  # retried later


def test_a_replay_repeated_with_its_key_resends_nothing_a_second_time(wh: Webhooks) -> None:
    with receiver() as endpoint:
        delivery_id = subscribe(wh, endpoint.url)
        assert delivery.attempt_batch(wh, [delivery_id], 0) == "1 delivered"
        api = TestClient(webhooks_http.create_app(wh, dispatch=False))
        since = {"since": "2000-01-01T00:00:00Z"}

        def replay(key: str) -> int:
            answer = api.post("/v1/webhooks/wh_test/replay", json=since, headers={"Idempotency-Key": key})
            assert answer.status_code == 202, answer.text
            return int(answer.json()["requeued"])

        assert replay("r1") == 1
        assert delivery.attempt_batch(wh, [delivery_id], queueing.ANY_ATTEMPT) == "1 delivered"
        assert (replay("r1"), replay("r1")) == (0, 0)  # the same replay, retried: nothing reopened
        assert delivery.attempt_batch(wh, [delivery_id], queueing.ANY_ATTEMPT) == "nothing to send"
        assert len(endpoint.requests) == 2  # the first send and the replay's, once
        assert replay("r2") == 1  # another replay request re-sends it again


def add_deliveries(wh: Webhooks, n: int) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(n)]
    with wh.engine.begin() as conn:
        store.insert_deliveries(conn, [{"id": i, "subscription_id": "wh_test", "event_id": uuid.uuid4(),
                                        "event_type": "candidate.proposed", "stream_id": f"{k + 2}-0", "body": "{}",
                                        "status": "pending"} for k, i in enumerate(ids)])  # fmt: skip
    return ids


def wake_jobs(wh: Webhooks) -> list[Job]:
    """The wake jobs scheduled for the test's endpoint."""
    jobs = [Job.fetch(i, connection=wh.redis, serializer=wh.queue.serializer)
            for i in wh.queue.scheduled_job_registry.get_job_ids()]  # fmt: skip
    return [j for j in jobs if j.func_name == queueing.WAKE]


def queued_batches(wh: Webhooks) -> list[list[str]]:
    return [j.args[0] for j in wh.queue.get_jobs() if j.func_name == queueing.DELIVER]


def open_now(wh: Webhooks) -> None:
    """The breaker's pause is over (instead of waiting for it)."""
    wh.redis.hset(f"{wh.settings.webhook_queue}:breaker:wh_test", "open_until", str(time.time() - 1))


def test_an_endpoint_that_is_down_is_backed_off_as_a_whole_then_probed(wh: Webhooks) -> None:
    def script(n: int) -> tuple[int, float]:
        return (503, 0.0) if n <= 2 else (200, 0.0)  # down for two tries, then back

    with receiver(script) as endpoint:
        first = subscribe(wh, endpoint.url)
        others = add_deliveries(wh, 5)
        assert delivery.attempt_batch(wh, [first], 0, "wh_test").endswith("1 failed, 0 postponed")
        until = wh.breaker.open_until("wh_test")
        assert until is not None and until > time.time()  # open: the endpoint is down
        for batch in ([others[0]], [others[1]], others[2:]):  # other batches are parked, sending nothing
            assert delivery.attempt_batch(wh, batch, 0, "wh_test").startswith("endpoint backed off; parked")
        assert len(endpoint.requests) == 1 and wh.breaker.parked("wh_test") == 3
        assert queued_batches(wh) == []  # parked batches are no jobs: one wake job for the pause stands for them
        assert [j.args for j in wake_jobs(wh)] == [["wh_test"]]
        with wh.engine.connect() as conn:  # and spend no attempt
            attempts = conn.execute(text("SELECT sum(attempts) FROM webhook_deliveries WHERE id = ANY(:ids)"),
                                    {"ids": others}).scalar_one()  # fmt: skip
        assert attempts == 0
        assert waking.wake(wh, "wh_test") == "not due yet"  # woken early: nothing sent
        open_now(wh)
        assert waking.wake(wh, "wh_test").endswith("1 failed, 0 postponed; still backed off")  # the probe
        second = wh.breaker.open_until("wh_test")
        assert second is not None and second - time.time() > until - time.time()  # still down: a longer pause
        assert wh.breaker.parked("wh_test") == 2 and len(wake_jobs(wh)) == 2  # the longer pause's wake is due
        open_now(wh)
        result = waking.wake(wh, "wh_test")  # the probe gets through, and the queue flows again
        assert result == "1 delivered; released 1 parked batches", result
        assert wh.breaker.open_until("wh_test") is None and wh.breaker.parked("wh_test") == 0
        assert sorted(queued_batches(wh)) == sorted([[str(i) for i in others[2:]]])
        assert delivery.attempt_batch(wh, others[2:], 0, "wh_test") == "3 delivered"
        assert len(endpoint.requests) == 6  # the first delivery and the first probe's retries are their own jobs


def test_a_retry_that_gets_through_releases_what_was_parked(wh: Webhooks) -> None:
    with receiver(lambda n: (200, 0.0)) as endpoint:
        retried = subscribe(wh, endpoint.url)
        parked = add_deliveries(wh, 2)
        wh.breaker.trip("wh_test")
        assert delivery.attempt_batch(wh, parked[:1], 0, "wh_test").startswith("endpoint backed off; parked")
        assert delivery.enqueue_first(wh, [(parked[1], "wh_test")]) == 0  # recorded while down: parked, no job
        assert wh.breaker.parked("wh_test") == 2 and queued_batches(wh) == []
        open_now(wh)
        assert delivery.attempt_batch(wh, [retried], 0, "wh_test") == "1 delivered"  # a retry's job probed
        due = [j for j in wake_jobs(wh) if "-now" in j.id]
        assert len(due) == 1, [(j.id, time.time()) for j in wake_jobs(wh)]  # a wake due now, beside the pause end's
        assert waking.wake(wh, "wh_test") == "released 2 parked batches"
        assert sorted(queued_batches(wh)) == sorted([[str(parked[0])], [str(parked[1])]])


def test_a_pause_that_ends_within_the_second_of_the_last_one_gets_a_wake_of_its_own(wh: Webhooks) -> None:
    """Pauses can be shorter than a second: a probe failing in a wake job opens one that may end within the
    same second as the pause the job woke from. Its wake must not be taken for the job already there (a
    wake id of whole seconds did: the parked batches then waited for good)."""
    subscribe(wh, "http://127.0.0.1:9999/hook")
    second = int(time.time()) + 5
    key = f"{wh.settings.webhook_queue}:breaker:wh_test"
    wh.redis.hset(key, "open_until", str(second + 0.3))
    backoff.schedule_wake(wh, "wh_test")
    backoff.schedule_wake(wh, "wh_test")  # the same pause: the same wake
    assert len(wake_jobs(wh)) == 1
    wh.redis.hset(key, "open_until", str(second + 0.7))  # the probe failed: a longer pause, same second
    backoff.schedule_wake(wh, "wh_test")
    assert len(wake_jobs(wh)) == 2


def pending_wakes(wh: Webhooks) -> list[str]:
    return [j.id for j in wake_jobs(wh) if j.get_status() in ("scheduled", "queued")]


def test_a_probe_that_finds_the_endpoint_busy_hands_the_probe_on(wh: Webhooks) -> None:
    """The pause is over and this job takes the probe, but another job still holds the endpoint's one
    slot: its batch is deferred, and the probe is free for its next job (it was held for the job's time
    limit, and every batch meanwhile parked behind it)."""
    wh.settings.webhook_endpoint_concurrency = 1
    busy = subscribe(wh, "http://127.0.0.1:9999/hook")
    wh.breaker.trip("wh_test")
    open_now(wh)
    wh.redis.zadd(f"{wh.settings.webhook_queue}:busy:wh_test", {"other-job": time.time() + 60})
    assert delivery.attempt_batch(wh, [busy], 0, "wh_test") == delivery.BUSY
    assert wh.breaker.probe("wh_test", 5)  # the deferred job (or any) can probe next


def test_a_probe_whose_job_fails_is_released(wh: Webhooks, monkeypatch: pytest.MonkeyPatch) -> None:
    """The database away, or RQ's time limit: the job fails, and the probe is not held for its time limit."""
    failing = subscribe(wh, "http://127.0.0.1:9999/hook")
    wh.breaker.trip("wh_test")
    open_now(wh)

    def away(*args: object) -> str:
        raise RuntimeError("database away")

    monkeypatch.setattr(delivery, "_claim_and_send", away)
    with pytest.raises(RuntimeError, match="database away"):
        delivery.attempt_batch(wh, [failing], 0, "wh_test")
    assert wh.breaker.probe("wh_test", 5)  # RQ's retry of the job (or any other) can probe


def test_a_wake_whose_probe_sends_nothing_wakes_again_for_the_rest(wh: Webhooks) -> None:
    """The wake unparks a batch that was sent meanwhile (nothing to send): the batches still parked need a
    wake of their own, not the running one's (its id is the pause's: a second one of that id never came)."""
    with receiver(lambda n: (200, 0.0)) as endpoint:
        gone = subscribe(wh, endpoint.url)
        rest = add_deliveries(wh, 1)
        wh.breaker.trip("wh_test")
        for batch in ([gone], rest):
            assert delivery.attempt_batch(wh, batch, 0, "wh_test").startswith("endpoint backed off; parked")
        ran = pending_wakes(wh)
        assert len(ran) == 1
        with wh.engine.begin() as conn:  # a retry sent it meanwhile
            store.set_deliveries(conn, [gone], {"status": "delivered"})
        open_now(wh)
        assert waking.wake(wh, "wh_test") == "nothing to send; still backed off"
        assert [w for w in pending_wakes(wh) if w not in ran], "no wake for the batch still parked"
        assert waking.wake(wh, "wh_test") == "1 delivered; released 0 parked batches"
        assert len(endpoint.requests) == 1


def test_batches_parked_while_nobody_probes_share_one_wake_until_it_has_run(wh: Webhooks) -> None:
    """The pause is over and no job probes: each batch recorded meanwhile is parked with a wake due now.
    They share one while it is still to run (not a wake job a batch); once it has run, the next gets its own."""
    subscribe(wh, "http://127.0.0.1:9999/hook")
    ids = add_deliveries(wh, 4)
    wh.breaker.trip("wh_test")
    open_now(wh)
    for i in ids[:3]:
        assert delivery.enqueue_first(wh, [(i, "wh_test")]) == 0  # parked
    (wake,) = wake_jobs(wh)
    wake.set_status("finished")  # it ran (a worker took it)
    assert delivery.enqueue_first(wh, [(ids[3], "wh_test")]) == 0
    assert len(pending_wakes(wh)) == 1 and wake.id not in pending_wakes(wh)


def test_a_batch_parked_behind_a_probe_whose_holder_died_is_woken_when_the_probe_expires(wh: Webhooks) -> None:
    subscribe(wh, "http://127.0.0.1:9999/hook")
    late = add_deliveries(wh, 1)
    wh.breaker.trip("wh_test")
    open_now(wh)
    assert wh.breaker.probe("wh_test", 30)  # taken by a worker that is then killed
    assert delivery.attempt_batch(wh, late, 0, "wh_test").startswith("endpoint backed off; parked")
    (wake,) = [j for j in wake_jobs(wh) if j.get_status() == "scheduled"]
    due = wh.queue.scheduled_job_registry.get_scheduled_time(wake)
    assert 29 < due.timestamp() - time.time() < 32  # when the probe expires (not never)


def test_a_probe_answered_4xx_closes_the_breaker(wh: Webhooks) -> None:
    """A 4xx refuses that delivery, but the endpoint answers: the batches parked while it was down go."""
    with receiver(lambda n: (400, 0.0)) as endpoint:
        refused = subscribe(wh, endpoint.url)
        parked = add_deliveries(wh, 1)
        wh.breaker.trip("wh_test")
        assert delivery.attempt_batch(wh, parked, 0, "wh_test").startswith("endpoint backed off; parked")
        open_now(wh)
        assert delivery.attempt_batch(wh, [refused], 0, "wh_test").endswith("1 failed, 0 postponed")
        assert wh.breaker.open_until("wh_test") is None
        assert waking.wake(wh, "wh_test") == "released 1 parked batches"


def test_a_batch_parked_just_after_the_breaker_closed_is_sent_not_stranded(wh: Webhooks) -> None:
    """A job saw the breaker open; before it parked its batch, a probe got through, closed the breaker and
    released the (then empty) list. Parking now would wait for a wake that never comes: it is queued."""
    subscribe(wh, "http://127.0.0.1:9999/hook")
    late = add_deliveries(wh, 1)
    wh.breaker.trip("wh_test")
    assert backoff.gate(wh, "wh_test") == (True, None)  # what the job saw
    wh.breaker.close("wh_test")  # meanwhile the probe succeeded ...
    assert waking.release(wh, "wh_test") == 0  # ... and released nothing
    assert backoff.park(wh, "wh_test", [(late, 0)]) == 0
    assert wh.breaker.parked("wh_test") == 0 and queued_batches(wh) == [[str(late[0])]]


def test_a_pending_delivery_whose_job_was_lost_is_swept_into_a_new_one_once(wh: Webhooks) -> None:
    lost = subscribe(wh, "http://127.0.0.1:9999/hook")  # recorded, but its job never ran (or vanished)
    fresh = add_deliveries(wh, 1)[0]
    with wh.engine.begin() as conn:
        conn.execute(text("UPDATE webhook_deliveries SET updated_at = now() - interval '1 hour' WHERE id = :id"),
                     {"id": lost})  # fmt: skip
    assert sweeping.sweep(wh) == 1  # the overdue one only
    assert Job.exists(queueing.job_id([lost], queueing.ANY_ATTEMPT) + "-swept", connection=wh.redis)
    assert not Job.exists(queueing.job_id([fresh], queueing.ANY_ATTEMPT) + "-swept", connection=wh.redis)
    assert sweeping.sweep(wh) == 0  # its job is queued: not again
    wh.redis.delete(Job.key_for(queueing.job_id([lost], queueing.ANY_ATTEMPT) + "-swept"))
    wh.breaker.trip("wh_test")
    assert sweeping.sweep(wh) == 0  # an endpoint held back on purpose is not swept


def test_a_batch_cut_short_after_sending_is_not_sent_again(wh: Webhooks) -> None:
    with receiver() as endpoint:
        sent_before = subscribe(wh, endpoint.url)
        rest = add_deliveries(wh, 1)[0]
        # A worker sent the first one and was killed before recording it: only the Redis mark says so.
        wh.redis.set(f"{wh.settings.webhook_queue}:sent:{sent_before}", "1")
        assert delivery.attempt_batch(wh, [sent_before, rest], 0, "wh_test") == "1 delivered"
        assert len(endpoint.requests) == 1  # the second only
    assert state(wh, sent_before)[0] == "delivered" and state(wh, rest)[0] == "delivered"
    assert not wh.redis.exists(f"{wh.settings.webhook_queue}:sent:{sent_before}")  # recorded: the mark is gone


def test_delivery_counts_are_maintained_and_agree_with_counting(wh: Webhooks, monkeypatch: pytest.MonkeyPatch) -> None:
    def counted(conn: Connection) -> dict[str, int]:
        rows = conn.execute(text("SELECT status, count(*) FROM webhook_deliveries GROUP BY status")).all()
        return {str(status): int(n) for status, n in rows}

    first = subscribe(wh, "http://127.0.0.1:9999/hook")
    ids = add_deliveries(wh, 30)
    monkeypatch.setattr(store, "FOLD_AFTER", 3)  # fold on every read below
    with wh.engine.begin() as conn:
        store.mark_delivered(conn, [(i, 1, datetime.now(UTC)) for i in ids[:10]])
        store.set_deliveries(conn, ids[10:15], {"status": "failed", "status_reason": "gave up"})
        conn.execute(text("DELETE FROM webhook_deliveries WHERE id = ANY(:ids)"), {"ids": [first, *ids[28:]]})
        assert store.stats(conn)["deliveries"] == counted(conn) == {"delivered": 10, "failed": 5, "pending": 13}
    with wh.engine.begin() as conn:
        assert conn.execute(text("SELECT count(*) FROM webhook_delivery_counts")).scalar_one() == 3  # folded
        store.set_deliveries(conn, ids[15:20], {"status": "delivered"})
        assert store.delivery_counts(conn, "wh_test") == counted(conn) == {"delivered": 15, "failed": 5, "pending": 8}
        store.delete_subscription(conn, "wh_test")
        assert store.delivery_counts(conn, "wh_test") == {} and store.stats(conn)["deliveries"] == {}


def test_the_dispatcher_holds_back_while_the_workers_are_behind(wh: Webhooks) -> None:
    """More jobs waiting than webhook_queue_high: the dispatcher waits (at most webhook_hold_s) before it
    reads on, so the stream's entries gather into bigger batches; with room in the queue it reads at once."""
    wh.settings.webhook_queue_high, wh.settings.webhook_hold_s = 2, 0.4
    jobs = [wh.queue.enqueue(queueing.DELIVER, [str(uuid.uuid4())], 0, "wh_none") for _ in range(3)]
    assert 0.4 <= dispatcher.hold_back(wh) < 2.0  # no worker runs here: the queue stays long, the hold ends
    jobs[0].cancel()
    wh.queue.remove(jobs[0])
    assert dispatcher.hold_back(wh) < 0.1  # 2 waiting: not more than the mark
    threading.Timer(0.15, lambda: [wh.queue.remove(job) for job in jobs[1:]]).start()
    wh.queue.enqueue(queueing.DELIVER, [str(uuid.uuid4())], 0, "wh_none")
    assert 0.1 < dispatcher.hold_back(wh) < 0.4  # the workers caught up while it waited
    for _ in range(20):
        wh.queue.enqueue("builtins.print", "waiting")
    stop = threading.Event()
    threading.Timer(0.1, stop.set).start()
    assert dispatcher.hold_back(wh, stop=stop) < 0.4  # asked to stop: it does not wait the hold out


def test_bodies_and_replies_are_stored_as_sent(wh: Webhooks) -> None:
    """Bodies go once per event (rows share them) and replies as JSON arrays: quotes, backslashes and
    non-ASCII text come back exactly; a NUL, which PostgreSQL's text cannot hold, comes back replaced."""
    tricky = '{"name": "a \\"quoted\\" \\\\ back\\\\slash, ünïcode ✓, {braces}, NULL"}'
    ids = [uuid.uuid4() for _ in range(3)]
    events = [uuid.uuid4(), uuid.uuid4(), uuid.uuid4()]
    with wh.engine.begin() as conn:
        subscribe(wh, "http://127.0.0.1:9/hook")
        store.insert_deliveries(conn, [
            {"id": ids[0], "subscription_id": "wh_test", "event_id": events[0], "event_type": "candidate.proposed",
             "stream_id": "2-0", "body": tricky, "status": "pending"},
            {"id": ids[1], "subscription_id": "wh_test", "event_id": events[1], "event_type": "candidate.proposed",
             "stream_id": "3-0", "body": "{}", "status": "pending"},
            {"id": ids[2], "subscription_id": "wh_test", "event_id": events[2], "event_type": "candidate.proposed",
             "stream_id": "2-0", "body": tricky, "status": "pending"},
        ])  # fmt: skip
        store.record_attempts(conn, [
            {"delivery_id": ids[0], "attempted_at": datetime.now(UTC), "status_code": 200, "latency_ms": 1.5,
             "error": "", "response": 'ok "fine" \\ \x00 end', "details": {"attempt": 1}},
            {"delivery_id": ids[1], "attempted_at": datetime.now(UTC), "status_code": None, "latency_ms": 2.0,
             "error": "ClientError: 'quoted' \"x\"", "response": "", "details": {"attempt": 2}},
        ])  # fmt: skip
        bodies = dict(conn.execute(text("SELECT id, body FROM webhook_deliveries WHERE id = ANY(:ids)"),
                                   {"ids": ids}).all())  # fmt: skip
        attempts = conn.execute(text("""SELECT delivery_id, status_code, error, response, details FROM webhook_attempts
                                        WHERE delivery_id = ANY(:ids) ORDER BY latency_ms"""),
                                {"ids": ids}).all()  # fmt: skip
    assert bodies == {ids[0]: tricky, ids[1]: "{}", ids[2]: tricky}
    assert [tuple(a) for a in attempts] == [
        (ids[0], 200, "", 'ok "fine" \\ \ufffd end', {"attempt": 1}),
        (ids[1], None, "ClientError: 'quoted' \"x\"", "", {"attempt": 2}),
    ]
