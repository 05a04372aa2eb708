"""adjacency: per entity and neighbour, the edges between them, kept as the edges change, so that a page of a
hub's neighbourhood reads about the page (an index in the view's order) instead of every incident edge

`adjacency` holds, for each ordered pair (x, n) joined by live edges, the keys of those edges as x sees them:
'o:<type>' for x → n, 'i:<type>' for n → x, and 'e:extracted_from' for x's own extracted_from edges (x's
source paper, not a neighbour of x; but a neighbour of what x is merged into), which `edge_count` leaves
out. It also holds n's type, name, visibility (version > 0) and whether n is merged away.
`adjacency_groups` counts each x's visible neighbours by type. Statement triggers keep both: the edges' by
adding and removing keys (deltas, which concurrent projectors may apply in any order), the entities' by
copying a neighbour's attributes. The copy is never stale: a new pair reads an existing neighbour under a
share lock on its row (a rename waits for it, or it for the rename), and a neighbour not yet projected
under an advisory lock on its bucket, which inserting entities take in shared mode (the insert waits for
the pair's transaction, or the pair for the insert's). Merges are not modelled here: the view corrects the
few rows they move (services/graph/adapters/neighborhood_sql.py).

Revision ID: 0008
Revises: 0007
"""
from functools import partial

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# The keys each edge row gives its source and its target; self-loops join nothing.
KEYS = """SELECT source AS x, target AS n,
                 CASE WHEN type = 'extracted_from' THEN 'e:' ELSE 'o:' END || type AS k
            FROM {rows} WHERE NOT removed AND source <> target
          UNION ALL
          SELECT target, source, 'i:' || type FROM {rows} WHERE NOT removed AND source <> target"""
COUNTED = "u NOT LIKE 'e:%'"  # the keys edge_count counts
BUCKETS = 127  # advisory lock buckets (hashtext(id) & BUCKETS): few, so a bulk insert takes few locks

ADD_KEYS = """
  WITH added AS ({added}),
  up AS (
    INSERT INTO adjacency AS a (x, n, edge_keys, edge_count)
    SELECT x, n, array_agg(k ORDER BY k), count(*) FILTER (WHERE k NOT LIKE 'e:%') FROM added u
     GROUP BY x, n ORDER BY x, n
    ON CONFLICT (x, n) DO UPDATE
       SET edge_keys = ARRAY(SELECT DISTINCT u FROM unnest(a.edge_keys || excluded.edge_keys) u ORDER BY u),
           edge_count = (SELECT count(DISTINCT u) FROM unnest(a.edge_keys || excluded.edge_keys) u
                          WHERE {counted})
    RETURNING x, n, xmax = 0 AS inserted)
  SELECT coalesce(array_agg(x ORDER BY n, x), '{{}}'), coalesce(array_agg(n ORDER BY n, x), '{{}}')
    INTO new_x, new_n FROM up WHERE inserted;
  IF cardinality(new_n) > 0 THEN
    PERFORM pg_advisory_xact_lock(b) FROM (
      SELECT DISTINCT hashtext(n) & {buckets} AS b FROM unnest(new_n) AS n
       WHERE NOT EXISTS (SELECT 1 FROM entities e WHERE e.id = n) ORDER BY 1) AS s;
    PERFORM 1 FROM entities WHERE id = ANY (new_n) ORDER BY id FOR SHARE;
    UPDATE adjacency a
       SET n_type = e.type, n_name = e.name, n_visible = e.version > 0, n_merged = e.merged_into IS NOT NULL
      FROM unnest(new_x, new_n) AS p(x, n) JOIN entities e ON e.id = p.n
     WHERE a.x = p.x AND a.n = p.n;
  END IF;
"""

REMOVE_KEYS = """
  PERFORM 1 FROM adjacency a JOIN ({removed}) r ON a.x = r.x AND a.n = r.n ORDER BY a.x, a.n FOR UPDATE OF a;
  UPDATE adjacency a
     SET edge_keys = ARRAY(SELECT u FROM unnest(a.edge_keys) u WHERE u <> ALL (r.keys) ORDER BY u),
         edge_count = (SELECT count(*) FROM unnest(a.edge_keys) u WHERE u <> ALL (r.keys) AND {counted})
    FROM (SELECT x, n, array_agg(k) AS keys FROM ({removed}) d GROUP BY x, n) r
   WHERE a.x = r.x AND a.n = r.n;
  DELETE FROM adjacency a USING (SELECT DISTINCT x, n FROM ({removed}) d) r
   WHERE a.x = r.x AND a.n = r.n AND cardinality(a.edge_keys) = 0;
"""

NEW_ENTITIES = """
  PERFORM pg_advisory_xact_lock_shared(b) FROM (
    SELECT DISTINCT hashtext(id) & {buckets} AS b FROM new_rows ORDER BY 1) AS s;
"""

NEIGHBOUR_ATTRIBUTES = """
  UPDATE adjacency a
     SET n_type = e.type, n_name = e.name, n_visible = e.version > 0, n_merged = e.merged_into IS NOT NULL
    FROM ({changed}) e
   WHERE a.n = e.id
     AND (a.n_type, a.n_name, a.n_visible, a.n_merged)
         IS DISTINCT FROM (e.type, e.name, e.version > 0, e.merged_into IS NOT NULL);
"""

GROUPS = """
  INSERT INTO adjacency_groups AS g (x, n_type, count)
  SELECT x, n_type, sum(d) FROM (
    {parts}
  ) AS s GROUP BY x, n_type HAVING sum(d) <> 0 ORDER BY x, n_type
  ON CONFLICT (x, n_type) DO UPDATE SET count = g.count + excluded.count;
"""
GROUP_ROWS = "SELECT x, n_type, {sign} AS d FROM {rows} WHERE n_visible AND edge_count > 0"


def _function(name: str, body: str, declare: str = "") -> None:
    op.execute(f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ {declare} BEGIN {body} "
               "RETURN NULL; END $$")  # fmt: skip


def _trigger(name: str, table: str, event: str, tables: str) -> None:
    referencing = f"REFERENCING {tables}" if tables else ""
    op.execute(f"CREATE TRIGGER {name} AFTER {event} ON {table} {referencing} FOR EACH STATEMENT "
               f"EXECUTE FUNCTION {name}()")  # fmt: skip


def upgrade() -> None:
    op.execute("""CREATE TABLE adjacency (
        x text NOT NULL, n text NOT NULL, edge_keys text[] NOT NULL, edge_count int NOT NULL,
        n_type text NOT NULL DEFAULT '', n_name text NOT NULL DEFAULT '',
        n_visible boolean NOT NULL DEFAULT false, n_merged boolean NOT NULL DEFAULT false,
        PRIMARY KEY (x, n))""")
    op.execute("""CREATE TABLE adjacency_groups (
        x text NOT NULL, n_type text NOT NULL, count bigint NOT NULL, PRIMARY KEY (x, n_type))""")
    # What is there already (before the triggers: a migration runs while nothing else writes).
    op.execute(f"""INSERT INTO adjacency (x, n, edge_keys, edge_count, n_type, n_name, n_visible, n_merged)
        SELECT k.x, k.n, array_agg(k.k ORDER BY k.k), count(*) FILTER (WHERE k.k NOT LIKE 'e:%'),
               coalesce(min(e.type), ''),
               coalesce(min(e.name), ''), coalesce(bool_or(e.version > 0), false),
               coalesce(bool_or(e.merged_into IS NOT NULL), false)
          FROM ({KEYS.format(rows="edges")}) k LEFT JOIN entities e ON e.id = k.n GROUP BY k.x, k.n""")
    op.execute("""INSERT INTO adjacency_groups (x, n_type, count)
        SELECT x, n_type, count(*) FROM adjacency WHERE n_visible AND edge_count > 0 GROUP BY x, n_type""")
    # The order a page is read in: most edges first, then name, then id (-edge_count, so that a keyset
    # cursor is one row comparison the index can seek to).
    op.execute("CREATE INDEX ix_adjacency_page ON adjacency (x, n_type, (-edge_count), n_name, n) "
               "WHERE n_visible AND edge_count > 0")  # fmt: skip
    op.execute("CREATE INDEX ix_adjacency_n ON adjacency (n)")
    op.execute("CREATE INDEX ix_adjacency_merged ON adjacency (x) WHERE n_merged")

    declare = "DECLARE new_x text[]; new_n text[];"
    old_keys, new_keys = KEYS.format(rows="old_rows"), KEYS.format(rows="new_rows")
    add, remove = partial(ADD_KEYS.format, counted=COUNTED, buckets=BUCKETS), partial(REMOVE_KEYS.format, counted=COUNTED)
    _function("adjacency_edges_insert", add(added=new_keys), declare)
    _trigger("adjacency_edges_insert", "edges", "INSERT", "NEW TABLE AS new_rows")
    _function(
        "adjacency_edges_update",
        add(added=f"SELECT * FROM ({new_keys}) a EXCEPT SELECT * FROM ({old_keys}) b")
        + remove(removed=f"SELECT * FROM ({old_keys}) a EXCEPT SELECT * FROM ({new_keys}) b"),
        declare,
    )
    _trigger("adjacency_edges_update", "edges", "UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows")
    _function("adjacency_edges_delete", remove(removed=old_keys))
    _trigger("adjacency_edges_delete", "edges", "DELETE", "OLD TABLE AS old_rows")
    _function("adjacency_edges_truncate", "TRUNCATE adjacency, adjacency_groups;")
    _trigger("adjacency_edges_truncate", "edges", "TRUNCATE", "")

    _function("adjacency_entities_insert", NEW_ENTITIES.format(buckets=BUCKETS)
              + NEIGHBOUR_ATTRIBUTES.format(changed="SELECT * FROM new_rows"))  # fmt: skip
    _trigger("adjacency_entities_insert", "entities", "INSERT", "NEW TABLE AS new_rows")
    changed = """SELECT n.* FROM new_rows n JOIN old_rows o ON o.id = n.id
                  WHERE (n.type, n.name, n.version > 0, n.merged_into IS NOT NULL)
                        IS DISTINCT FROM (o.type, o.name, o.version > 0, o.merged_into IS NOT NULL)"""
    _function("adjacency_entities_update", NEIGHBOUR_ATTRIBUTES.format(changed=changed))
    _trigger("adjacency_entities_update", "entities", "UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows")

    for event, parts in (("insert", [("new_rows", 1)]), ("update", [("old_rows", -1), ("new_rows", 1)]),
                         ("delete", [("old_rows", -1)])):  # fmt: skip
        union = " UNION ALL ".join(GROUP_ROWS.format(sign=sign, rows=rows) for rows, sign in parts)
        tables = " ".join(f"{'OLD' if rows == 'old_rows' else 'NEW'} TABLE AS {rows}" for rows, _ in parts)
        _function(f"adjacency_groups_{event}", GROUPS.format(parts=union))
        _trigger(f"adjacency_groups_{event}", "adjacency", event.upper(), tables)


def downgrade() -> None:
    for table, events in (("edges", ("insert", "update", "delete", "truncate")), ("entities", ("insert", "update")),
                          ("adjacency", ())):  # fmt: skip
        for event in events:
            op.execute(f"DROP TRIGGER IF EXISTS adjacency_{table}_{event} ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS adjacency_{table}_{event}()")
    for event in ("insert", "update", "delete"):
        op.execute(f"DROP TRIGGER IF EXISTS adjacency_groups_{event} ON adjacency")
        op.execute(f"DROP FUNCTION IF EXISTS adjacency_groups_{event}()")
    op.execute("DROP TABLE adjacency_groups")
    op.execute("DROP TABLE adjacency")
