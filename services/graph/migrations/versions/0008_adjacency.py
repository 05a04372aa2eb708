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

from platograph.migrating import concurrently, in_steps

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

# A new pair copies its neighbour's attributes in the insert itself, under a shared lock on the neighbour's
# bucket taken before the insert reads them; a change of an entity's attributes takes its bucket exclusively.
ADD_KEYS = """
  PERFORM pg_advisory_xact_lock_shared(b) FROM (
    SELECT DISTINCT hashtext(n) & {buckets} AS b FROM ({added}) AS k ORDER BY 1) AS s;
  WITH added AS ({added})
  INSERT INTO adjacency AS a (x, n, edge_keys, edge_count, n_type, n_name, n_visible, n_merged)
  SELECT d.x, d.n, d.keys, d.counted, coalesce(e.type, ''), coalesce(e.name, ''), coalesce(e.version > 0, false),
         coalesce(e.merged_into IS NOT NULL, false)
    FROM (SELECT x, n, array_agg(k ORDER BY k) AS keys, count(*) FILTER (WHERE k NOT LIKE 'e:%') AS counted
            FROM added GROUP BY x, n) AS d
    LEFT JOIN entities e ON e.id = d.n
   ORDER BY d.x, d.n
  ON CONFLICT (x, n) DO UPDATE
     SET edge_keys = ARRAY(SELECT DISTINCT u FROM unnest(a.edge_keys || excluded.edge_keys) u ORDER BY u),
         edge_count = (SELECT count(DISTINCT u) FROM unnest(a.edge_keys || excluded.edge_keys) u WHERE {counted});
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

NEIGHBOUR_ATTRIBUTES = """
  PERFORM pg_advisory_xact_lock(b) FROM (
    SELECT DISTINCT hashtext(id) & {buckets} AS b FROM ({changed}) AS c ORDER BY 1) AS s;
  -- the rows whose neighbour is e are the mirror images of e's own rows (every edge gives both): found
  -- through the primary key, so no index on n has to be kept up on every insert
  UPDATE adjacency a
     SET n_type = e.type, n_name = e.name, n_visible = e.version > 0, n_merged = e.merged_into IS NOT NULL
    FROM ({changed}) e JOIN adjacency mirror ON mirror.x = e.id
   WHERE a.x = mirror.n AND a.n = e.id
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


_OLD_KEYS, _NEW_KEYS = KEYS.format(rows="old_rows"), KEYS.format(rows="new_rows")
UPDATE_BODY = ADD_KEYS.format(added=f"SELECT * FROM ({_NEW_KEYS}) a EXCEPT SELECT * FROM ({_OLD_KEYS}) b",
                              counted=COUNTED, buckets=BUCKETS) + REMOVE_KEYS.format(
    removed=f"SELECT * FROM ({_OLD_KEYS}) a EXCEPT SELECT * FROM ({_NEW_KEYS}) b", counted=COUNTED)  # fmt: skip


STEP_KEYS = 20_000  # adjacency keys a backfill step adds: about 0.1 s of holding the tables
SHARE_LOCKED = "SELECT set_config('lock_timeout', '2s', true)"  # a step that waits longer goes again
IN_RANGE = "(CAST(:lo AS text) IS NULL OR {c} >= :lo) AND (CAST(:hi AS text) IS NULL OR {c} < :hi)"
BACKFILL = f"""INSERT INTO adjacency AS a (x, n, edge_keys, edge_count, n_type, n_name, n_visible, n_merged)
    SELECT k.x, k.n, array_agg(k.k ORDER BY k.k), count(*) FILTER (WHERE k.k NOT LIKE 'e:%'),
           coalesce(min(e.type), ''), coalesce(min(e.name), ''), coalesce(bool_or(e.version > 0), false),
           coalesce(bool_or(e.merged_into IS NOT NULL), false)
      FROM (SELECT source AS x, target AS n, CASE WHEN type = 'extracted_from' THEN 'e:' ELSE 'o:' END || type AS k
              FROM edges WHERE NOT removed AND source <> target AND {IN_RANGE.format(c="source")}
            UNION ALL
            SELECT target, source, 'i:' || type
              FROM edges WHERE NOT removed AND source <> target AND {IN_RANGE.format(c="target")}) k
      LEFT JOIN entities e ON e.id = k.n
     GROUP BY k.x, k.n ORDER BY k.x, k.n
    ON CONFLICT (x, n) DO UPDATE
       SET edge_keys = ARRAY(SELECT DISTINCT u FROM unnest(a.edge_keys || excluded.edge_keys) u ORDER BY u),
           edge_count = (SELECT count(DISTINCT u) FROM unnest(a.edge_keys || excluded.edge_keys) u
                          WHERE u NOT LIKE 'e:%')"""


def _function(name: str, body: str) -> None:
    # Each statement is driven by the transition table, a batch: a hash or merge join would read the whole
    # of adjacency (or entities) for it, where the primary key finds each row.
    op.execute(f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql "
               f"SET enable_hashjoin = off SET enable_mergejoin = off AS $$ BEGIN {body} RETURN NULL; END $$")  # fmt: skip


def _trigger(name: str, table: str, event: str, tables: str) -> None:
    referencing = f"REFERENCING {tables}" if tables else ""
    op.execute(f"CREATE OR REPLACE TRIGGER {name} AFTER {event} ON {table} {referencing} FOR EACH STATEMENT "
               f"EXECUTE FUNCTION {name}()")  # fmt: skip


def upgrade() -> None:
    # The tables the triggers go on, locked up front in the order projectors take them: taken one trigger
    # at a time, a projector holding entities while it waits for edges would deadlock with this.
    op.execute("LOCK TABLE entities, edges IN SHARE ROW EXCLUSIVE MODE")
    op.execute("""CREATE TABLE IF NOT EXISTS adjacency (
        x text NOT NULL, n text NOT NULL, edge_keys text[] NOT NULL, edge_count int NOT NULL,
        n_type text NOT NULL DEFAULT '', n_name text NOT NULL DEFAULT '',
        n_visible boolean NOT NULL DEFAULT false, n_merged boolean NOT NULL DEFAULT false,
        PRIMARY KEY (x, n))""")
    op.execute("""CREATE TABLE IF NOT EXISTS adjacency_groups (
        x text NOT NULL, n_type text NOT NULL, count bigint NOT NULL, PRIMARY KEY (x, n_type))""")
    add, remove = partial(ADD_KEYS.format, counted=COUNTED, buckets=BUCKETS), partial(REMOVE_KEYS.format, counted=COUNTED)
    _function("adjacency_edges_insert", add(added=_NEW_KEYS))
    _trigger("adjacency_edges_insert", "edges", "INSERT", "NEW TABLE AS new_rows")
    _function("adjacency_edges_update", UPDATE_BODY)
    _trigger("adjacency_edges_update", "edges", "UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows")
    _function("adjacency_edges_delete", remove(removed=_OLD_KEYS))
    _trigger("adjacency_edges_delete", "edges", "DELETE", "OLD TABLE AS old_rows")
    _function("adjacency_edges_truncate", "TRUNCATE adjacency, adjacency_groups;")
    _trigger("adjacency_edges_truncate", "edges", "TRUNCATE", "")

    _function("adjacency_entities_insert", NEIGHBOUR_ATTRIBUTES.format(changed="SELECT * FROM new_rows", buckets=BUCKETS))
    _trigger("adjacency_entities_insert", "entities", "INSERT", "NEW TABLE AS new_rows")
    changed = """SELECT n.* FROM new_rows n JOIN old_rows o ON o.id = n.id
                  WHERE (n.type, n.name, n.version > 0, n.merged_into IS NOT NULL)
                        IS DISTINCT FROM (o.type, o.name, o.version > 0, o.merged_into IS NOT NULL)"""
    _function("adjacency_entities_update", NEIGHBOUR_ATTRIBUTES.format(changed=changed, buckets=BUCKETS))
    _trigger("adjacency_entities_update", "entities", "UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows")

    for event, parts in (("insert", [("new_rows", 1)]), ("update", [("old_rows", -1), ("new_rows", 1)]),
                         ("delete", [("old_rows", -1)])):  # fmt: skip
        union = " UNION ALL ".join(GROUP_ROWS.format(sign=sign, rows=rows) for rows, sign in parts)
        tables = " ".join(f"{'OLD' if rows == 'old_rows' else 'NEW'} TABLE AS {rows}" for rows, _ in parts)
        _function(f"adjacency_groups_{event}", GROUPS.format(parts=union))
        _trigger(f"adjacency_groups_{event}", "adjacency", event.upper(), tables)

    # What is there already, online: the triggers above are committed first, so every change from then on
    # is kept by them; the edges already there are added range by range of x, each range in a short
    # transaction holding edges and entities against writes (SHARE) while it reads them, merged into what
    # the triggers added meanwhile (key sets: adding a key twice changes nothing). The group counts follow
    # from adjacency's own triggers. (Done in one transaction before: 3.7 s to compute and 1.6 s to index
    # 635,000 edges on 2 cores, with projectors waiting throughout.)
    in_steps([SHARE_LOCKED, "LOCK TABLE entities, edges IN SHARE MODE", BACKFILL],
             "SELECT source FROM edges UNION ALL SELECT target FROM edges", STEP_KEYS)
    # The order a page is read in: most edges first, then name, then id (-edge_count, so that a keyset
    # cursor is one row comparison the index can seek to).
    concurrently("ix_adjacency_page", "ON adjacency (x, n_type, (-edge_count), n_name, n) "
                 "WHERE n_visible AND edge_count > 0")  # fmt: skip
    concurrently("ix_adjacency_merged", "ON adjacency (x) WHERE n_merged")


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
