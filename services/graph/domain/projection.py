"""How events change the read model, as pure functions (no I/O).

A batch of new events folds into one delta row per entity and per edge. Each field group is a
last-writer-wins register keyed by stream position, and counters only add, so applying deltas in
any order — redelivery, several consumers, a rebuild from the journal — gives the same rows.
"""

from __future__ import annotations

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


def _merge(deltas: Deltas, p: EntityMerged | EntityUnmerged, pos: int, at: datetime) -> None:
    d = deltas.entity(p.id)
    d.updated_at = _later(d.updated_at, at)
    if pos > d.merge_position:
        d.merge_position, d.merged_into = pos, p.into if isinstance(p, EntityMerged) else None


def _edge(deltas: Deltas, p: EdgeAdded | EdgeRemoved, pos: int, at: datetime) -> None:
    d = deltas.edge(p.source, p.type, p.target)
    added = isinstance(p, EdgeAdded)
    if added:
        d.created_at = _earlier(d.created_at, at)
    if pos > d.position:
        d.position, d.removed = pos, not added
        d.description = p.description if isinstance(p, EdgeAdded) else ""


Decision = CandidateProposed | CandidateWithdrawn | CandidateAccepted | CandidateRejected | CandidateUnrejected


def _candidate(deltas: Deltas, p: Decision, pos: int, at: datetime) -> None:
    d = deltas.candidate(p.a, p.b)
    d.updated_at = _later(d.updated_at, at)
    if isinstance(p, CandidateProposed):
        d.created_at = _earlier(d.created_at, at)
        if pos > d.position:
            d.position, d.score, d.kind, d.reason = pos, p.score, p.kind, p.reason
            d.suggested_edge, d.model = p.suggested_edge, p.model
        if pos > d.state_position:
            d.state_position, d.state, d.state_reason = pos, "proposed", ""
    elif isinstance(p, CandidateWithdrawn):
        if pos > d.state_position:
            d.state_position, d.state, d.state_reason = pos, "withdrawn", p.reason
    elif pos > d.decision_position:
        decisions = {CandidateAccepted: "accepted", CandidateRejected: "rejected", CandidateUnrejected: None}
        d.decision_position, d.decision, d.decided_by, d.decided_at = pos, decisions[type(p)], p.by, at


def fold(events: list[PositionedEvent]) -> Deltas:
    """Fold new events into one delta per entity and edge; unknown event types change nothing."""
    deltas = Deltas()
    for event in events:
        payload = event.typed()
        at = event.envelope.occurred_at
        if isinstance(payload, EntityUpserted):
            _upserted(deltas, payload, event.position, at)
        elif isinstance(payload, EntityRetracted):
            _retracted(deltas, payload, event.position, at)
        elif isinstance(payload, EntityMerged | EntityUnmerged):
            _merge(deltas, payload, event.position, at)
        elif isinstance(payload, EdgeAdded | EdgeRemoved):
            _edge(deltas, payload, event.position, at)
        elif isinstance(payload, Decision):
            _candidate(deltas, payload, event.position, at)
    return deltas
