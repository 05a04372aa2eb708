"""Read-side SQL for the graph views."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, text

from platograph.api.graph import EdgePage, EdgeView, EntityPage, EntityView
from platograph.cursors import decode_cursor, encode_cursor

ENTITY_COLUMNS = "id, type, status, name, description, text, attributes, version, created_at, updated_at, merged_into"


def entity_row(conn: Connection, entity_id: str) -> dict[str, Any] | None:
    """The entity as a plain dict (the hot path skips model validation)."""
    row = (
        conn.execute(text(f"SELECT {ENTITY_COLUMNS} FROM entities WHERE id = :id AND version > 0"), {"id": entity_id})
        .mappings()
        .first()
    )
    return None if row is None else dict(row)


def get_entity(conn: Connection, entity_id: str) -> EntityView | None:
    row = entity_row(conn, entity_id)
    return None if row is None else EntityView.model_validate(row)


def list_entities(
    conn: Connection, *, entity_type: str | None, q: str | None, cursor: str | None, limit: int
) -> EntityPage:
    """Entities by id order, optionally of one type and matching q in name or text."""
    after = decode_cursor(cursor) or ""
    params: dict[str, object] = {"after": after, "type": entity_type, "limit": limit + 1}
    matching = ""
    if q:  # its own statement: a plan made for "no q" would not use the trigram indexes (migration 0006)
        params["q"] = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        matching = "AND (name ILIKE :q OR text ILIKE :q)"
    sql = f"""SELECT {ENTITY_COLUMNS} FROM entities
               WHERE version > 0 AND id > :after AND (CAST(:type AS text) IS NULL OR type = :type) {matching}
               ORDER BY id LIMIT :limit"""
    rows = conn.execute(text(sql), params).mappings().all()
    items = [EntityView.model_validate(dict(r)) for r in rows[:limit]]
    next_cursor = encode_cursor(items[-1].id) if len(rows) > limit else None
    return EntityPage(items=items, next_cursor=next_cursor)


def dangling_edges(conn: Connection, *, cursor: str | None, limit: int) -> EdgePage:
    """Live edges with at least one endpoint that does not exist (yet)."""
    after = decode_cursor(cursor) or ["", "", ""]
    rows = (
        conn.execute(
            text(
                """SELECT e.source, e.type, e.target, e.description, e.created_at FROM edges e
                 LEFT JOIN entities s ON s.id = e.source AND s.version > 0
                 LEFT JOIN entities t ON t.id = e.target AND t.version > 0
                WHERE NOT e.removed AND (s.id IS NULL OR t.id IS NULL)
                  AND (e.source, e.type, e.target) > (:s, :ty, :t)
                ORDER BY e.source, e.type, e.target LIMIT :limit"""
            ),
            {"s": after[0], "ty": after[1], "t": after[2], "limit": limit + 1},
        )
        .mappings()
        .all()
    )
    items = [EdgeView.model_validate(dict(r)) for r in rows[:limit]]
    next_cursor = encode_cursor([items[-1].source, items[-1].type, items[-1].target]) if len(rows) > limit else None
    return EdgePage(items=items, next_cursor=next_cursor)


def stats(conn: Connection) -> dict[str, Any]:
    """Counts an operator looks at: entities by type (any status) and active ones, live edges, journal size,
    projector progress."""
    rows = conn.execute(
        text(
            "SELECT type, count(*), count(*) FILTER (WHERE status = 'active')"
            " FROM entities WHERE version > 0 GROUP BY type"
        )
    ).all()
    by_type: dict[str, int] = {str(t): int(n) for t, n, _ in rows}
    active = sum(int(a) for _, _, a in rows)
    edges = conn.execute(text("SELECT count(*) FROM edges WHERE NOT removed")).scalar_one()
    journal = conn.execute(text("SELECT count(*) FROM journal")).scalar_one()
    tracking = (
        conn.execute(
            text("SELECT consumer, last_stream_id, events, updated_at FROM projection_tracking ORDER BY consumer")
        )
        .mappings()
        .all()
    )
    return {
        "entities": by_type,
        "active_entities": active,
        "edges": int(edges),
        "journal_events": int(journal),
        "projectors": [dict(r) for r in tracking],
    }
