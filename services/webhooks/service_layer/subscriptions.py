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
    safety.resolve(url, wh.settings.webhook_allowlist, ports=wh.settings.webhook_ports)


IDEMPOTENCY_NAMESPACE = uuid.UUID("9d7c2f5e-3b8a-4e61-a0f4-6c2d8e1b7a93")


def create(
    wh: Webhooks,
    conn: Connection,
    body: SubscriptionIn,
    owner: str | None = None,
    key: str | None = None,
    by: str | None = None,
) -> tuple[str, str, bool]:
    """Register an endpoint for `owner`; returns its id, its signing secret (in the clear: shown once) and
    whether an earlier request with the same Idempotency-Key (`key`) of the same owner had made it already
    (then nothing new is made and the first reply's id and secret are returned)."""
    url = str(body.url)
    check_url(wh, url)
    if key is None:
        subscription_id = f"wh_{uuid.uuid4().hex}"
    else:
        subscription_id = "wh_" + uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{owner}|{key}").hex
        made = store.get_subscription(conn, subscription_id, with_secrets=True)
        if made is not None:
            return subscription_id, wh.box.open(made["secret"]), True
    secret = messages.new_secret()
    store.create_subscription(conn, {
        "id": subscription_id, "owner": owner, "created_by": by, "changed_by": by, "url": url,
        "event_types": body.event_types,
        "entity_types": body.filter.entity_types, "min_score": body.filter.min_score,
        "description": body.description, "state": "active", "state_reason": "", "secret": wh.box.seal(secret),
    })  # fmt: skip
    return subscription_id, secret, False


def rotate(
    wh: Webhooks,
    conn: Connection,
    subscription_id: str,
    grace_s: float | None,
    owner: str | None = None,
    by: str | None = None,
) -> dict[str, Any] | None:
    """A new signing secret; the old one signs too for `grace_s` (default: the configured grace). None when
    there is no such subscription (of `owner`, when given)."""
    row = store.get_subscription(conn, subscription_id, with_secrets=True, owner=owner)
    if row is None:
        return None
    grace = wh.settings.webhook_rotation_grace_s if grace_s is None else grace_s
    secret = messages.new_secret()
    until = datetime.now(UTC) + timedelta(seconds=grace)
    store.update_subscription(conn, subscription_id, {"secret": wh.box.seal(secret), "previous_secret": row["secret"],
                                                      "previous_secret_until": until, "changed_by": by})  # fmt: skip
    return {"id": subscription_id, "secret": secret, "previous_secret_until": until}
