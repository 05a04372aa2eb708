"""The neighborhood view as one SQL statement that returns the finished JSON document.

Postgres builds the JSON (json_build_object / json_agg), so the graph service passes bytes through
instead of turning rows into objects and back: the view's cost is the query. The shape is
platograph.api.graph.Neighborhood; tests compare it with that model.

Asked for (`related_limit`), the document also carries `related_by_similarity` from the projected
candidates: the pairs the similarity service proposes (above their type pair's threshold, no typed edge,
not rejected), which follow the model that answers. Then the gateway needs no second call for a view.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from platograph.ontology import Ontology

RANKING = "edge_count desc, then name, then id"

SQL = """
WITH ent AS (
    SELECT id, type, status, name, description, text, attributes, version, created_at, updated_at, merged_into
      FROM entities WHERE id = %(id)s AND version > 0
), members AS (
    -- the entity and those merged into it: their edges show here, moved
    SELECT %(id)s::text AS id
    UNION ALL
    SELECT id FROM entities WHERE merged_into = %(id)s
), incident AS (
    SELECT 'out' AS dir, target AS nid, type FROM edges
     WHERE source IN (SELECT id FROM members) AND NOT removed AND (type <> 'extracted_from' OR source <> %(id)s)
    UNION ALL
    SELECT 'in', source, type FROM edges WHERE target IN (SELECT id FROM members) AND NOT removed
), mapped AS (
    -- a neighbor merged into another entity shows as that entity; a moved edge that repeats one is one edge.
    -- Only merged entities are joined (the partial index holds them): joining every neighbor row made the
    -- planner hash all entities whenever a hub's degree inflated its estimate (20 ms instead of 0.5).
    SELECT DISTINCT i.dir, COALESCE(n.merged_into, i.nid) AS nid, i.type
      FROM incident i
      LEFT JOIN (SELECT id, merged_into FROM entities WHERE merged_into IS NOT NULL) n ON n.id = i.nid
), agg AS (
    SELECT nid, array_agg(DISTINCT type ORDER BY type) AS edge_types, count(*) AS edge_count
      FROM mapped WHERE nid NOT IN (SELECT id FROM members) GROUP BY nid
), ranked AS (
    SELECT e.id, e.type, e.status, e.name, e.description, agg.edge_types, agg.edge_count,
           count(*) OVER (PARTITION BY e.type) AS group_count,
           row_number() OVER (PARTITION BY e.type ORDER BY agg.edge_count DESC, e.name, e.id) AS rank
      FROM agg JOIN entities e ON e.id = agg.nid AND e.version > 0
), page AS (
    SELECT * FROM ranked
     WHERE (%(group)s::text IS NULL OR type = %(group)s)
       AND rank > %(offset)s::int AND rank <= %(offset)s::int + %(limit)s::int
), groups AS (
    SELECT type, max(group_count) AS count, max(rank) AS last_rank,
           json_agg(json_build_object(
               'entity', json_build_object('id', id, 'type', type, 'status', status, 'name', name,
                                           'description', description),
               'edges', edge_types, 'edge_count', edge_count) ORDER BY rank) AS neighbors
      FROM page GROUP BY type
), related AS (
    SELECT o.id, o.type, o.status, o.name, o.description, c.score, c.kind, c.reason, c.suggested_edge,
           count(*) OVER () AS total
      FROM candidates c
      JOIN entities o ON o.id = CASE WHEN c.a = %(id)s THEN c.b ELSE c.a END AND o.version > 0
     WHERE (c.a = %(id)s OR c.b = %(id)s) AND c.status = 'proposed' AND c.position > 0
       AND (%(related_min)s::float8 IS NULL OR c.score >= %(related_min)s::float8)
     ORDER BY c.score DESC, o.id
     LIMIT %(related_limit)s::int
), source AS (
    SELECT p.id, p.name, p.attributes FROM edges e JOIN entities p ON p.id = e.target AND p.version > 0
     WHERE e.source = %(id)s AND e.type = 'extracted_from' AND NOT e.removed
     ORDER BY p.name, p.id LIMIT 1
)
SELECT json_build_object(
    'entity', (SELECT row_to_json(ent) FROM ent),
    'source_paper', (SELECT json_build_object(
        'id', id, 'name', name,
        'year', CASE WHEN jsonb_typeof(attributes -> 'year') = 'number' THEN (attributes ->> 'year')::int END,
        'authors', CASE WHEN jsonb_typeof(attributes -> 'authors') = 'array' THEN attributes -> 'authors'
                        ELSE '[]'::jsonb END,
        'edge', 'extracted_from') FROM source),
    'neighborhood', COALESCE((
        SELECT json_agg(json_build_object(
            'type', g.type, 'label', (%(labels)s::text[])[array_position(%(types)s::text[], g.type)],
            'count', g.count, 'neighbors', g.neighbors,
            'next_cursor', CASE WHEN g.last_rank < g.count THEN 'r' || g.last_rank END)
            ORDER BY array_position(%(types)s::text[], g.type))
          FROM groups g), '[]'::json),
    'ranking', %(ranking)s::text{related}
)::text
 WHERE EXISTS (SELECT 1 FROM ent)
"""


RELATED = """,
    'related_by_similarity', json_build_object(
        'threshold', %(related_threshold)s::float8,
        'count', COALESCE((SELECT max(total) FROM related), 0),
        'items', COALESCE((SELECT json_agg(json_build_object(
            'entity', json_build_object('id', id, 'type', type, 'status', status, 'name', name,
                                        'description', description),
            'score', score, 'kind', kind, 'reason', reason, 'suggested_edge', suggested_edge)
            ORDER BY score DESC, id) FROM related), '[]'::json))"""


def compact(sql: str) -> str:
    """The statement without comments and runs of spaces: psycopg caches its parse of a query only up to
    4,096 characters (MAX_CACHED_STATEMENT_LENGTH), and the view's statement, as written, is longer."""
    lines = (line.split("--", 1)[0].strip() for line in sql.splitlines())
    return " ".join(line for line in lines if line)


WITH_RELATED = compact(SQL.replace("{related}", RELATED))
WITHOUT_RELATED = compact(SQL.replace("{related}", ""))


def parse_group_cursor(cursor: str | None) -> int:
    """The rank a group page starts after; ValueError for a cursor we did not make."""
    if cursor is None:
        return 0
    if not cursor.startswith("r") or not cursor[1:].isdigit():
        raise ValueError("cursor is not valid")
    return int(cursor[1:])


@dataclass(frozen=True)
class Related:
    """Which candidates to show as related by similarity: at most `limit`, score ≥ `min_score` (None: every
    proposed one, each already above its type pair's threshold), reported under `threshold`."""

    limit: int
    min_score: float | None
    threshold: float | None


def statement_and_params(
    ontology: Ontology,
    entity_id: str,
    *,
    limit: int,
    group: str | None,
    cursor: str | None,
    related: Related | None = None,
) -> tuple[str, dict[str, Any]]:
    """The view's SQL and its parameters; ValueError for a cursor we did not make."""
    params = {
        "id": entity_id,
        "group": group,
        "offset": parse_group_cursor(cursor) if group else 0,
        "limit": limit,
        "types": list(ontology.entity_types),
        "labels": list(ontology.entity_types.values()),
        "ranking": RANKING,
        "related_limit": related.limit if related else 0,
        "related_min": related.min_score if related else None,
        "related_threshold": related.threshold if related else None,
    }
    return (WITH_RELATED if related else WITHOUT_RELATED), params
