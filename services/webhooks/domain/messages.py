"""What an endpoint receives: which events, filtered how, in which body, retried when."""

from __future__ import annotations

import base64
import random
import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def entity_ids(event_type: str, payload: dict[str, Any]) -> list[str]:
    """The entities an event is about (in the order the body names them)."""
    if event_type.startswith("candidate."):
        return [payload["a"], payload["b"]]
    if event_type in ("entity.merged", "entity.unmerged"):
        return [payload["id"], payload["into"]]
    return []


def matches(
    event_type: str, ids: Sequence[str], score: float | None, subscription: dict[str, Any],
    types: Sequence[str] = (),
) -> bool:  # fmt: skip
    """Whether a subscription wants an event; an entity's type is the prefix of its id (`types`: the entity
    types an event names without entities, as threshold.changed names a type pair)."""
    if event_type not in subscription["event_types"]:
        return False
    wanted = subscription["entity_types"]
    if wanted and not any(t in wanted for t in [*(i.partition(":")[0] for i in ids), *types]):
        return False
    minimum = subscription["min_score"]
    return minimum is None or score is None or score >= minimum


def body(
    event_type: str, occurred_at: datetime, payload: dict[str, Any], briefs: dict[str, dict[str, Any]],
    score: float | None,
) -> dict[str, Any]:  # fmt: skip
    """`{type, timestamp, data}`; data names both entities (id, type, name) and carries the score."""
    ids = entity_ids(event_type, payload)
    data: dict[str, Any] = dict(payload)
    if event_type.startswith("candidate."):
        data["a"], data["b"] = (_brief(i, briefs) for i in ids)
        data["score"] = score
    elif ids:
        data["entity"], data["into"] = (_brief(i, briefs) for i in ids)
        data.pop("id", None)
    return {"type": event_type, "timestamp": occurred_at.isoformat(), "data": data}


def _brief(entity_id: str, briefs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    known = briefs.get(entity_id) or {}
    return {"id": entity_id, "type": entity_id.partition(":")[0], "name": known.get("name")}


def retry_delay(attempts: int, schedule: Sequence[float], jitter: float, rng: random.Random) -> float | None:
    """Seconds until the next attempt after `attempts` failed ones; None when the schedule is spent."""
    if attempts > len(schedule):
        return None
    return schedule[attempts - 1] * rng.uniform(1 - jitter, 1 + jitter)
