"""Subscriptions: registering an endpoint (its id and signing secret are made here, the secret kept sealed)
and rotating its secret (the old one keeps signing until the grace period ends)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from platograph.api.webhooks import SubscriptionIn
from services.webhooks.adapters import store
from services.webhooks.bootstrap import Webhooks
from services.webhooks.domain import messages, safety


def check_url(wh: Webhooks, url: str) -> None:
    """Refuse an endpoint the network policy forbids (safety.UnsafeEndpoint)."""
    safety.resolve(url, wh.settings.webhook_allowlist)


def create(wh: Webhooks, conn: Connection, body: SubscriptionIn) -> tuple[str, str]:
    """Register an endpoint; returns its id and its signing secret (in the clear: shown once)."""
    url = str(body.url)
    check_url(wh, url)
    secret = messages.new_secret()
    subscription_id = f"wh_{uuid.uuid4().hex}"
    store.create_subscription(conn, {
        "id": subscription_id, "url": url, "event_types": body.event_types,
        "entity_types": body.filter.entity_types, "min_score": body.filter.min_score,
        "description": body.description, "state": "active", "state_reason": "", "secret": wh.box.seal(secret),
    })  # fmt: skip
    return subscription_id, secret


def rotate(wh: Webhooks, conn: Connection, subscription_id: str, grace_s: float | None) -> dict[str, Any] | None:
    """A new signing secret; the old one signs too for `grace_s` (default: the configured grace). None when
    there is no such subscription."""
    row = store.get_subscription(conn, subscription_id, with_secrets=True)
    if row is None:
        return None
    grace = wh.settings.webhook_rotation_grace_s if grace_s is None else grace_s
    secret = messages.new_secret()
    until = datetime.now(UTC) + timedelta(seconds=grace)
    store.update_subscription(conn, subscription_id, {"secret": wh.box.seal(secret), "previous_secret": row["secret"],
                                                      "previous_secret_until": until})  # fmt: skip
    return {"id": subscription_id, "secret": secret, "previous_secret_until": until}
