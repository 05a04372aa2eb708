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


FOLD_AFTER = 1000  # delta rows past which a read folds them into one row per key

COUNTERS = "SELECT key, sum(delta) AS n, count(*) AS rows FROM stat_deltas GROUP BY key"
FOLD = """WITH gone AS (DELETE FROM stat_deltas RETURNING key, delta)
          INSERT INTO stat_deltas (key, delta) SELECT key, sum(delta) FROM gone GROUP BY key"""


def counters(conn: Connection) -> dict[str, int]:
    """The maintained counters (migration 0007: triggers add deltas as the read model changes)."""
    rows = conn.execute(text(COUNTERS)).all()
    if sum(int(r.rows) for r in rows) > FOLD_AFTER:
        # Rows a concurrent transaction adds meanwhile are not in this snapshot: they are neither deleted
        # nor summed, so nothing is lost or counted twice.
        conn.execute(text(FOLD))
        conn.commit()
    return {str(r.key): int(r.n) for r in rows}


def stats(conn: Connection) -> dict[str, Any]:
    """Counts an operator looks at: entities by type (any status) and active ones, live edges, journal size,
    projector progress. Maintained, not counted: the home page shows them on every visit."""
    counts = counters(conn)
    by_type = {k.removeprefix("entities:"): n for k, n in counts.items() if k.startswith("entities:") and n}
    active = sum(n for k, n in counts.items() if k.startswith("active:"))
    edges, journal = counts.get("edges", 0), counts.get("journal", 0)
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
