"""The neighborhood view as one SQL statement that returns the finished JSON document.

Postgres builds the JSON (json_build_object / json_agg), so the graph service passes bytes through
instead of turning rows into objects and back: the view's cost is the query. The shape is
platograph.api.graph.Neighborhood; tests compare it with that model.

Three statements give the same document. FAST reads the groups' pages from `adjacency` (migration 0008:
per entity and neighbour, kept as the edges change) in its index's order, so any page of a hub with
100,000 neighbours reads about the page, and a group's next page is a keyset cursor (edge count, name and
id of the last neighbour shown). For an entity that has entities merged into it, or neighbours merged away
(their edges show moved, which `adjacency` does not model), it answers `fast = false`, and MERGED answers:
it recomputes the few rows the merges touch and reads the rest as FAST does. EXACT, the statement of
earlier versions, computes the view from the edges: it answers their rank cursors (`r<rank>`), and is the
reference the tests compare the other two against.

Asked for (`related_limit`), the document also carries `related_by_similarity` from the projected
candidates: the pairs the similarity service proposes (above their type pair's threshold, no typed edge,
not rejected), which follow the model that answers. Then the gateway needs no second call for a view.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from platograph.cursors import decode_cursor
from platograph.ontology import Ontology

RANKING = "edge_count desc, then name, then id"

ENTITY = """
WITH ent AS (
    SELECT id, type, status, name, description, text, attributes, version, created_at, updated_at, merged_into
      FROM entities WHERE id = %(id)s AND version > 0
)"""

# Each statement's neighbour part ends in `groups` (type, count, neighbors, next_cursor) and `fast`.
EXACT_GROUPS = """, members AS (
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
    SELECT type, max(group_count) AS count,
           json_agg(json_build_object(
               'entity', json_build_object('id', id, 'type', type, 'status', status, 'name', name,
                                           'description', description),
               'edges', edge_types, 'edge_count', edge_count) ORDER BY rank) AS neighbors,
           CASE WHEN max(rank) < max(group_count) THEN 'r' || max(rank) END AS next_cursor
      FROM page GROUP BY type
), fast AS (SELECT true AS ok)"""

# The ranking key of a row and the cursor's bound, shared by both scans of `adjacency`.
AFTER = """(%(after_count)s::int IS NULL
     OR (-{count}, {name}, {id}) > (-%(after_count)s::int, %(after_name)s::text, %(after_id)s::text))"""
TYPES_OF = "ARRAY(SELECT DISTINCT substr(k, 3) FROM unnest({keys}) k WHERE k NOT LIKE 'e:%%' ORDER BY 1)"

FAST_GROUPS = f""", fast AS (
    SELECT NOT EXISTS (SELECT 1 FROM entities WHERE merged_into = %(id)s)
           AND NOT EXISTS (SELECT 1 FROM adjacency WHERE x = %(id)s AND n_merged) AS ok
), grp AS (
    SELECT n_type AS type, count FROM adjacency_groups
     WHERE x = %(id)s AND count > 0 AND (%(group)s::text IS NULL OR n_type = %(group)s)
), picked AS (
    -- one more than the page, in the index's order, from the cursor on: whether there is a next page
    SELECT g.type, g.count, p.* FROM grp g CROSS JOIN LATERAL (
        SELECT a.n, a.edge_count, {TYPES_OF.format(keys="a.edge_keys")} AS edge_types, a.n_name FROM adjacency a
         WHERE a.x = %(id)s AND a.n_type = g.type AND a.n_visible AND a.edge_count > 0
           AND {AFTER.format(count="a.edge_count", name="a.n_name", id="a.n")}
         ORDER BY -a.edge_count, a.n_name, a.n LIMIT %(limit)s::int + 1) p
){{page}}"""

# Merges move edges: the entity's view shows those of the entities merged into it, and a neighbour merged
# into another shows as that one. Only the rows such moves touch are recomputed (from the members' rows and
# the rows to merged neighbours, few); every other row is read from the index as FAST does.
MERGED_GROUPS = f""", fast AS (SELECT true AS ok
), mem AS (
    SELECT %(id)s::text AS id UNION ALL SELECT id FROM entities WHERE merged_into = %(id)s
), moving AS (
    SELECT a.x, a.n, a.edge_keys FROM adjacency a WHERE a.x IN (SELECT id FROM mem) AND a.x <> %(id)s
    UNION ALL SELECT a.x, a.n, a.edge_keys FROM adjacency a WHERE a.x = %(id)s AND a.n_merged
), landed AS (
    SELECT m.x, COALESCE(e.merged_into, m.n) AS n, m.edge_keys FROM moving m
      LEFT JOIN entities e ON e.id = m.n AND e.merged_into IS NOT NULL
), touched AS (
    SELECT x, n, edge_keys FROM landed
    UNION ALL SELECT a.x, a.n, a.edge_keys FROM adjacency a
     WHERE a.x = %(id)s AND NOT a.n_merged AND a.n IN (SELECT n FROM landed)
), fixed AS (
    -- a member's own extracted_from edges show (only the entity's own are its source paper)
    SELECT t.n, count(DISTINCT k.k) AS edge_count, array_agg(DISTINCT substr(k.k, 3)) AS edge_types
      FROM touched t CROSS JOIN LATERAL unnest(t.edge_keys) AS u(key)
      CROSS JOIN LATERAL (SELECT CASE WHEN u.key NOT LIKE 'e:%%' THEN u.key
                                      WHEN t.x <> %(id)s THEN 'o:' || substr(u.key, 3) END AS k) k
     WHERE k.k IS NOT NULL AND t.n NOT IN (SELECT id FROM mem) GROUP BY t.n
), fixed_rows AS (
    SELECT f.n, e.type, f.edge_count, f.edge_types, e.name AS n_name
      FROM fixed f JOIN entities e ON e.id = f.n AND e.version > 0
), skip AS (
    -- neighbours whose row here is not the view's: recomputed, or members (merged neighbours: n_merged)
    SELECT n FROM fixed UNION SELECT id FROM mem
), grp AS (
    SELECT type, sum(c) AS count FROM (
        SELECT n_type AS type, count AS c FROM adjacency_groups WHERE x = %(id)s
        UNION ALL SELECT a.n_type, -1 FROM adjacency a
         WHERE a.x = %(id)s AND a.n_merged AND a.n_visible AND a.edge_count > 0
        UNION ALL SELECT a.n_type, -1 FROM adjacency a
         WHERE a.x = %(id)s AND a.n IN (SELECT n FROM skip) AND NOT a.n_merged AND a.n_visible
           AND a.edge_count > 0
        UNION ALL SELECT type, 1 FROM fixed_rows) AS s
     WHERE %(group)s::text IS NULL OR type = %(group)s GROUP BY type HAVING sum(c) > 0
), picked AS (
    SELECT g.type, g.count, p.* FROM grp g CROSS JOIN LATERAL (
        SELECT * FROM (
            (SELECT a.n, a.edge_count, {TYPES_OF.format(keys="a.edge_keys")} AS edge_types, a.n_name
               FROM adjacency a
              WHERE a.x = %(id)s AND a.n_type = g.type AND a.n_visible AND a.edge_count > 0 AND NOT a.n_merged
                AND a.n NOT IN (SELECT n FROM skip) AND {AFTER.format(count="a.edge_count", name="a.n_name", id="a.n")}
              ORDER BY -a.edge_count, a.n_name, a.n LIMIT %(limit)s::int + 1)
            UNION ALL
            SELECT f.n, f.edge_count::int, f.edge_types, f.n_name FROM fixed_rows f
             WHERE f.type = g.type AND {AFTER.format(count="f.edge_count", name="f.n_name", id="f.n")}
        ) AS u ORDER BY -edge_count, n_name, n LIMIT %(limit)s::int + 1) p
){{page}}"""

PAGE = """, page AS (
    SELECT p.*, e.status, e.description,
           row_number() OVER (PARTITION BY p.type ORDER BY -p.edge_count, p.n_name, p.n) AS pos
      FROM picked p JOIN entities e ON e.id = p.n
), groups AS (
    SELECT type, max(count) AS count,
           json_agg(json_build_object(
               'entity', json_build_object('id', n, 'type', type, 'status', status, 'name', n_name,
                                           'description', description),
               'edges', edge_types, 'edge_count', edge_count) ORDER BY pos)
               FILTER (WHERE pos <= %(limit)s::int) AS neighbors,
           -- the cursor: the key of the last neighbour shown, as base64url JSON (platograph.cursors)
           translate(encode(convert_to(CASE WHEN max(pos) > %(limit)s::int THEN max(json_build_array(
               edge_count, n_name, n)::text) FILTER (WHERE pos = %(limit)s::int) END, 'UTF8'), 'base64'),
               E'+/\\n', '-_') AS next_cursor
      FROM page GROUP BY type
)"""
FAST_GROUPS = FAST_GROUPS.replace("{page}", PAGE)
MERGED_GROUPS = MERGED_GROUPS.replace("{page}", PAGE)

TAIL = """, related AS (
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
SELECT (SELECT ok FROM fast), json_build_object(
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
            'count', g.count, 'neighbors', g.neighbors, 'next_cursor', g.next_cursor)
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
    4,096 characters (MAX_CACHED_STATEMENT_LENGTH), and the view's statements, as written, are longer."""
    lines = (line.split("--", 1)[0].strip() for line in sql.splitlines())
    return " ".join(line for line in lines if line)


def _statement(groups: str, related: bool) -> str:
    return compact(ENTITY + groups + TAIL.replace("{related}", RELATED if related else ""))


FAST = {True: _statement(FAST_GROUPS, True), False: _statement(FAST_GROUPS, False)}
MERGED = {True: _statement(MERGED_GROUPS, True), False: _statement(MERGED_GROUPS, False)}
EXACT = {True: _statement(EXACT_GROUPS, True), False: _statement(EXACT_GROUPS, False)}


def parse_group_cursor(cursor: str | None) -> tuple[int, tuple[int, str, str] | None]:
    """(rank offset, keyset key) a group page starts after: a key for our cursors, a rank for the `r<rank>`
    ones of earlier versions; ValueError for a cursor we did not make."""
    if cursor is None:
        return 0, None
    if cursor.startswith("r") and cursor[1:].isdigit():
        return int(cursor[1:]), None
    key = decode_cursor(cursor)
    if not (isinstance(key, list) and len(key) == 3 and isinstance(key[0], int) and not isinstance(key[0], bool)
            and isinstance(key[1], str) and isinstance(key[2], str)):  # fmt: skip
        raise ValueError("cursor is not valid")
    return 0, (key[0], key[1], key[2])


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
) -> tuple[str, str | None, dict[str, Any]]:
    """The view's statements (the one to try first, and EXACT when FAST answers `fast = false`; None
    when the first is EXACT already) and their parameters; ValueError for a cursor we did not make."""
    offset, key = parse_group_cursor(cursor) if group else (0, None)
    params = {
        "id": entity_id,
        "group": group,
        "offset": offset,
        "after_count": key[0] if key else None,
        "after_name": key[1] if key else None,
        "after_id": key[2] if key else None,
        "limit": limit,
        "types": list(ontology.entity_types),
        "labels": list(ontology.entity_types.values()),
        "ranking": RANKING,
        "related_limit": related.limit if related else 0,
        "related_min": related.min_score if related else None,
        "related_threshold": related.threshold if related else None,
    }
    if offset:  # a rank cursor: only EXACT counts ranks
        return EXACT[related is not None], None, params
    return FAST[related is not None], MERGED[related is not None], params
