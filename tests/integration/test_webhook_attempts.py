"""One delivery attempt at a time, in-process against real Postgres and Redis: what happens to an endpoint
that keeps failing for days, and to one whose address stopped being allowed after registration."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine, text

from services.webhooks.adapters import store
from services.webhooks.bootstrap import Webhooks, bootstrap
from services.webhooks.domain.messages import new_secret
from services.webhooks.service_layer import delivery
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
