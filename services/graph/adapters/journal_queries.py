"""Reading the journal back as stream entries: what a consumer group created after a trim missed."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, text

from platograph.positions import entry_id_of, event_position
from services.graph.adapters.projection_store import JOURNAL_COLUMNS

SELECT = f"SELECT {', '.join(JOURNAL_COLUMNS)} FROM journal"


def entries(conn: Connection, *, after: str | None, until: str, limit: int) -> dict[str, Any]:
    """Journal events grouped back into their stream entries, in stream order: entries after `after` up to
    and including `until`, about `limit` events a page (an entry is never split). `next` pages on."""
    low = 0 if after is None else event_position(after, 0) + 10**5
    high = event_position(until, 0) + 10**5
    rows = conn.execute(
        text(f"{SELECT} WHERE position >= :low AND position < :high ORDER BY position LIMIT :limit"),
        {"low": low, "high": high, "limit": limit},
    ).mappings().all()  # fmt: skip
    rows = list(rows)
    if len(rows) == limit:  # the page may end inside an entry: take the rest of it
        last = int(rows[-1]["position"])
        end = event_position(entry_id_of(last), 0) + 10**5
        rows += conn.execute(
            text(f"{SELECT} WHERE position > :last AND position < :end ORDER BY position"), {"last": last, "end": end}
        ).mappings().all()  # fmt: skip
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        envelope = {k: row[k] for k in ("event_id", "type", "schema_version", "occurred_at", "producer", "payload")}
        grouped.setdefault(row["stream_id"], []).append(envelope)
    items = [{"id": entry_id, "events": events} for entry_id, events in grouped.items()]
    return {"items": items, "next_after": items[-1]["id"] if len(rows) >= limit else None}
