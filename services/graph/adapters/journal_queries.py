"""Reading the journal back as stream entries: what a consumer group created after a trim missed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

from platograph.cursors import decode_cursor, encode_cursor
from platograph.positions import entry_id_of, event_position
from services.graph.adapters.projection_store import JOURNAL_COLUMNS

SELECT = f"SELECT {', '.join(JOURNAL_COLUMNS)} FROM journal"
ENVELOPE_FIELDS = ("event_id", "type", "schema_version", "occurred_at", "producer", "payload", "actor")


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
        envelope = {k: row[k] for k in ENVELOPE_FIELDS}
        grouped.setdefault(row["stream_id"], []).append(envelope)
    items = [{"id": entry_id, "events": events} for entry_id, events in grouped.items()]
    return {"items": items, "next_after": items[-1]["id"] if len(rows) >= limit else None}


AUDIT = """
SELECT event_id, position, type, occurred_at, producer, actor, payload FROM journal
WHERE (CAST(:actor AS text) IS NULL OR actor->>'id' = :actor OR actor->>'name' = :actor)
  AND (CAST(:type AS text) IS NULL OR type = :type)
  AND (CAST(:since AS timestamptz) IS NULL OR occurred_at >= :since)
  AND (CAST(:before AS numeric) IS NULL OR position < :before)
ORDER BY position DESC LIMIT :limit
"""


def audit(
    conn: Connection, *, actor: str | None, type: str | None, since: datetime | None, cursor: str | None, limit: int
) -> dict[str, Any]:
    """Journal events newest first, filtered by who caused them, their type and time; ValueError for a
    cursor we did not make."""
    raw = decode_cursor(cursor)
    if raw is not None and not (isinstance(raw, str) and raw.isdigit()):
        raise ValueError("cursor is not valid")
    before = None if raw is None else int(raw)  # positions pass 64 bits: a cursor carries them as text
    params = {"actor": actor, "type": type, "since": since, "before": before, "limit": limit + 1}
    rows = [dict(r) for r in conn.execute(text(AUDIT), params).mappings()]
    items = [
        {"event_id": str(r["event_id"]), "type": r["type"], "occurred_at": r["occurred_at"], "producer": r["producer"],
         "actor": r["actor"], "position": entry_id_of(int(r["position"])), "payload": r["payload"]}
        for r in rows[:limit]
    ]  # fmt: skip
    more = len(rows) > limit
    return {"items": items, "next_cursor": encode_cursor(str(rows[limit - 1]["position"])) if more else None}


def model_alias(conn: Connection) -> dict[str, Any] | None:
    """The latest model.switched event's payload: which model the similarity service answers with."""
    row = conn.execute(text("""SELECT payload FROM journal WHERE type = 'model.switched'
                                ORDER BY position DESC LIMIT 1""")).first()  # fmt: skip
    return None if row is None else dict(row.payload)


def learned_thresholds(conn: Connection, model: str) -> list[dict[str, Any]]:
    """Each type pair's latest threshold.changed for a model, with when it changed (`since`, epoch seconds)."""
    rows = conn.execute(
        text("""SELECT DISTINCT ON (payload->>'a_type', payload->>'b_type') payload,
                       extract(epoch FROM occurred_at) AS since
                  FROM journal WHERE type = 'threshold.changed' AND payload->>'model' = :model
                 ORDER BY payload->>'a_type', payload->>'b_type', position DESC"""),
        {"model": model},
    ).all()
    return [dict(r.payload) | {"since": float(r.since)} for r in rows]


def reembed_jobs(conn: Connection) -> list[dict[str, Any]]:
    """Every re-embed job's last recorded state (its latest reembed.changed event), newest job first."""
    rows = conn.execute(
        text("""SELECT DISTINCT ON (payload->>'id') payload FROM journal
                                 WHERE type = 'reembed.changed' ORDER BY payload->>'id', position DESC""")
    ).all()
    return sorted((dict(r.payload) for r in rows), key=lambda job: -float(job.get("created_at") or 0))
