"""Read-side SQL for candidates and for what the similarity service must not propose."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, text

from platograph.cursors import decode_cursor, encode_cursor

LINKED_SQL = text(
    """
    SELECT source AS id, target AS other, 'edge' AS why FROM edges WHERE source = ANY(:ids) AND NOT removed
    UNION SELECT target, source, 'edge' FROM edges WHERE target = ANY(:ids) AND NOT removed
    UNION SELECT a, b, 'rejected' FROM candidates WHERE a = ANY(:ids) AND decision = 'rejected'
    UNION SELECT b, a, 'rejected' FROM candidates WHERE b = ANY(:ids) AND decision = 'rejected'
    """
)


def linked(conn: Connection, ids: list[str]) -> dict[str, dict[str, list[str]]]:
    """For each id: the ids joined to it by a live typed edge, and those a person rejected as candidates."""
    out: dict[str, dict[str, list[str]]] = {i: {"edge": [], "rejected": []} for i in ids}
    for row in conn.execute(LINKED_SQL, {"ids": ids}):
        out[row.id][row.why].append(row.other)
    return out


CANDIDATES_SQL = """
SELECT c.a, c.b, c.score, c.kind, c.reason, c.suggested_edge, c.model, c.status, c.state_reason, c.decision,
       c.decided_by, c.decided_at, c.created_at, c.updated_at,
       json_build_object('id', ea.id, 'type', ea.type, 'status', ea.status, 'name', ea.name,
                         'description', ea.description) AS a_entity,
       json_build_object('id', eb.id, 'type', eb.type, 'status', eb.status, 'name', eb.name,
                         'description', eb.description) AS b_entity
  FROM candidates c
  JOIN entities ea ON ea.id = c.a AND ea.version > 0
  JOIN entities eb ON eb.id = c.b AND eb.version > 0
 WHERE c.position > 0 AND (CAST(:status AS text) IS NULL OR c.status = :status)
   AND (CAST(:kind AS text) IS NULL OR c.kind = :kind)
   AND c.score >= :min_score AND c.score <= :max_score
   AND (CAST(:entity AS text) IS NULL OR c.a = :entity OR c.b = :entity)
   AND (CAST(:ta AS text) IS NULL OR (c.a_type = :ta AND c.b_type = :tb) OR (c.a_type = :tb AND c.b_type = :ta))
   AND (CAST(:pair_a AS text) IS NULL OR (c.a = :pair_a AND c.b = :pair_b))
   AND (c.score, c.a, c.b) {op} (:after_score, :after_a, :after_b)
 ORDER BY c.score DESC, c.a DESC, c.b DESC
 LIMIT :limit
"""


def list_candidates(
    conn: Connection,
    *,
    status: str | None,
    kind: str | None,
    min_score: float,
    max_score: float,
    entity: str | None,
    type_pair: tuple[str, str] | None,
    cursor: str | None,
    limit: int,
    pair: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """Candidates best score first, with both entities; `next_cursor` pages on."""
    after = decode_cursor(cursor)
    ta, tb = type_pair or (None, None)
    after_score, after_a, after_b = after if after else (2.0, "", "")
    params = {
        "status": status, "kind": kind, "min_score": min_score, "max_score": max_score, "entity": entity,
        "ta": ta, "tb": tb, "limit": limit + 1,
        "after_score": after_score, "after_a": after_a, "after_b": after_b,
        "pair_a": pair[0] if pair else None, "pair_b": pair[1] if pair else None,
    }  # fmt: skip
    sql = CANDIDATES_SQL.format(op="<" if after else "<>")
    rows = conn.execute(text(sql), params).mappings().all()
    items = [
        {
            "a": r["a_entity"],
            "b": r["b_entity"],
            "score": r["score"],
            "kind": r["kind"],
            "reason": r["reason"],
            "suggested_edge": r["suggested_edge"],
            "model": r["model"],
            "status": r["status"],
            "status_reason": r["state_reason"],
            "decided_by": r["decided_by"],
            "decided_at": r["decided_at"],
            "created_at": r["created_at"],
            "updated_at": r["updated_at"],
        }  # fmt: skip
        for r in rows[:limit]
    ]
    last = rows[limit - 1] if len(rows) > limit else None
    return {"items": items, "next_cursor": encode_cursor([last["score"], last["a"], last["b"]]) if last else None}


def get_pair(conn: Connection, a: str, b: str) -> dict[str, Any] | None:
    """One candidate by pair, in either order."""
    low, high = (a, b) if a < b else (b, a)
    page = list_candidates(conn, status=None, kind=None, min_score=-1.0, max_score=1.0, entity=None,
                           type_pair=None, cursor=None, limit=1, pair=(low, high))  # fmt: skip
    return page["items"][0] if page["items"] else None


def briefs(conn: Connection, ids: list[str], pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Names of entities and scores of candidate pairs, for messages that mention them."""
    entities = {
        row.id: {"id": row.id, "type": row.type, "name": row.name, "status": row.status}
        for row in conn.execute(
            text("SELECT id, type, name, status FROM entities WHERE id = ANY(:ids) AND version > 0"), {"ids": ids}
        )
    }
    scores: dict[str, float] = {}
    if pairs:
        sql = text("""SELECT a, b, score FROM candidates
                      WHERE (a, b) IN (SELECT * FROM unnest(CAST(:a AS text[]), CAST(:b AS text[])))""")
        rows = conn.execute(sql, {"a": [p[0] for p in pairs], "b": [p[1] for p in pairs]})
        scores = {f"{row.a}|{row.b}": row.score for row in rows}
    return {"entities": entities, "scores": scores}


MERGE_PREVIEW_SQL = text(
    """
    WITH live AS (
        SELECT source, type, target, description,
               CASE WHEN source = :id THEN :into ELSE source END AS new_source,
               CASE WHEN target = :id THEN :into ELSE target END AS new_target
          FROM edges WHERE (source = :id OR target = :id) AND NOT removed
    )
    SELECT l.source, l.type, l.target, l.new_source, l.new_target,
           CASE WHEN l.new_source = l.new_target THEN 'dropped: self-loop'
                WHEN EXISTS (SELECT 1 FROM edges e WHERE NOT e.removed AND e.type = l.type
                                AND e.source = l.new_source AND e.target = l.new_target) THEN 'dropped: duplicate'
                ELSE 'moved' END AS fate
      FROM live l ORDER BY l.type, l.source, l.target
    """
)


def merge_preview(conn: Connection, entity_id: str, into: str) -> dict[str, Any]:
    """What merging entity_id into `into` would do to edges and candidates (nothing is changed)."""
    edges = [dict(r) for r in conn.execute(MERGE_PREVIEW_SQL, {"id": entity_id, "into": into}).mappings()]
    withdrawn = conn.execute(
        text("SELECT a, b FROM candidates WHERE (a = :id OR b = :id) AND status = 'proposed' ORDER BY a, b"),
        {"id": entity_id},
    )
    return {
        "edges": edges,
        "moved": sum(e["fate"] == "moved" for e in edges),
        "dropped": sum(e["fate"] != "moved" for e in edges),
        "candidates_withdrawn": [{"a": r.a, "b": r.b} for r in withdrawn],
    }


def review_state(conn: Connection, cursor: str | None, limit: int) -> dict[str, Any]:
    """People's standing decisions and merges, as the gateway's decision log holds them, paged: what it
    is rebuilt from when Redis lost it (Postgres, projected from the journal, is their source of truth).
    The decisions come first (by pair), then the merges (by entity)."""
    kind, after, after_b = decode_cursor(cursor) or ["decision", "", ""]
    out: dict[str, Any] = {"decisions": [], "merges": [], "next_cursor": None}
    if kind == "decision":  # keyset on the primary key (a, b)
        rows = conn.execute(
            text("""SELECT a, b, decision, decided_by FROM candidates
                                     WHERE (a, b) > (:a, :b) AND decision IS NOT NULL
                                     ORDER BY a, b LIMIT :limit"""),
            {"a": after, "b": after_b, "limit": limit},
        )
        out["decisions"] = [[r.a, r.b, r.decision, r.decided_by or ""] for r in rows]
        last = out["decisions"][-1] if len(out["decisions"]) == limit else None
        out["next_cursor"] = encode_cursor(["decision", last[0], last[1]] if last else ["merge", "", ""])
        return out
    rows = conn.execute(text("""SELECT id, merged_into FROM entities WHERE merged_into IS NOT NULL AND id > :after
                                 ORDER BY id LIMIT :limit"""), {"after": after, "limit": limit})  # fmt: skip
    out["merges"] = [[r.id, r.merged_into] for r in rows]
    if len(out["merges"]) == limit:
        out["next_cursor"] = encode_cursor(["merge", out["merges"][-1][0], ""])
    return out
