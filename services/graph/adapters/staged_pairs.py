"""SQL for the pairs a re-embed's new model would propose (staged by the similarity service's diff shards)
and the lean pair lists its candidates' follow-up pages through. See migration 0010."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, text

SAMPLE = 10

STAGE_SQL = text("""INSERT INTO staged_pairs (tag, a, b, score)
                    SELECT :tag, a, b, score FROM unnest(CAST(:a AS text[]), CAST(:b AS text[]),
                                                        CAST(:score AS real[])) AS p(a, b, score)
                    ON CONFLICT DO NOTHING""")

# Every staged pair against every proposed candidate: gained (staged only), lost (proposed only), re-scored
# (both). Postgres does the join on disk: no process holds either side.
CHANGES = """
SELECT coalesce(s.a, c.a) AS a, coalesce(s.b, c.b) AS b, c.score AS old, s.score AS new,
       CASE WHEN c.a IS NULL THEN 'gained' WHEN s.a IS NULL THEN 'lost' ELSE 'rescored' END AS change
  FROM (SELECT a, b, score FROM staged_pairs WHERE tag = :tag) s
  FULL JOIN (SELECT a, b, score FROM candidates WHERE status = 'proposed' AND position > 0) c
    ON s.a = c.a AND s.b = c.b
"""
COUNTS_SQL = text(f"""
SELECT change, least(split_part(a, ':', 1), split_part(b, ':', 1)) || '|' ||
               greatest(split_part(a, ':', 1), split_part(b, ':', 1)) AS types, count(*) AS n
  FROM ({CHANGES}) AS changes GROUP BY 1, 2 ORDER BY 2, 1""")
SAMPLE_SQL = text(f"""
SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY change ORDER BY md5(a || '|' || b)) AS k
                 FROM ({CHANGES}) AS changes) AS ranked
 WHERE k <= :sample ORDER BY change, k""")


def stage(conn: Connection, tag: str, pairs: list[tuple[str, str, float]]) -> int:
    """Add pairs (each as (a, b) with a < b) under a tag; one already staged is kept. Returns those added."""
    if not pairs:
        return 0
    a, b, score = (list(column) for column in zip(*pairs, strict=True))
    return int(conn.execute(STAGE_SQL, {"tag": tag, "a": a, "b": b, "score": score}).rowcount)


def diff(conn: Connection, tag: str) -> dict[str, Any]:
    """Counts of gained, lost and re-scored pairs, by type pair, with a sample of each (the same every time)."""
    totals = {"gained": 0, "lost": 0, "rescored": 0}
    by_pair: dict[str, dict[str, int]] = {}
    for row in conn.execute(COUNTS_SQL, {"tag": tag}):
        totals[row.change] += row.n
        by_pair.setdefault(row.types, {})[row.change] = row.n
    sample: dict[str, list[dict[str, Any]]] = {"gained": [], "lost": [], "rescored": []}
    for row in conn.execute(SAMPLE_SQL, {"tag": tag, "sample": SAMPLE}):
        if row.change == "rescored":
            sample["rescored"].append({"a": row.a, "b": row.b, "old": round(row.old, 4), "new": round(row.new, 4)})
        else:
            score = row.new if row.change == "gained" else row.old
            sample[row.change].append({"a": row.a, "b": row.b, "score": round(score, 4)})
    return totals | {"by_type_pair": by_pair, "sample": sample}


def drop(conn: Connection, tag: str) -> int:
    return int(conn.execute(text("DELETE FROM staged_pairs WHERE tag = :tag"), {"tag": tag}).rowcount)


def candidate_pairs(
    conn: Connection,
    *,
    status: str,
    model: str | None,
    model_not: str | None,
    after: tuple[str, str] | None,
    limit: int,
) -> list[tuple[str, str]]:
    """Candidate pairs in (a, b) order after a pair, filtered by status and by (or other than) a model."""
    sql = text("""SELECT a, b FROM candidates
                   WHERE status = :status AND position > 0
                     AND (CAST(:model AS text) IS NULL OR model = :model)
                     AND (CAST(:model_not AS text) IS NULL OR model <> :model_not)
                     AND (a, b) > (:after_a, :after_b)
                   ORDER BY a, b LIMIT :limit""")
    after_a, after_b = after or ("", "")
    params = {"status": status, "model": model, "model_not": model_not, "after_a": after_a, "after_b": after_b,
              "limit": limit}  # fmt: skip
    return [(row.a, row.b) for row in conn.execute(sql, params)]


def count_candidates(conn: Connection, *, status: str, model: str | None) -> int:
    sql = text("""SELECT count(*) FROM candidates WHERE status = :status AND position > 0
                     AND (CAST(:model AS text) IS NULL OR model = :model)""")
    return int(conn.execute(sql, {"status": status, "model": model}).scalar_one())
