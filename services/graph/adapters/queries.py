"""Read-side SQL for the graph views."""

from __future__ import annotations

import base64
from typing import Any

import orjson
from sqlalchemy import Connection, text

from platograph.ontology import Ontology
from platograph.views import (
    EdgePage,
    EdgeView,
    EntityPage,
    EntitySummary,
    EntityView,
    Neighbor,
    NeighborGroup,
    Neighborhood,
    SourcePaper,
)

ENTITY_COLUMNS = "id, type, status, name, description, text, attributes, version, created_at, updated_at"

NEIGHBORS_SQL = text(
    """
    WITH incident AS (
        SELECT target AS nid, type FROM edges
         WHERE source = :id AND NOT removed AND type <> 'extracted_from'
        UNION ALL
        SELECT source AS nid, type FROM edges WHERE target = :id AND NOT removed
    ), agg AS (
        SELECT nid, array_agg(DISTINCT type ORDER BY type) AS edge_types, count(*) AS edge_count
          FROM incident WHERE nid <> :id GROUP BY nid
    ), ranked AS (
        SELECT e.id, e.type, e.status, e.name, e.description, agg.edge_types, agg.edge_count,
               count(*) OVER (PARTITION BY e.type) AS group_count,
               row_number() OVER (PARTITION BY e.type ORDER BY agg.edge_count DESC, e.name, e.id) AS rank
          FROM agg JOIN entities e ON e.id = agg.nid AND e.version > 0
    )
    SELECT * FROM ranked
     WHERE (CAST(:group AS text) IS NULL OR type = :group) AND rank > :offset AND rank <= :offset + :limit
     ORDER BY type, rank
    """
)

SOURCE_SQL = text(
    """
    SELECT p.id, p.name, p.attributes FROM edges e JOIN entities p ON p.id = e.target AND p.version > 0
     WHERE e.source = :id AND e.type = 'extracted_from' AND NOT e.removed
     ORDER BY p.name, p.id LIMIT 1
    """
)


def encode_cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(value)).decode()


def decode_cursor(cursor: str | None) -> Any:
    """The value in a cursor; ValueError when the cursor was not made by us."""
    if cursor is None:
        return None
    try:
        return orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise ValueError("cursor is not valid") from exc


def get_entity(conn: Connection, entity_id: str) -> EntityView | None:
    row = (
        conn.execute(text(f"SELECT {ENTITY_COLUMNS} FROM entities WHERE id = :id AND version > 0"), {"id": entity_id})
        .mappings()
        .first()
    )
    return None if row is None else EntityView.model_validate(dict(row))


def list_entities(
    conn: Connection, *, entity_type: str | None, q: str | None, cursor: str | None, limit: int
) -> EntityPage:
    """Entities by id order, optionally of one type and matching q in name or text."""
    after = decode_cursor(cursor) or ""
    pattern = None if not q else "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    rows = (
        conn.execute(
            text(
                f"""SELECT {ENTITY_COLUMNS} FROM entities
                 WHERE version > 0 AND id > :after
                   AND (CAST(:type AS text) IS NULL OR type = :type)
                   AND (CAST(:q AS text) IS NULL OR name ILIKE :q OR text ILIKE :q)
                 ORDER BY id LIMIT :limit"""
            ),
            {"after": after, "type": entity_type, "q": pattern, "limit": limit + 1},
        )
        .mappings()
        .all()
    )
    items = [EntityView.model_validate(dict(r)) for r in rows[:limit]]
    next_cursor = encode_cursor(items[-1].id) if len(rows) > limit else None
    return EntityPage(items=items, next_cursor=next_cursor)


def source_paper(conn: Connection, entity_id: str) -> SourcePaper | None:
    row = conn.execute(SOURCE_SQL, {"id": entity_id}).mappings().first()
    if row is None:
        return None
    attrs = row["attributes"] or {}
    year = attrs.get("year")
    return SourcePaper(
        id=row["id"],
        name=row["name"],
        year=year if isinstance(year, int) else None,
        authors=[str(a) for a in attrs.get("authors", [])],
    )


def neighborhood(
    conn: Connection,
    ontology: Ontology,
    entity: EntityView,
    *,
    limit: int,
    group: str | None = None,
    cursor: str | None = None,
) -> Neighborhood:
    """The entity's typed neighbors grouped by type (ontology order), best-connected first."""
    offset = int(decode_cursor(cursor) or 0) if group else 0
    rows = (
        conn.execute(NEIGHBORS_SQL, {"id": entity.id, "group": group, "offset": offset, "limit": limit})
        .mappings()
        .all()
    )
    by_type: dict[str, list[Any]] = {}
    for row in rows:
        by_type.setdefault(row["type"], []).append(row)
    groups = []
    for entity_type, label in ontology.entity_types.items():
        members = by_type.get(entity_type)
        if not members:
            continue
        total = int(members[0]["group_count"])
        last_rank = int(members[-1]["rank"])
        groups.append(
            NeighborGroup(
                type=entity_type,
                label=label,
                count=total,
                neighbors=[
                    Neighbor(
                        entity=EntitySummary(
                            id=m["id"],
                            type=m["type"],
                            status=m["status"],
                            name=m["name"],
                            description=m["description"],
                        ),
                        edges=list(m["edge_types"]),
                        edge_count=int(m["edge_count"]),
                    )
                    for m in members
                ],
                next_cursor=encode_cursor(last_rank) if last_rank < total else None,
            )
        )
    return Neighborhood(entity=entity, source_paper=source_paper(conn, entity.id), neighborhood=groups)


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
    """Counts an operator looks at: entities by type, live edges, journal size, projector progress."""
    rows = conn.execute(text("SELECT type, count(*) FROM entities WHERE version > 0 GROUP BY type")).all()
    by_type: dict[str, int] = {str(t): int(n) for t, n in rows}
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
        "edges": int(edges),
        "journal_events": int(journal),
        "projectors": [dict(r) for r in tracking],
    }
