"""Writing a batch of events to Postgres: journal, read model and tracking in one transaction.

Rows go in with COPY into per-session staging tables and then one INSERT … SELECT … ON CONFLICT per
table: that costs a fraction of multi-row VALUES statements, which psycopg must parse on the client.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, text

from platograph.contracts import Envelope
from services.graph.adapters import rebuilding
from services.graph.domain.projection import PositionedEvent, fold

JOURNAL_COLUMNS = (
    "event_id", "position", "stream_id", "type", "schema_version", "occurred_at", "producer", "payload", "actor",
)  # fmt: skip
ENTITY_COLUMNS = (
    "id", "type", "name", "text", "description", "attributes", "status", "version", "position", "status_position",
    "created_at", "updated_at", "base_status", "merged_into", "merge_position",
)  # fmt: skip
EDGE_COLUMNS = ("source", "type", "target", "description", "removed", "position", "created_at")
CANDIDATE_COLUMNS = (
    "a", "b", "a_type", "b_type", "score", "kind", "reason", "suggested_edge", "model", "state", "state_reason",
    "position", "state_position", "decision", "decided_by", "decision_position", "status", "created_at", "updated_at",
    "decided_at",
)  # fmt: skip

STAGING = """
CREATE TEMP TABLE IF NOT EXISTS stage_journal (LIKE journal INCLUDING DEFAULTS) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_entities (LIKE entities) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_edges (LIKE edges) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_candidates (LIKE candidates) ON COMMIT DELETE ROWS;
"""

# The journal is partitioned by position (migration 0009): journal_ids keeps event ids unique across
# partitions, so an event is new when its id goes in there, and only those go into the journal. The journal
# itself needs no ON CONFLICT: a position is one stream entry's event, whose id journal_ids already holds
# (a speculative insert and a semi-join on the ids cost ~8 µs an event in a 25,000-event batch).
INSERT_JOURNAL = f"""
WITH fresh AS (
  INSERT INTO journal_ids (event_id, position) SELECT event_id, position FROM stage_journal
  ON CONFLICT DO NOTHING RETURNING event_id, position
), written AS (
  INSERT INTO journal ({", ".join(JOURNAL_COLUMNS)})
  SELECT {", ".join("s." + c for c in JOURNAL_COLUMNS)} FROM stage_journal s JOIN fresh USING (event_id)
)
SELECT position FROM fresh
"""

# Each field group is a last-writer-wins register keyed by position; version only adds up. `status` is
# derived: 'merged' while merged_into is set, else the upsert/retraction register (base_status).
_BASE = ("CASE WHEN excluded.status_position > entities.status_position "
         "THEN excluded.base_status ELSE entities.base_status END")  # fmt: skip
_MERGED = ("CASE WHEN excluded.merge_position > entities.merge_position "
           "THEN excluded.merged_into ELSE entities.merged_into END")  # fmt: skip
UPSERT_ENTITIES = f"""
INSERT INTO entities ({", ".join(ENTITY_COLUMNS)}) SELECT {", ".join(ENTITY_COLUMNS)} FROM stage_entities ORDER BY id
ON CONFLICT (id) DO UPDATE SET
    name = CASE WHEN excluded.position > entities.position THEN excluded.name ELSE entities.name END,
    text = CASE WHEN excluded.position > entities.position THEN excluded.text ELSE entities.text END,
    description = CASE WHEN excluded.position > entities.position
                       THEN excluded.description ELSE entities.description END,
    attributes = CASE WHEN excluded.position > entities.position
                      THEN excluded.attributes ELSE entities.attributes END,
    base_status = {_BASE},
    merged_into = {_MERGED},
    status = CASE WHEN {_MERGED} IS NOT NULL THEN 'merged' ELSE {_BASE} END,
    position = GREATEST(entities.position, excluded.position),
    status_position = GREATEST(entities.status_position, excluded.status_position),
    merge_position = GREATEST(entities.merge_position, excluded.merge_position),
    version = entities.version + excluded.version,
    created_at = LEAST(entities.created_at, excluded.created_at),
    updated_at = GREATEST(entities.updated_at, excluded.updated_at)
"""

UPSERT_EDGES = f"""
INSERT INTO edges ({", ".join(EDGE_COLUMNS)}) SELECT {", ".join(EDGE_COLUMNS)} FROM stage_edges
ORDER BY source, type, target
ON CONFLICT (source, type, target) DO UPDATE SET
    removed = CASE WHEN excluded.position > edges.position THEN excluded.removed ELSE edges.removed END,
    description = CASE WHEN excluded.position > edges.position THEN excluded.description ELSE edges.description END,
    position = GREATEST(edges.position, excluded.position),
    created_at = LEAST(edges.created_at, excluded.created_at)
"""

_PROPOSAL = ("score", "kind", "reason", "suggested_edge", "model")
_NEWER = "CASE WHEN excluded.{p} > candidates.{p} THEN excluded.{c} ELSE candidates.{c} END"
UPSERT_CANDIDATES = f"""
INSERT INTO candidates ({", ".join(CANDIDATE_COLUMNS)}) SELECT {", ".join(CANDIDATE_COLUMNS)} FROM stage_candidates
ORDER BY a, b
ON CONFLICT (a, b) DO UPDATE SET
    {", ".join(f"{c} = {_NEWER.format(p='position', c=c)}" for c in _PROPOSAL)},
    state = {_NEWER.format(p="state_position", c="state")},
    state_reason = {_NEWER.format(p="state_position", c="state_reason")},
    decision = {_NEWER.format(p="decision_position", c="decision")},
    decided_by = {_NEWER.format(p="decision_position", c="decided_by")},
    decided_at = {_NEWER.format(p="decision_position", c="decided_at")},
    status = COALESCE({_NEWER.format(p="decision_position", c="decision")},
                      {_NEWER.format(p="state_position", c="state")}),
    position = GREATEST(candidates.position, excluded.position),
    state_position = GREATEST(candidates.state_position, excluded.state_position),
    decision_position = GREATEST(candidates.decision_position, excluded.decision_position),
    created_at = LEAST(candidates.created_at, excluded.created_at),
    updated_at = GREATEST(candidates.updated_at, excluded.updated_at)
"""

TRACK = """
INSERT INTO projection_tracking (consumer, last_stream_id, events) VALUES (:consumer, :last, :count)
ON CONFLICT (consumer) DO UPDATE SET last_stream_id = excluded.last_stream_id,
    events = projection_tracking.events + excluded.events, updated_at = now()
"""


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _copy(conn: Connection, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    raw = conn.connection.driver_connection
    with raw.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:  # type: ignore[union-attr]
        for row in rows:
            copy.write_row(row)


def journal_new(conn: Connection, events: Sequence[PositionedEvent]) -> list[PositionedEvent]:
    """Insert events into the journal; return those it did not hold yet (in stream order)."""
    unique = {e.envelope.event_id: e for e in sorted(events, key=lambda e: e.position, reverse=True)}
    if not unique:
        return []
    conn.execute(text(STAGING))
    _copy(
        conn,
        "stage_journal",
        JOURNAL_COLUMNS,
        (
            (e.envelope.event_id, e.position, e.stream_id, e.envelope.type, e.envelope.schema_version,
             e.envelope.occurred_at, e.envelope.producer, _json(e.envelope.payload),
             None if e.envelope.actor is None else e.envelope.actor.model_dump_json())
            for e in unique.values()
        ),
    )  # fmt: skip
    # Positions, not event ids: integers come back several times cheaper than UUIDs, and each event kept in
    # `unique` has a position of its own.
    inserted = set(conn.execute(text(INSERT_JOURNAL)).scalars().all())
    return sorted((e for e in unique.values() if e.position in inserted), key=lambda e: e.position)


def apply(conn: Connection, events: Sequence[PositionedEvent]) -> None:
    """Apply events already known to be new to the read model."""
    deltas = fold(list(events))
    conn.execute(text(STAGING))
    if deltas.entities:
        rows = deltas.entity_rows()
        _copy(conn, "stage_entities", ENTITY_COLUMNS,
              ([_json(r[c]) if c == "attributes" else r[c] for c in ENTITY_COLUMNS] for r in rows))  # fmt: skip
        conn.execute(text(UPSERT_ENTITIES))
    if deltas.edges:
        _copy(conn, "stage_edges", EDGE_COLUMNS, ([r[c] for c in EDGE_COLUMNS] for r in deltas.edge_rows()))
        conn.execute(text(UPSERT_EDGES))
    if deltas.candidates:
        _copy(conn, "stage_candidates", CANDIDATE_COLUMNS,
              ([r[c] for c in CANDIDATE_COLUMNS] for r in deltas.candidate_rows()))  # fmt: skip
        conn.execute(text(UPSERT_CANDIDATES))
    # Staged rows are deleted at commit; rebuild applies several chunks in one transaction.
    conn.execute(text("TRUNCATE stage_entities, stage_edges, stage_candidates"))


def track(conn: Connection, consumer: str, last_stream_id: str, count: int) -> None:
    conn.execute(text(TRACK), {"consumer": consumer, "last": last_stream_id, "count": count})


def forget_idle(engine: Engine, older_than_s: float, keep: Sequence[str]) -> list[str]:
    """Delete the tracking rows of projectors that wrote nothing for `older_than_s` (retired members: see
    platograph.retiring), except `keep`; their names."""
    with engine.begin() as conn:
        rows = conn.execute(
            text("DELETE FROM projection_tracking WHERE updated_at < now() - make_interval(secs => :s) "
                 "AND consumer <> ALL (:keep) RETURNING consumer"),
            {"s": older_than_s, "keep": list(keep)},
        )  # fmt: skip
        return sorted(rows.scalars().all())


#: The signature of `project`: where a projector writes (tests pass one that fails).
Project = Callable[[Engine, Sequence[PositionedEvent], str, str], int]


def project(engine: Engine, events: Sequence[PositionedEvent], consumer: str, last_stream_id: str) -> int:
    """Journal + read model + tracking in one transaction; returns how many events were new."""
    with engine.begin() as conn:
        new = journal_new(conn, events)
        apply(conn, new)
        track(conn, consumer, last_stream_id, len(new))
    return len(new)


def rebuild(engine: Engine, batch: int = 20_000) -> int:
    """Recreate the read model from the journal while it stays live (adapters/rebuilding.py); returns the
    events replayed."""
    return rebuilding.rebuild(engine, replay_after, batch)


def replay_after(conn: Connection, after: int, batch: int) -> tuple[int, int]:
    """Apply up to `batch` journal events after a position; returns how many and the last one's position."""
    rows = (
        conn.execute(
            text(
                f"SELECT {', '.join(JOURNAL_COLUMNS)} FROM journal WHERE position > :last "
                "ORDER BY position LIMIT :batch"
            ),  # fmt: skip
            {"last": after, "batch": batch},
        )
        .mappings()
        .all()
    )
    if rows:
        apply(conn, [_from_journal(r) for r in rows])
    return len(rows), int(rows[-1]["position"]) if rows else after


def _from_journal(row: Any) -> PositionedEvent:
    envelope = Envelope(
        event_id=row["event_id"],
        type=row["type"],
        schema_version=row["schema_version"],
        occurred_at=row["occurred_at"],
        producer=row["producer"],
        payload=row["payload"],
        actor=row["actor"],
    )
    return PositionedEvent(position=int(row["position"]), stream_id=row["stream_id"], envelope=envelope)
