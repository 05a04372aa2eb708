"""Rebuilding the read model from the journal without stopping it: the journal is replayed, in chunks of
their own transactions, into copies of the read model's tables in the schema `rebuild` while the live
projection goes on; the events appended meanwhile are replayed after them; then one short transaction
replays the last few under a lock on the journal and swaps the copies in (ALTER TABLE … SET SCHEMA).
Views answer from the live tables all along and wait only for that swap.

The copies have the live tables' columns, indexes (same names), constraints and triggers, so the
adjacency and the counters the triggers keep are rebuilt with them. The replay runs the projector's own
statements (projection_store.apply) with `search_path` set to `rebuild, public`: unqualified names, the
trigger functions' included, resolve to the copies (PostgreSQL replans cached statements when the
search_path changes), while the journal, which has no copy, is read where it is.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from sqlalchemy import Connection, Engine, text

log = logging.getLogger(__name__)

SHADOW, RETIRED = "rebuild", "rebuild_retired"
TABLES = ("entities", "edges", "candidates", "adjacency", "adjacency_groups")
COUNTED = ("entities:%", "active:%", "edges")  # the stat_deltas keys the rebuilt tables' triggers keep
LOCK_KEY = 0x706C6174_72626C64  # pg_advisory_lock key: one rebuild at a time
ON_TABLE = re.compile(r" ON (?:public\.)?(\w+) ")

# (conn, after this position, at most this many) -> (events replayed, the last one's position)
Replay = Callable[[Connection, int, int], tuple[int, int]]


def _copy(conn: Connection, table: str) -> None:
    """A copy of a live table in the shadow schema: columns, defaults and checks, then its indexes under
    the same names, the constraints they back, and its triggers."""
    conn.execute(text(f"CREATE TABLE {SHADOW}.{table} (LIKE public.{table} INCLUDING DEFAULTS INCLUDING "
                      "CONSTRAINTS INCLUDING GENERATED INCLUDING STORAGE)"))  # fmt: skip
    indexes = conn.execute(
        text("""SELECT pg_get_indexdef(i.indexrelid) AS definition, c.conname, c.contype, ic.relname AS index
                  FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
                  LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid
                 WHERE i.indrelid = CAST(:t AS regclass)"""),
        {"t": f"public.{table}"},
    ).all()
    for definition, constraint, kind, index in indexes:
        conn.execute(text(ON_TABLE.sub(f" ON {SHADOW}.{table} ", definition, count=1)))
        if constraint is not None:
            what = {"p": "PRIMARY KEY", "u": "UNIQUE"}[kind]
            conn.execute(text(f"ALTER TABLE {SHADOW}.{table} ADD CONSTRAINT {constraint} {what} USING INDEX {index}"))
    triggers = conn.execute(
        text("SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = CAST(:t AS regclass) AND NOT tgisinternal"),
        {"t": f"public.{table}"},
    ).scalars()
    for definition in list(triggers):
        conn.execute(text(ON_TABLE.sub(f" ON {SHADOW}.{table} ", definition, count=1)))


def prepare(engine: Engine) -> None:
    """An empty shadow schema with copies of the read model's tables (what an interrupted rebuild left goes)."""
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {SHADOW} CASCADE"))
        conn.execute(text(f"DROP SCHEMA IF EXISTS {RETIRED} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {SHADOW}"))
        conn.execute(text(f"CREATE TABLE {SHADOW}.stat_deltas (LIKE public.stat_deltas INCLUDING ALL)"))
        for table in TABLES:
            _copy(conn, table)


def into_shadow(conn: Connection) -> None:
    conn.execute(text(f"SET LOCAL search_path TO {SHADOW}, public"))


def swap(conn: Connection) -> None:
    """Put the copies in place of the live tables (inside the caller's transaction), with their counts."""
    conn.execute(text("SET LOCAL search_path TO public"))
    keys = "ARRAY[" + ", ".join(f"'{k}'" for k in COUNTED) + "]"
    conn.execute(text(f"DELETE FROM public.stat_deltas WHERE key LIKE ANY ({keys})"))
    conn.execute(text(f"INSERT INTO public.stat_deltas (key, delta) SELECT key, sum(delta) FROM {SHADOW}.stat_deltas "
                      f"WHERE key LIKE ANY ({keys}) GROUP BY key"))  # fmt: skip
    conn.execute(text(f"CREATE SCHEMA {RETIRED}"))
    for table in TABLES:
        conn.execute(text(f"ALTER TABLE public.{table} SET SCHEMA {RETIRED}"))
    for table in TABLES:
        conn.execute(text(f"ALTER TABLE {SHADOW}.{table} SET SCHEMA public"))


def rebuild(engine: Engine, replay: Replay, batch: int = 20_000) -> int:
    """Rebuild the read model while it stays live; returns the events replayed. `replay(conn, after, at
    most)` replays journal events after a position into whatever the connection's search_path names."""
    with engine.connect() as holder:  # the advisory lock lives as long as this session
        if not holder.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY}).scalar_one():
            raise RuntimeError("another rebuild is running")
        try:
            return _rebuild(engine, replay, batch)
        finally:
            holder.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
            holder.commit()


def _rebuild(engine: Engine, replay: Replay, batch: int) -> int:
    prepare(engine)
    replayed, last = 0, -1
    while True:  # chunks, each its own transaction, until a chunk comes back short: caught up, nearly
        with engine.begin() as conn:
            into_shadow(conn)
            n, last = _chunk(conn, replay, last, batch)
        replayed += n
        log.info("rebuild: %d events replayed into the copies", replayed)
        if n < batch:
            break
    with engine.begin() as conn:  # the swap: what came meanwhile, then the copies take the live tables' place
        conn.execute(text("LOCK TABLE journal IN SHARE MODE"))  # projectors wait, views do not
        into_shadow(conn)
        while True:
            n, last = _chunk(conn, replay, last, batch)
            replayed += n
            if n < batch:
                break
        swap(conn)
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {RETIRED} CASCADE"))
        conn.execute(text(f"DROP SCHEMA {SHADOW} CASCADE"))
    return replayed


def _chunk(conn: Connection, replay: Replay, after: int, batch: int) -> tuple[int, int]:
    n, last = replay(conn, after, batch)
    return n, (last if n else after)
