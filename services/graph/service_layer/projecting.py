"""The projector: turn stream entries into journal + read-model writes, then ack.

Acks happen only after the transaction commits, so a crash anywhere redelivers; the journal's
unique event ids make redelivered events no-ops. Entries that cannot be decoded, events that break
their contract, and entries Postgres rejects go to the dead-letter stream and the rest keep flowing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlalchemy.exc import DataError, IntegrityError, ProgrammingError

from platograph.contracts import Envelope, decode_entry, decode_typed, parse_payload
from platograph.positions import event_position
from platograph.stream import Entry, StreamConsumer
from services.graph.adapters import projection_store
from services.graph.domain.projection import PositionedEvent

log = logging.getLogger(__name__)
#: Told, after the commit and before the ack, the events a batch projected (adapters/view_changes.py).
Announce = Callable[[Sequence[PositionedEvent]], None]
# COPY runs on the raw psycopg connection, so its rejections (NUL in text, say) arrive unwrapped.
DATA_ERRORS = (DataError, IntegrityError, ProgrammingError, psycopg.DataError, psycopg.IntegrityError,
               psycopg.ProgrammingError)  # fmt: skip


@dataclass
class BatchResult:
    entries: int = 0
    new_events: int = 0
    dead_lettered: int = 0


def positioned(position: int, entry_id: str, raw: Any) -> PositionedEvent:
    """An event checked against its contract (ValidationError, ValueError), at its stream position."""
    envelope = Envelope.model_validate(raw)
    return PositionedEvent(position, entry_id, envelope, parse_payload(envelope))


def decode(entries: list[Entry], consumer: StreamConsumer, result: BatchResult) -> dict[str, list[PositionedEvent]]:
    """Valid events per entry id; whatever fails its contract is dead-lettered."""
    out: dict[str, list[PositionedEvent]] = {}
    for entry_id, fields in entries:
        base = event_position(entry_id, 0)
        try:  # the whole entry at once; when something in it is wrong, event by event to say what
            typed = decode_typed(fields)
        except (ValidationError, ValueError):
            pass
        else:
            out[entry_id] = [PositionedEvent(base + i, entry_id, e, payload) for i, (e, payload) in enumerate(typed)]
            continue
        try:
            raws = decode_entry(fields)
        except ValueError as exc:
            consumer.dead_letter(entry_id, fields, f"undecodable entry: {exc}")
            result.dead_lettered += 1
            continue
        events: list[PositionedEvent] = []
        for index, raw in enumerate(raws):
            try:
                events.append(positioned(base + index, entry_id, raw))
            except (ValidationError, ValueError) as exc:
                consumer.dead_letter(entry_id, raw, f"event breaks its contract: {exc}", index)
                result.dead_lettered += 1
        out[entry_id] = events
    return out


def handle(
    entries: list[Entry],
    *,
    engine: Engine,
    consumer: StreamConsumer,
    project: projection_store.Project = projection_store.project,
    announce: Announce | None = None,
) -> BatchResult:
    """Project a batch of entries and ack them; poison entries are dead-lettered and acked too."""
    result = BatchResult(entries=len(entries))
    if not entries:
        return result
    by_entry = decode(entries, consumer, result)
    fields_of = dict(entries)
    events = [e for evs in by_entry.values() for e in evs]
    last_id = entries[-1][0]
    try:
        result.new_events = project(engine, events, consumer.consumer, last_id)
    except DATA_ERRORS as exc:
        log.warning("batch rejected by Postgres (%s); retrying entry by entry", exc.__class__.__name__)
        for entry_id, entry_events in by_entry.items():
            try:
                result.new_events += project(engine, entry_events, consumer.consumer, entry_id)
            except DATA_ERRORS as entry_exc:
                # The whole entry, as on the stream, so that a replay finds each event at its own index.
                consumer.dead_letter(entry_id, fields_of[entry_id], f"rejected by Postgres: {entry_exc}")
                result.dead_lettered += 1
    if announce is not None:
        # Every event of the batch, redelivered ones included: one whose announcement a crash lost after
        # its commit comes back this way.
        announce(events)
    consumer.ack([entry_id for entry_id, _ in entries])
    return result


REPLAY_CONSUMER = "dead-letter-replay"  # how replays appear in projection_tracking


def replay(
    engine: Engine,
    entry_id: str,
    events: list[tuple[int, Any]],
    project: projection_store.Project = projection_store.project,
    announce: Announce | None = None,
) -> dict[str, int]:
    """Project dead-lettered events again at their own stream positions, so that a replay cannot win over
    later writes to the same entity; the journal skips any it already holds. Raises when they still break
    their contract (ValueError) or Postgres still rejects them."""
    again = [positioned(event_position(entry_id, index), entry_id, raw) for index, raw in events]
    new_events = project(engine, again, REPLAY_CONSUMER, entry_id)
    if announce is not None:
        announce(again)
    return {"new_events": new_events}
