"""Writing a batch of events to Postgres: journal, read model and tracking in one transaction."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, case, func, select, text
from sqlalchemy.dialects.postgresql import insert

from services.graph.adapters.tables import Edge, Entity, JournalEvent, ProjectionTracking
from services.graph.domain.projection import PositionedEvent, fold

JOURNAL = JournalEvent.__table__  # type: ignore[attr-defined]
ENTITIES = Entity.__table__  # type: ignore[attr-defined]
EDGES = Edge.__table__  # type: ignore[attr-defined]
TRACKING = ProjectionTracking.__table__  # type: ignore[attr-defined]
CHUNK = 2000


def _chunks(rows: Sequence[dict[str, Any]]) -> Iterator[Sequence[dict[str, Any]]]:
    for i in range(0, len(rows), CHUNK):
        yield rows[i : i + CHUNK]


def journal_new(conn: Connection, events: Sequence[PositionedEvent]) -> list[PositionedEvent]:
    """Insert events into the journal; return those it did not hold yet (in stream order)."""
    unique = {e.envelope.event_id: e for e in sorted(events, key=lambda e: e.position, reverse=True)}
    rows = [
        {
            "event_id": e.envelope.event_id,
            "position": e.position,
            "stream_id": e.stream_id,
            "type": e.envelope.type,
            "schema_version": e.envelope.schema_version,
            "occurred_at": e.envelope.occurred_at,
            "producer": e.envelope.producer,
            "payload": e.envelope.payload,
        }
        for e in unique.values()
    ]
    inserted: set[Any] = set()
    for chunk in _chunks(rows):
        stmt = insert(JOURNAL).on_conflict_do_nothing().returning(JOURNAL.c.event_id)
        inserted.update(conn.execute(stmt, list(chunk)).scalars())
    return sorted((e for e in unique.values() if e.envelope.event_id in inserted), key=lambda e: e.position)


def _newer(table: Any, column: str, position: str = "position") -> Any:
    excluded = insert(table).excluded
    return case((excluded[position] > table.c[position], excluded[column]), else_=table.c[column])


def apply(conn: Connection, events: Sequence[PositionedEvent]) -> None:
    """Apply events already known to be new to the read model."""
    deltas = fold(list(events))
    entity_rows = deltas.entity_rows()
    for chunk in _chunks(entity_rows):
        stmt = insert(ENTITIES)
        ex = stmt.excluded
        stmt = stmt.on_conflict_do_update(
            index_elements=["id"],
            set_={
                **{c: _newer(ENTITIES, c) for c in ("name", "text", "description", "attributes")},
                "status": _newer(ENTITIES, "status", "status_position"),
                "position": func.greatest(ENTITIES.c.position, ex.position),
                "status_position": func.greatest(ENTITIES.c.status_position, ex.status_position),
                "version": ENTITIES.c.version + ex.version,
                "created_at": func.least(ENTITIES.c.created_at, ex.created_at),
                "updated_at": func.greatest(ENTITIES.c.updated_at, ex.updated_at),
            },
        )
        conn.execute(stmt, list(chunk))
    for chunk in _chunks(deltas.edge_rows()):
        stmt = insert(EDGES)
        ex = stmt.excluded
        stmt = stmt.on_conflict_do_update(
            index_elements=["source", "type", "target"],
            set_={
                "removed": _newer(EDGES, "removed"),
                "description": _newer(EDGES, "description"),
                "position": func.greatest(EDGES.c.position, ex.position),
                "created_at": func.least(EDGES.c.created_at, ex.created_at),
            },
        )
        conn.execute(stmt, list(chunk))


def track(conn: Connection, consumer: str, last_stream_id: str, count: int) -> None:
    stmt = insert(TRACKING).values(consumer=consumer, last_stream_id=last_stream_id, events=count)
    stmt = stmt.on_conflict_do_update(
        index_elements=["consumer"],
        set_={
            "last_stream_id": stmt.excluded.last_stream_id,
            "events": TRACKING.c.events + count,
            "updated_at": func.now(),
        },
    )
    conn.execute(stmt)


def project(engine: Engine, events: Sequence[PositionedEvent], consumer: str, last_stream_id: str) -> int:
    """Journal + read model + tracking in one transaction; returns how many events were new."""
    with engine.begin() as conn:
        new = journal_new(conn, events)
        apply(conn, new)
        track(conn, consumer, last_stream_id, len(new))
    return len(new)


def rebuild(engine: Engine, batch: int = 20_000) -> int:
    """Recreate the read model from the journal in one transaction; returns events replayed."""
    from platograph.contracts import Envelope  # local: only rebuild needs to re-validate envelopes

    replayed = 0
    with engine.begin() as conn:
        # Lock the journal first, in the order projectors take their locks, so a live projector waits.
        conn.execute(text("LOCK TABLE journal IN SHARE MODE"))
        conn.execute(text("TRUNCATE entities, edges"))
        last: Any = -1
        while True:
            rows = (
                conn.execute(select(JOURNAL).where(JOURNAL.c.position > last).order_by(JOURNAL.c.position).limit(batch))
                .mappings()
                .all()
            )
            if not rows:
                return replayed
            events = [
                PositionedEvent(
                    position=int(r["position"]),
                    stream_id=r["stream_id"],
                    envelope=Envelope(
                        event_id=r["event_id"],
                        type=r["type"],
                        schema_version=r["schema_version"],
                        occurred_at=r["occurred_at"],
                        producer=r["producer"],
                        payload=r["payload"],
                    ),
                )
                for r in rows
            ]
            apply(conn, events)
            replayed += len(events)
            last = rows[-1]["position"]
