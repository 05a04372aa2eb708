"""SQL for API keys."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.dialects.postgresql import insert

from platograph.cursors import decode_cursor, encode_cursor
from services.access.adapters.tables import ApiKey

COLUMNS = "id, name, owner, scopes, read_rate, write_rate, created_at, revoked_at"


def create(conn: Connection, row: dict[str, Any]) -> dict[str, Any]:
    conn.execute(insert(ApiKey).values(**row))
    found = get(conn, row["id"])
    assert found is not None  # written in this transaction
    return found


def get(conn: Connection, key_id: str) -> dict[str, Any] | None:
    row = conn.execute(text(f"SELECT {COLUMNS} FROM api_keys WHERE id = :id"), {"id": key_id}).mappings().first()
    return dict(row) if row else None


def by_hash(conn: Connection, key_hash: str) -> dict[str, Any] | None:
    """A key that has not been revoked, by the hash of the key."""
    sql = text(f"SELECT {COLUMNS} FROM api_keys WHERE key_hash = :hash AND revoked_at IS NULL")
    row = conn.execute(sql, {"hash": key_hash}).mappings().first()
    return dict(row) if row else None


def page(conn: Connection, cursor: str | None, limit: int) -> dict[str, Any]:
    """Keys in id order (revoked ones too, saying when)."""
    after = decode_cursor(cursor)
    sql = text(f"""SELECT {COLUMNS} FROM api_keys WHERE (CAST(:after AS text) IS NULL OR id > :after)
                   ORDER BY id LIMIT :limit""")
    rows = [dict(r) for r in conn.execute(sql, {"after": after[0] if after else None, "limit": limit + 1}).mappings()]
    more = len(rows) > limit
    return {"items": rows[:limit], "next_cursor": encode_cursor([rows[limit - 1]["id"]]) if more else None}


def revoke(conn: Connection, key_id: str) -> bool:
    """Revoke a key (once: a revoked key keeps its first revocation time); False when there is none."""
    sql = text("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE id = :id")
    return bool(conn.execute(sql, {"id": key_id}).rowcount)
