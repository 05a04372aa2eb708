"""How events change the read model, as pure functions (no I/O).

A batch of new events folds into one delta row per entity and per edge. Each field group is a
last-writer-wins register keyed by stream position, and counters only add, so applying deltas in
any order — redelivery, several consumers, a rebuild from the journal — gives the same rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from platograph.contracts import (
    CandidateAccepted,
    CandidateProposed,
    CandidateRejected,
    CandidateUnrejected,
    CandidateWithdrawn,
    EdgeAdded,
    EdgeRemoved,
    EntityMerged,
    EntityRetracted,
    EntityUnmerged,
    EntityUpserted,
    Envelope,
    Frozen,
    parse_payload,
)
from platograph.positions import MAX_EVENTS_PER_ENTRY, event_position


@dataclass(frozen=True)
class PositionedEvent:
    position: int
    stream_id: str
    envelope: Envelope
    payload: Frozen | None = None  # the typed payload when already parsed (saves validating twice)

    def typed(self) -> Frozen | None:
        return self.payload if self.payload is not None else parse_payload(self.envelope)


@dataclass
class EntityDelta:
    id: str
    type: str
    position: int = 0  # of the winning upsert; 0 when the batch holds none
    name: str = ""
    text: str = ""
    description: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)
    status: str = "active"  # from upserts and retractions
    status_position: int = 0
    merged_into: str | None = None  # a register of its own: re-importing an entity does not undo a merge
    merge_position: int = 0
    upserts: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def as_row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "name": self.name,
            "text": self.text,
            "description": self.description,
            "attributes": self.attributes,
            "status": "merged" if self.merged_into else self.status,
            "base_status": self.status,
            "merged_into": self.merged_into,
            "merge_position": self.merge_position,
            "version": self.upserts,
            "position": self.position,
            "status_position": self.status_position,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass
class EdgeDelta:
    source: str
    type: str
    target: str
    position: int = 0
    removed: bool = False
    description: str = ""
    created_at: datetime | None = None

    def as_row(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "type": self.type,
            "target": self.target,
            "description": self.description,
            "removed": self.removed,
            "position": self.position,
            "created_at": self.created_at,
        }


@dataclass
class CandidateDelta:
    a: str
    b: str
    position: int = 0
    score: float = 0.0
    kind: str = "link"
    reason: str = ""
    suggested_edge: str | None = None
    model: str = ""
    state: str = "proposed"
    state_reason: str = ""
    state_position: int = 0
    decision: str | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    decision_position: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def as_row(self) -> dict[str, Any]:
        row = dict(self.__dict__)
        row["a_type"], row["b_type"] = self.a.partition(":")[0], self.b.partition(":")[0]
        row["status"] = self.decision or self.state
        return row


@dataclass
class Deltas:
    entities: dict[str, EntityDelta] = field(default_factory=dict)
    edges: dict[tuple[str, str, str], EdgeDelta] = field(default_factory=dict)
    candidates: dict[tuple[str, str], CandidateDelta] = field(default_factory=dict)

    def candidate(self, a: str, b: str) -> CandidateDelta:
        if (a, b) not in self.candidates:
            self.candidates[(a, b)] = CandidateDelta(a=a, b=b)
        return self.candidates[(a, b)]

    def candidate_rows(self) -> list[dict[str, Any]]:
        return [self.candidates[k].as_row() for k in sorted(self.candidates)]

    def entity(self, entity_id: str) -> EntityDelta:
        if entity_id not in self.entities:
            self.entities[entity_id] = EntityDelta(id=entity_id, type=entity_id.partition(":")[0])
        return self.entities[entity_id]

    def edge(self, source: str, edge_type: str, target: str) -> EdgeDelta:
        key = (source, edge_type, target)
        if key not in self.edges:
            self.edges[key] = EdgeDelta(source=source, type=edge_type, target=target)
        return self.edges[key]

    def entity_rows(self) -> list[dict[str, Any]]:
        # Sorted so that concurrent consumers lock rows in the same order and cannot deadlock.
        return [self.entities[k].as_row() for k in sorted(self.entities)]

    def edge_rows(self) -> list[dict[str, Any]]:
        return [self.edges[k].as_row() for k in sorted(self.edges)]


#: A handler folds one typed payload, at its stream position and time, into the deltas.
Handler = Callable[[Deltas, Any, int, datetime], None]


def _later(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b > a else a


def _earlier(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b < a else a


def _upserted(deltas: Deltas, p: EntityUpserted, pos: int, at: datetime) -> None:
    d = deltas.entity(p.id)
    d.upserts += 1
    d.created_at = _earlier(d.created_at, at)
    d.updated_at = _later(d.updated_at, at)
    if pos > d.position:
        d.position, d.name, d.text, d.description, d.attributes = pos, p.name, p.text, p.description, p.attributes
    if pos > d.status_position:
        d.status_position, d.status = pos, p.status


def _retracted(deltas: Deltas, p: EntityRetracted, pos: int, at: datetime) -> None:
    d = deltas.entity(p.id)
    d.updated_at = _later(d.updated_at, at)
    if pos > d.status_position:
        d.status_position, d.status = pos, "retracted"


def _merged(deltas: Deltas, p: EntityMerged, pos: int, at: datetime) -> None:
    _merge_register(deltas, p.id, p.into, pos, at)


def _unmerged(deltas: Deltas, p: EntityUnmerged, pos: int, at: datetime) -> None:
    _merge_register(deltas, p.id, None, pos, at)


def _merge_register(deltas: Deltas, entity_id: str, into: str | None, pos: int, at: datetime) -> None:
    d = deltas.entity(entity_id)
    d.updated_at = _later(d.updated_at, at)
    if pos > d.merge_position:
        d.merge_position, d.merged_into = pos, into


def _edge_added(deltas: Deltas, p: EdgeAdded, pos: int, at: datetime) -> None:
    d = deltas.edge(p.source, p.type, p.target)
    d.created_at = _earlier(d.created_at, at)
    if pos > d.position:
        d.position, d.removed, d.description = pos, False, p.description


def _edge_removed(deltas: Deltas, p: EdgeRemoved, pos: int, at: datetime) -> None:
    d = deltas.edge(p.source, p.type, p.target)
    if pos > d.position:
        d.position, d.removed, d.description = pos, True, ""


def caused_at(cause: str | None, pos: int) -> int:
    """Where a candidate event's state change sits in the order of a pair's changes: at its cause (the stream
    entry that led to it), keeping its place among the events of its own entry; at its own position when
    it names no cause. A cause always precedes the event, so the order among caused events is the order of
    what caused them, whichever similarity replica appended first."""
    return pos if cause is None else event_position(cause, 0) + pos % MAX_EVENTS_PER_ENTRY


def _proposed(deltas: Deltas, p: CandidateProposed, pos: int, at: datetime) -> None:
    d = deltas.candidate(p.a, p.b)
    d.updated_at = _later(d.updated_at, at)
    d.created_at = _earlier(d.created_at, at)
    if pos > d.position:
        d.position, d.score, d.kind, d.reason = pos, p.score, p.kind, p.reason
        d.suggested_edge, d.model = p.suggested_edge, p.model
    order = caused_at(p.cause, pos)
    if order > d.state_position:
        d.state_position, d.state, d.state_reason = order, "proposed", ""


def _withdrawn(deltas: Deltas, p: CandidateWithdrawn, pos: int, at: datetime) -> None:
    d = deltas.candidate(p.a, p.b)
    d.updated_at = _later(d.updated_at, at)
    order = caused_at(p.cause, pos)
    if order > d.state_position:
        d.state_position, d.state, d.state_reason = order, "withdrawn", p.reason


def _decided(decision: str | None) -> Handler:
    """A person's decision on a pair (accepted, rejected, or a rejection taken back: None)."""

    def handle(deltas: Deltas, p: CandidateAccepted | CandidateRejected | CandidateUnrejected, pos: int,
               at: datetime) -> None:  # fmt: skip
        d = deltas.candidate(p.a, p.b)
        d.updated_at = _later(d.updated_at, at)
        if pos > d.decision_position:
            d.decision_position, d.decision, d.decided_by, d.decided_at = pos, decision, p.by, at

    return handle


#: What each event type does to the read model; an event type missing here changes nothing.
HANDLERS: dict[type[Frozen], Handler] = {
    EntityUpserted: _upserted,
    EntityRetracted: _retracted,
    EntityMerged: _merged,
    EntityUnmerged: _unmerged,
    EdgeAdded: _edge_added,
    EdgeRemoved: _edge_removed,
    CandidateProposed: _proposed,
    CandidateWithdrawn: _withdrawn,
    CandidateAccepted: _decided("accepted"),
    CandidateRejected: _decided("rejected"),
    CandidateUnrejected: _decided(None),
}


def fold(events: list[PositionedEvent]) -> Deltas:
    """Fold new events into one delta per entity and edge; unknown event types change nothing."""
    deltas = Deltas()
    for event in events:
        payload = event.typed()
        handler = None if payload is None else HANDLERS.get(type(payload))
        if handler is not None:
            handler(deltas, payload, event.position, event.envelope.occurred_at)
    return deltas
