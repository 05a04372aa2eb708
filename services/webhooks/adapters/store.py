"""SQL for subscriptions, deliveries and attempts."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, text
from sqlalchemy.dialects.postgresql import insert

from platograph.cursors import decode_cursor, encode_cursor
from services.webhooks.adapters.tables import Delivery, Subscription

SUBSCRIPTION_COLUMNS = """id, owner, created_by, changed_by, url, event_types, entity_types, min_score, description,
    state, state_reason,
    previous_secret_until, failing_since, created_at, updated_at"""


def create_subscription(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(insert(Subscription).values(**row))


def get_subscription(
    conn: Connection, subscription_id: str, *, with_secrets: bool = False, owner: str | None = None
) -> dict[str, Any] | None:
    """A subscription (of `owner` only, when given)."""
    columns = SUBSCRIPTION_COLUMNS + (", secret, previous_secret" if with_secrets else "")
    sql = text(f"""SELECT {columns} FROM webhook_subscriptions
                   WHERE id = :id AND (CAST(:owner AS text) IS NULL OR owner = :owner)""")
    row = conn.execute(sql, {"id": subscription_id, "owner": owner}).mappings().first()
    return dict(row) if row else None


def list_subscriptions(conn: Connection, cursor: str | None, limit: int, owner: str | None = None) -> dict[str, Any]:
    """Subscriptions in id order (of `owner` only, when given)."""
    after = decode_cursor(cursor)
    sql = text(f"""SELECT {SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions
                   WHERE (CAST(:after AS text) IS NULL OR id > :after)
                     AND (CAST(:owner AS text) IS NULL OR owner = :owner) ORDER BY id LIMIT :limit""")
    params = {"after": after[0] if after else None, "limit": limit + 1, "owner": owner}
    rows = [dict(r) for r in conn.execute(sql, params).mappings()]
    more = len(rows) > limit
    return {"items": rows[:limit], "next_cursor": encode_cursor([rows[limit - 1]["id"]]) if more else None}


def update_subscription(conn: Connection, subscription_id: str, values: dict[str, Any]) -> bool:
    values = values | {"updated_at": text("now()")}
    result = conn.execute(
        Subscription.__table__.update().where(Subscription.__table__.c.id == subscription_id).values(**values)  # type: ignore[attr-defined]
    )
    return bool(result.rowcount)


def delete_subscription(conn: Connection, subscription_id: str) -> bool:
    result = conn.execute(text("DELETE FROM webhook_subscriptions WHERE id = :id"), {"id": subscription_id})
    return bool(result.rowcount)


def live_subscriptions(conn: Connection) -> list[dict[str, Any]]:
    """Subscriptions that collect deliveries: active ones, and paused ones (sent on resume)."""
    sql = text(f"SELECT {SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions WHERE state IN ('active', 'paused')")
    return [dict(r) for r in conn.execute(sql).mappings()]


def insert_deliveries(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Record deliveries, once each: a row that exists (an event seen again) is left as it is.

    An event's body is the same for every endpoint it goes to, so each body is sent once, in a JSON array
    the rows point into: psycopg escapes every quote of a text array's elements with a regular expression,
    which was 43% of the dispatcher's CPU with the bodies in one (10 endpoints, bench/webhooks.py)."""
    if not rows:
        return
    sql = text("""INSERT INTO webhook_deliveries (id, subscription_id, event_id, event_type, stream_id, body, status)
                  SELECT r.id, r.subscription_id, r.event_id, r.event_type, r.stream_id, b.body, r.status
                    FROM unnest(CAST(:ids AS uuid[]), CAST(:subscriptions AS text[]), CAST(:events AS uuid[]),
                                CAST(:types AS text[]), CAST(:streams AS text[]), CAST(:body_at AS int[]),
                                CAST(:statuses AS text[]))
                         AS r(id, subscription_id, event_id, event_type, stream_id, body_at, status)
                    JOIN jsonb_array_elements_text(CAST(:bodies AS jsonb)) WITH ORDINALITY AS b(body, n)
                      ON b.n = r.body_at
                  ON CONFLICT (id) DO NOTHING""")
    bodies: dict[str, int] = {}
    body_at = [bodies.setdefault(r["body"], len(bodies) + 1) for r in rows]
    conn.execute(sql, {
        "ids": [r["id"] for r in rows], "subscriptions": [r["subscription_id"] for r in rows],
        "events": [r["event_id"] for r in rows], "types": [r["event_type"] for r in rows],
        "streams": [r["stream_id"] for r in rows], "body_at": body_at,
        "bodies": orjson.dumps(list(bodies)).decode(), "statuses": [r["status"] for r in rows],
    })  # fmt: skip


def unsent(conn: Connection, delivery_ids: Sequence[uuid.UUID]) -> list[tuple[uuid.UUID, str]]:
    """Of these deliveries, those never attempted whose endpoint is active (they need a first job), in the
    order they were recorded, with their subscription."""
    sql = text("""SELECT d.id, d.subscription_id FROM webhook_deliveries d
                    JOIN webhook_subscriptions s ON s.id = d.subscription_id
                  WHERE d.id = ANY(:ids) AND d.status = 'pending' AND d.attempts = 0 AND s.state = 'active'
                  ORDER BY d.created_at, d.stream_id, d.id""")
    return [(row.id, row.subscription_id) for row in conn.execute(sql, {"ids": list(delivery_ids)})]


def stuck(conn: Connection, older_than_s: float, limit: int) -> list[tuple[uuid.UUID, str]]:
    """Pending deliveries of active endpoints overdue by `older_than_s`: their job was lost (a worker killed
    past RQ's own retries, a queue emptied), so nothing would ever send them."""
    sql = text("""SELECT d.id, d.subscription_id FROM webhook_deliveries d
                    JOIN webhook_subscriptions s ON s.id = d.subscription_id
                   WHERE d.status = 'pending' AND s.state = 'active'
                     AND COALESCE(d.next_attempt_at, d.updated_at) < now() - make_interval(secs => :age)
                   ORDER BY COALESCE(d.next_attempt_at, d.updated_at) LIMIT :limit""")
    return [(row.id, row.subscription_id) for row in conn.execute(sql, {"age": older_than_s, "limit": limit})]


def pending_of(conn: Connection, subscription_id: str) -> list[uuid.UUID]:
    sql = text("""SELECT id FROM webhook_deliveries WHERE subscription_id = :s AND status = 'pending'
                  ORDER BY created_at""")
    return [row.id for row in conn.execute(sql, {"s": subscription_id})]


def claim(conn: Connection, delivery_ids: Sequence[uuid.UUID]) -> list[dict[str, Any]]:
    """Lock deliveries (with their subscription's state) for one attempt each, in recorded order; rows
    another worker holds are skipped. The locks last for the attempts, so no delivery is sent twice at once."""
    sql = text("""SELECT d.id, d.subscription_id, d.event_id, d.body, d.status, d.attempts,
                         s.url, s.state, s.secret, s.previous_secret, s.previous_secret_until, s.failing_since
                    FROM webhook_deliveries d JOIN webhook_subscriptions s ON s.id = d.subscription_id
                   WHERE d.id = ANY(:ids) ORDER BY d.created_at, d.stream_id, d.id FOR UPDATE OF d SKIP LOCKED""")
    return [dict(row) for row in conn.execute(sql, {"ids": list(delivery_ids)}).mappings()]


def record_attempts(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """One statement of arrays: SQLAlchemy compiles a multi-row VALUES afresh for every batch size, which
    cost a delivery worker a fifth of its CPU. The texts an endpoint chose (its reply, the error) go as JSON
    arrays, which psycopg does not escape character by character (see insert_deliveries)."""
    if not rows:
        return
    sql = text("""INSERT INTO webhook_attempts (delivery_id, attempted_at, status_code, latency_ms, error, response,
                                                  details)
                  SELECT * FROM ROWS FROM (unnest(CAST(:ids AS uuid[])), unnest(CAST(:ats AS timestamptz[])),
                                           unnest(CAST(:codes AS int[])), unnest(CAST(:latencies AS float8[])),
                                           jsonb_array_elements_text(CAST(:errors AS jsonb)),
                                           jsonb_array_elements_text(CAST(:responses AS jsonb)),
                                           jsonb_array_elements(CAST(:details AS jsonb)))""")
    conn.execute(sql, {
        "ids": [r["delivery_id"] for r in rows], "ats": [r["attempted_at"] for r in rows],
        "codes": [r["status_code"] for r in rows], "latencies": [r["latency_ms"] for r in rows],
        "errors": orjson.dumps([_storable(r["error"]) for r in rows]).decode(),
        "responses": orjson.dumps([_storable(r["response"]) for r in rows]).decode(),
        "details": orjson.dumps([r["details"] for r in rows]).decode(),
    })  # fmt: skip


def _storable(text: str) -> str:
    """What an endpoint sent, without the NUL characters PostgreSQL's text cannot hold."""
    return text.replace("\x00", "\ufffd")


def mark_delivered(conn: Connection, done: Sequence[tuple[uuid.UUID, int, datetime]]) -> None:
    """(delivery, attempts, when) for deliveries an endpoint accepted, in one statement."""
    sql = text("""UPDATE webhook_deliveries d SET status = 'delivered', status_reason = 'accepted',
                         attempts = v.attempts, delivered_at = v.at, next_attempt_at = NULL, updated_at = now()
                    FROM unnest(CAST(:ids AS uuid[]), CAST(:attempts AS int[]), CAST(:ats AS timestamptz[]))
                         AS v(id, attempts, at)
                   WHERE d.id = v.id""")
    conn.execute(sql, {"ids": [d[0] for d in done], "attempts": [d[1] for d in done], "ats": [d[2] for d in done]})


def set_deliveries(conn: Connection, delivery_ids: Sequence[uuid.UUID], values: dict[str, Any]) -> None:
    values = values | {"updated_at": text("now()")}
    table = Delivery.__table__  # type: ignore[attr-defined]
    conn.execute(table.update().where(table.c.id.in_(list(delivery_ids))).values(**values))


DELIVERY_COLUMNS = """d.id, d.event_id, d.event_type, d.status, d.status_reason, d.attempts, d.next_attempt_at,
    d.delivered_at, d.created_at, d.updated_at, d.body"""


def list_deliveries(
    conn: Connection, subscription_id: str, status: str | None, cursor: str | None, limit: int
) -> dict[str, Any]:
    """Newest first, each with its latest attempts."""
    after = decode_cursor(cursor)
    sql = text(f"""SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d
                   WHERE d.subscription_id = :s AND (CAST(:status AS text) IS NULL OR d.status = :status)
                     AND (CAST(:after_at AS timestamptz) IS NULL OR (d.created_at, d.id) < (:after_at, :after_id))
                   ORDER BY d.created_at DESC, d.id DESC LIMIT :limit""")
    params = {"s": subscription_id, "status": status, "limit": limit + 1,
              "after_at": after[0] if after else None, "after_id": after[1] if after else None}  # fmt: skip
    rows = [dict(r) for r in conn.execute(sql, params).mappings()]
    more = len(rows) > limit
    rows = rows[:limit]
    attempts = _attempts(conn, [r["id"] for r in rows])
    for row in rows:
        row["attempt_log"] = attempts.get(row["id"], [])
    last = rows[-1] if more else None
    return {"items": rows, "next_cursor": encode_cursor([last["created_at"].isoformat(), str(last["id"])]) if last
            else None}  # fmt: skip


def get_delivery(conn: Connection, subscription_id: str, delivery_id: uuid.UUID) -> dict[str, Any] | None:
    sql = text(f"SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d WHERE d.subscription_id = :s AND d.id = :id")
    row = conn.execute(sql, {"s": subscription_id, "id": delivery_id}).mappings().first()
    if row is None:
        return None
    return dict(row) | {"attempt_log": _attempts(conn, [delivery_id]).get(delivery_id, [])}


def _attempts(conn: Connection, delivery_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[dict[str, Any]]]:
    sql = text("""SELECT delivery_id, attempted_at, status_code, latency_ms, error, response FROM webhook_attempts
                  WHERE delivery_id = ANY(:ids) ORDER BY id""")
    out: dict[uuid.UUID, list[dict[str, Any]]] = {}
    for row in conn.execute(sql, {"ids": delivery_ids}).mappings():
        item = dict(row)
        out.setdefault(item.pop("delivery_id"), []).append(item)
    return out


def reopen(conn: Connection, subscription_id: str, *, delivery_id: uuid.UUID | None = None,
           since: datetime | None = None, only_failed: bool = False,
           replay_id: str | None = None) -> list[uuid.UUID]:  # fmt: skip
    """Set deliveries back to pending with a fresh schedule (one by id, or all since a time). A replay
    reopens a delivery once: those this replay already reopened are left alone (a repeated request)."""
    sql = text("""UPDATE webhook_deliveries SET status = 'pending', status_reason = 'resent', attempts = 0,
                         next_attempt_at = now(), updated_at = now(),
                         replay_id = COALESCE(CAST(:replay AS text), replay_id)
                   WHERE subscription_id = :s
                     AND (CAST(:id AS uuid) IS NULL OR id = :id)
                     AND (CAST(:since AS timestamptz) IS NULL OR created_at >= :since)
                     AND (NOT :only_failed OR status = 'failed')
                     AND (CAST(:replay AS text) IS NULL OR replay_id IS DISTINCT FROM CAST(:replay AS text))
               RETURNING id""")
    params = {"s": subscription_id, "id": delivery_id, "since": since, "only_failed": only_failed,
              "replay": replay_id}  # fmt: skip
    return [row.id for row in conn.execute(sql, params)]


FOLD_AFTER = 1000  # delta rows past which a read folds them into one row per key
FOLD = """WITH gone AS (DELETE FROM webhook_delivery_counts RETURNING subscription_id, status, delta)
          INSERT INTO webhook_delivery_counts (subscription_id, status, delta)
          SELECT subscription_id, status, sum(delta) FROM gone GROUP BY subscription_id, status"""


def delivery_counts(conn: Connection, subscription_id: str) -> dict[str, int]:
    """A subscription's deliveries by status (maintained by migration 0006's triggers, not counted)."""
    sql = text("""SELECT status, sum(delta) AS n FROM webhook_delivery_counts WHERE subscription_id = :s
                  GROUP BY status HAVING sum(delta) <> 0""")
    return {row.status: int(row.n) for row in conn.execute(sql, {"s": subscription_id})}


def stats(conn: Connection) -> dict[str, Any]:
    subscriptions = {
        row.state: int(row.n)
        for row in conn.execute(text("SELECT state, count(*) AS n FROM webhook_subscriptions GROUP BY state"))
    }
    rows = conn.execute(text("SELECT status, sum(delta) AS n, count(*) AS rows FROM webhook_delivery_counts "
                             "GROUP BY status")).all()  # fmt: skip
    if sum(int(r.rows) for r in rows) > FOLD_AFTER:
        # Rows a concurrent transaction adds meanwhile are not in this snapshot: neither deleted nor summed.
        conn.execute(text(FOLD))  # committed with the caller's transaction
    deliveries = {str(r.status): int(r.n) for r in rows if int(r.n)}
    return {"subscriptions": subscriptions, "deliveries": deliveries}
