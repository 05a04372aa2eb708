"""The journal's partitions: one a month by position (a position starts with the stream entry's
milliseconds: platograph.positions), so a month of events is one table an operator can archive, and a
read of a position range touches only the months it covers.

Migration 0009 made the journal partitioned: what it held became `journal_0` (every position up to the
start of the month after the migration); `journal_default` catches a position no partition covers (made
ahead by `ensure`, so normally none). Event ids stay unique across partitions through `journal_ids`, which
the projector inserts into first (projection_store.INSERT_JOURNAL).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)
MONTHS_AHEAD = 2  # partitions made beyond the current month: a projector restarted within them needs none
LOCK_TIMEOUT = "2s"  # making a partition locks the journal briefly; behind a long read it waits for a later turn


def month_start(year: int, month: int) -> int:
    """The first position of a month (UTC)."""
    year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp() * 1000) * 10**12


def name(year: int, month: int) -> str:
    year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
    return f"journal_{year:04d}_{month:02d}"


def existing(conn: Connection) -> set[str]:
    rows = conn.execute(text("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                             "WHERE i.inhparent = 'journal'::regclass"))  # fmt: skip
    return {row[0] for row in rows}


def ensure(conn: Connection, now: datetime | None = None, ahead: int = MONTHS_AHEAD) -> list[str]:
    """Make the partitions of this month and the next `ahead` ones where missing; returns those made. A
    month the history partition already covers, or one whose rows already went to the default partition,
    is left as it is (its rows stay where they are)."""
    now = now or datetime.now(UTC)
    have = existing(conn)
    made: list[str] = []
    for k in range(ahead + 1):
        table = name(now.year, now.month + k)
        if table in have:
            continue
        low, high = month_start(now.year, now.month + k), month_start(now.year, now.month + k + 1)
        try:
            with conn.begin_nested():
                conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
                conn.execute(text(f"CREATE TABLE {table} PARTITION OF journal FOR VALUES FROM ({low}) TO ({high})"))
            made.append(table)
        except DBAPIError as exc:  # overlaps journal_0, rows of it in the default partition, or a lock not had
            log.info("journal partition %s not made: %s", table, str(exc.orig).splitlines()[0])
    return made
