"""Accepting a validated request: wrap payloads in envelopes, honour idempotency keys, append.

With an Idempotency-Key the event ids are derived from the key, so even a retry that arrives after
the stored reply expired (or a crash between append and remember) cannot change the graph twice:
the graph journal is unique by event id.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from typing import Any

from platograph.contracts import Actor, EdgeAdded, EntityUpserted, Envelope, Frozen, new_envelopes
from services.ingest.adapters.event_log import EventLog
from services.ingest.domain.validation import InvalidInput, error

PRODUCER = "ingest"
IDEMPOTENCY_NAMESPACE = uuid.UUID("6f1d3c1e-0d7b-4b7c-9d8e-2f5a8c1b9e10")
MISSING_ENDPOINT_POLICY = (
    "An edge is stored even when an endpoint does not exist yet; it appears in views as soon as both "
    "endpoints exist. GET /v1/edges?dangling=true lists edges still waiting for an endpoint."
)


def request_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def envelopes_for(
    payloads: Sequence[Frozen], key: str | None, body_hash: str, actor: Actor | None = None
) -> list[Envelope]:
    """Envelopes for payloads; ids are uuid5(key, body, index) when an idempotency key is given."""
    if key is None:
        return new_envelopes(payloads, producer=PRODUCER, actor=actor)
    ids = [uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{key}\n{body_hash}\n{i}") for i in range(len(payloads))]
    return new_envelopes(payloads, producer=PRODUCER, event_ids=ids, actor=actor)


def describe(payloads: Sequence[EntityUpserted | EdgeAdded], envelopes: list[Envelope], full: bool) -> dict[str, Any]:
    """The reply body: ids of what was accepted (only counts for imports, which can be huge)."""
    entities = [p.id for p in payloads if isinstance(p, EntityUpserted)]
    edges = [{"source": p.source, "type": p.type, "target": p.target} for p in payloads if isinstance(p, EdgeAdded)]
    reply: dict[str, Any] = {"entity_count": len(entities), "edge_count": len(edges), "event_count": len(envelopes)}
    if full:
        reply |= {"entities": entities, "edges": edges, "event_ids": [str(e.event_id) for e in envelopes]}
    if edges:
        reply["missing_endpoints"] = MISSING_ENDPOINT_POLICY
    return reply


async def accept(
    payloads: Sequence[EntityUpserted | EdgeAdded],
    *,
    log: EventLog,
    key: str | None,
    body_hash: str,
    events_per_entry: int,
    ttl_s: int,
    full: bool = True,
    actor: Actor | None = None,
) -> dict[str, Any]:
    """Append the payloads' events and return the 202 reply (the stored one for a repeated key)."""
    if key is not None:
        stored = await log.recall(key)
        if stored is not None:
            if stored.get("request_hash") != body_hash:
                msg = "this Idempotency-Key was used with a different request body"
                raise InvalidInput([error(["header", "Idempotency-Key"], msg, "idempotency_conflict")])
            return dict(stored["reply"]) | {"replayed": True}
    envelopes = envelopes_for(payloads, key, body_hash, actor)
    entries = [envelopes[i : i + events_per_entry] for i in range(0, len(envelopes), events_per_entry)]
    entry_ids = await log.append(entries)
    reply = describe(payloads, envelopes, full) | {
        "position": entry_ids[-1],
        "replayed": False,
    }
    if key is not None:
        await log.remember(key, {"request_hash": body_hash, "reply": reply}, ttl_s)
    return reply
