"""The evidence meter of a hypothesis or a claim: what supports it and what contradicts it.

Supporting: entities with a live `supports` or `evidence_for` edge to it. Contradicting: entities joined to
it by a live `contradicts` edge, either way, and proposed candidates whose wording shows a reversal (the
similarity service suggests `contradicts` for those): a person has not typed that edge yet. Each side is
counted and its first `limit` entities listed, typed edges before candidates, then by name and id. One
statement, returning the JSON the view splices in; the edges' indexes (source first, target first) and the
candidates' (a first, b first) find the rows.
"""

from __future__ import annotations

from services.graph.adapters.neighborhood_sql import compact

#: The entity types the view carries an evidence meter for.
EVIDENCE_TYPES = frozenset({"hypothesis", "claim"})

SQL = compact("""
WITH supporting AS (
    SELECT DISTINCT ON (s.id) s.id, s.type, s.status, s.name, s.description, e.type AS edge, 'edge' AS via
      FROM edges e JOIN entities s ON s.id = e.source AND s.version > 0
     WHERE e.target = %(id)s AND e.type IN ('supports', 'evidence_for') AND NOT e.removed AND e.source <> e.target
     ORDER BY s.id, e.type
), contradicting AS (
    SELECT DISTINCT ON (o.id) o.id, o.type, o.status, o.name, o.description, 'contradicts' AS edge, via
      FROM (SELECT e.target AS other, 'edge' AS via FROM edges e
             WHERE e.source = %(id)s AND e.type = 'contradicts' AND NOT e.removed
            UNION ALL SELECT e.source, 'edge' FROM edges e
             WHERE e.target = %(id)s AND e.type = 'contradicts' AND NOT e.removed
            UNION ALL SELECT c.b, 'candidate' FROM candidates c
             WHERE c.a = %(id)s AND c.status = 'proposed' AND c.suggested_edge = 'contradicts'
            UNION ALL SELECT c.a, 'candidate' FROM candidates c
             WHERE c.b = %(id)s AND c.status = 'proposed' AND c.suggested_edge = 'contradicts') AS x
      JOIN entities o ON o.id = x.other AND o.version > 0 AND o.id <> %(id)s
     ORDER BY o.id, x.via DESC -- 'edge' before 'candidate'
)
SELECT json_build_object(
    'supporting', json_build_object('count', (SELECT count(*) FROM supporting), 'items', COALESCE((
        SELECT json_agg(json_build_object(
                   'entity', json_build_object('id', id, 'type', type, 'status', status, 'name', name,
                                               'description', description),
                   'edge', edge, 'via', via) ORDER BY via DESC, name, id)
          FROM (SELECT * FROM supporting ORDER BY via DESC, name, id LIMIT %(limit)s) s), '[]'::json)),
    'contradicting', json_build_object('count', (SELECT count(*) FROM contradicting), 'items', COALESCE((
        SELECT json_agg(json_build_object(
                   'entity', json_build_object('id', id, 'type', type, 'status', status, 'name', name,
                                               'description', description),
                   'edge', edge, 'via', via) ORDER BY via DESC, name, id)
          FROM (SELECT * FROM contradicting ORDER BY via DESC, name, id LIMIT %(limit)s) c), '[]'::json))
)::text
""")
