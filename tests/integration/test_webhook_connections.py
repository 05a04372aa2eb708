"""A worker keeps its connection to an endpoint between batches, and writes its sent marks without waiting
for each reply: against real Postgres, Redis and an HTTP/1.1 receiver on 127.0.0.1."""

from __future__ import annotations

import time

import pytest
import redis

from services.webhooks.adapters import sender
from services.webhooks.adapters.marks import SentMarks
from services.webhooks.bootstrap import Webhooks
from services.webhooks.service_layer import delivery
from tests.integration.test_webhook_attempts import add_deliveries, state, subscribe, wh  # noqa: F401 - fixture
from tests.receiver import receiver

pytestmark = pytest.mark.integration


def test_batches_to_one_endpoint_share_a_kept_connection(wh: Webhooks) -> None:  # noqa: F811 - the fixture
    with receiver(idle_close=30) as endpoint:
        first = subscribe(wh, endpoint.url)
        second = add_deliveries(wh, 2)
        assert delivery.attempt_batch(wh, [first], 0, "wh_test") == "1 delivered"
        assert delivery.attempt_batch(wh, second, 0, "wh_test") == "2 delivered"
        assert len({r.peer for r in endpoint.requests}) == 1, "each batch connected again"
        time.sleep(sender.KEEPALIVE_S + 0.2)  # idle past the keep-alive: the next batch connects anew
        assert delivery.attempt_batch(wh, add_deliveries(wh, 1), 0, "wh_test") == "1 delivered"
        assert len({r.peer for r in endpoint.requests}) == 2


def test_a_kept_connection_the_endpoint_closed_is_not_counted_as_its_failure(wh: Webhooks) -> None:  # noqa: F811
    with receiver(idle_close=0.05) as endpoint:  # closes idle connections long before our keep-alive ends
        first = subscribe(wh, endpoint.url)
        assert delivery.attempt_batch(wh, [first], 0, "wh_test") == "1 delivered"
        time.sleep(0.3)
        later = add_deliveries(wh, 1)[0]
        assert delivery.attempt_batch(wh, [later], 0, "wh_test") == "1 delivered"
        assert [r.status for r in endpoint.requests] == [200, 200]
    assert state(wh, later)[0] == "delivered"
    assert wh.breaker.open_until("wh_test") is None  # not taken for an endpoint that is down
    with wh.engine.connect() as conn:
        attempts = conn.exec_driver_sql(f"SELECT count(*) FROM webhook_attempts WHERE delivery_id = '{later}'")
        assert attempts.scalar_one() == 1


def test_marks_reach_redis_before_the_batch_ends_and_an_error_reply_is_raised(wh: Webhooks) -> None:  # noqa: F811
    key = f"{wh.settings.webhook_queue}:sent:test"
    with SentMarks(wh.redis, 60) as marks:
        marks.mark(key)
        deadline = time.monotonic() + 5
        while not wh.redis.exists(key):  # on its way at once, its reply not read yet
            assert time.monotonic() < deadline, "the mark did not reach Redis while the batch ran"
            time.sleep(0.01)
    assert 0 < wh.redis.ttl(key) <= 60
    with pytest.raises(redis.ResponseError, match="expire"), SentMarks(wh.redis, 0) as bad:
        bad.mark(key + ":a")  # EX 0: Redis refuses it
        bad.mark(key + ":b")  # its reply is left unread: the connection must not go back to the pool as is
    for _ in range(5):  # every pooled connection answers its own command
        assert wh.redis.set(key, "x") is True and wh.redis.get(key) == b"x"
