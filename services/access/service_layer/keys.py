"""Making, listing, revoking and recognising API keys."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from platograph.api.access import KeyIn, KeyMade, KeyPage, KeyView, Principal, key_digest
from services.access.adapters import store
from services.access.domain import keys


def create(engine: Engine, body: KeyIn) -> KeyMade:
    """Make a key; the reply is the only place the key itself ever appears."""
    key = keys.new_key()
    row = {"id": keys.new_id(), "name": body.name, "owner": body.owner or body.name, "key_hash": key_digest(key),
           "scopes": sorted(set(body.scopes)), "read_rate": body.read_rate, "write_rate": body.write_rate}  # fmt: skip
    with engine.begin() as conn:
        made = store.create(conn, row)
    return KeyMade.model_validate(made | {"key": key})


def page(engine: Engine, cursor: str | None, limit: int) -> KeyPage:
    with engine.connect() as conn:
        found = store.page(conn, cursor, limit)
    return KeyPage(items=[KeyView.model_validate(r) for r in found["items"]], next_cursor=found["next_cursor"])


def revoke(engine: Engine, key_id: str) -> KeyView | None:
    """Revoke a key; None when there is no such key."""
    with engine.begin() as conn:
        if not store.revoke(conn, key_id):
            return None
        row: dict[str, Any] | None = store.get(conn, key_id)
    return None if row is None else KeyView.model_validate(row)


def recognise(engine: Engine, key_hash: str) -> Principal | None:
    """Who a key (by its hash) speaks for; None for an unknown or revoked key."""
    with engine.connect() as conn:
        row = store.by_hash(conn, key_hash)
    return None if row is None else Principal.model_validate(row)
