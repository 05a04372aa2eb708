"""Messages that cross Redis: one envelope, one frozen payload model per event type.

The publisher owns each schema; consumers translate at their entry point with `parse_payload`.
A stream entry carries a list of envelopes (field ``events``) so that one request's events are
appended atomically by a single XADD.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from platograph.positions import POSITION_PATTERN

EntityStatus = Literal["active", "retracted", "merged"]
ENTRY_FIELD = b"events"


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EntityUpserted(Frozen):
    id: str
    type: str
    name: str
    text: str = ""
    description: str = ""
    status: EntityStatus = "active"
    attributes: dict[str, Any] = Field(default_factory=dict)


class EntityRetracted(Frozen):
    id: str
    reason: str = ""


class EntityMerged(Frozen):
    """A person found `id` to duplicate `into`: views show `into` with both entities' edges, and `id`
    redirects to it. Nothing is rewritten, so `entity.unmerged` restores both exactly."""

    id: str
    into: str
    by: str = ""  # who decided: the name of the key that did (gateway.authorization)
    note: str = ""  # what the person wrote in `by` (free text, never trusted as who)


class EntityUnmerged(Frozen):
    id: str
    into: str  # the entity it had been merged into
    by: str = ""  # who decided: the name of the key that did (gateway.authorization)
    note: str = ""  # what the person wrote in `by` (free text, never trusted as who)


class EdgeAdded(Frozen):
    source: str
    target: str
    type: str
    description: str = ""


class EdgeRemoved(Frozen):
    source: str
    target: str
    type: str


CandidateKind = Literal["link", "duplicate"]


class CandidateProposed(Frozen):
    """Two entities close in embedding space with no typed edge; `a` < `b` (a pair has one name)."""

    a: str
    b: str
    score: float
    kind: CandidateKind
    model: str
    reason: str = ""
    suggested_edge: str | None = None
    # The stream entry that led to this event: the graph orders a pair's proposals and withdrawals by it
    # (the event's own position when absent), so a withdrawal caused by a later entry wins over an earlier
    # entry's proposal whichever similarity replica appended first.
    cause: str | None = Field(None, pattern=POSITION_PATTERN)


class CandidateWithdrawn(Frozen):
    a: str
    b: str
    reason: str
    cause: str | None = Field(None, pattern=POSITION_PATTERN)  # as CandidateProposed.cause


class CandidateAccepted(Frozen):
    """A person turned the pair into a typed edge (appended with the edge.added event, in one entry)."""

    a: str
    b: str
    edge_type: str
    source: str
    target: str
    by: str = ""  # who decided: the name of the key that did (gateway.authorization)
    note: str = ""  # what the person wrote in `by` (free text, never trusted as who)


class CandidateRejected(Frozen):
    a: str
    b: str
    by: str = ""  # who decided: the name of the key that did (gateway.authorization)
    note: str = ""  # what the person wrote in `by` (free text, never trusted as who)
    reason: str = ""


class CandidateUnrejected(Frozen):
    """A person took a rejection back: the pair may be proposed again."""

    a: str
    b: str
    by: str = ""  # who decided: the name of the key that did (gateway.authorization)
    note: str = ""  # what the person wrote in `by` (free text, never trusted as who)


class ModelSwitched(Frozen):
    """The similarity service answers with another model now (a re-embed finished, or a rollback): the
    journal keeps which, so losing Redis, where the alias lives, does not put the configured model back."""

    active: str
    previous: str | None = None
    why: str = ""  # "re-embed <job>", "rollback", "previous dropped"


class ViewsChanged(Frozen):
    """Not an event: what the graph announces after a commit, on `<stream>:views` (platograph.view_changes),
    to the gateways that keep finished neighborhood views: whose views changed, or all of them."""

    ids: tuple[str, ...] = ()
    everything: bool = False


class ReembedChanged(Frozen):
    """A re-embed job started or changed status: the journal keeps each job's record, so losing Redis, where
    its progress lives, neither forgets the job nor leaves it looking as if it still ran."""

    id: str
    model: str
    from_model: str
    status: str  # running, ready (waiting for review), done, failed, cancelled
    review: bool = False
    total: int = 0  # entities planned
    batches: int = 0
    done: int = 0  # entities embedded when the status changed
    started_by: str = ""
    created_at: float = 0.0
    finished_at: float | None = None
    error: str = ""
    note: str = ""


class ThresholdChanged(Frozen):
    """The threshold a type pair's candidates are proposed at, for one model, moved: learned from people's
    decisions (accepted and rejected candidates, typed edges added directly), with the evidence. The
    candidates are proposed or withdrawn to match (each naming this event's entry as its cause)."""

    a_type: str  # a_type <= b_type
    b_type: str
    model: str  # the model's key
    threshold: float
    previous: float
    learned: bool  # False: back to the model's default (too few decisions)
    decisions: int
    positives: int
    negatives: int
    precision: float | None = None  # among the decisions at or above the threshold
    recall: float | None = None  # of the positive decisions, those at or above the threshold
    target_precision: float


PAYLOADS: dict[str, type[Frozen]] = {
    "entity.upserted": EntityUpserted,
    "entity.retracted": EntityRetracted,
    "entity.merged": EntityMerged,
    "entity.unmerged": EntityUnmerged,
    "edge.added": EdgeAdded,
    "edge.removed": EdgeRemoved,
    "candidate.proposed": CandidateProposed,
    "candidate.withdrawn": CandidateWithdrawn,
    "candidate.accepted": CandidateAccepted,
    "candidate.rejected": CandidateRejected,
    "candidate.unrejected": CandidateUnrejected,
    "model.switched": ModelSwitched,
    "reembed.changed": ReembedChanged,
    "threshold.changed": ThresholdChanged,
}


EVENT_TYPES: dict[type[Frozen], str] = {cls: name for name, cls in PAYLOADS.items()}


class Actor(Frozen):
    """Who caused an event: the API key (id and name) the gateway authenticated. Set from the key, never
    from a request body; None for what the system does by itself (candidates, re-embedding follow-up)."""

    id: str
    name: str

    def label(self) -> str:
        """How records that are not events name who did something: `name (key id)`."""
        return f"{self.name} ({self.id})"


class Envelope(Frozen):
    event_id: uuid.UUID
    type: str
    schema_version: int = 1
    occurred_at: datetime
    producer: str
    payload: dict[str, Any]
    actor: Actor | None = None


ENVELOPES = TypeAdapter(list[Envelope])


def new_envelope(
    payload: Frozen,
    *,
    producer: str,
    event_id: uuid.UUID | None = None,
    at: datetime | None = None,
    actor: Actor | None = None,
) -> Envelope:
    """Wrap a payload in an envelope, naming its type from the payload class."""
    ids = [event_id] if event_id else None
    return new_envelopes([payload], producer=producer, event_ids=ids, at=at, actor=actor)[0]


def new_envelopes(
    payloads: Sequence[Frozen],
    *,
    producer: str,
    event_ids: Sequence[uuid.UUID] | None = None,
    at: datetime | None = None,
    actor: Actor | None = None,
) -> list[Envelope]:
    """Envelopes for many payloads, validated in one pass (much cheaper than one model at a time)."""
    at = at or datetime.now(UTC)
    ids = event_ids or [uuid.uuid4() for _ in payloads]
    return ENVELOPES.validate_python(
        [
            {"event_id": i, "type": EVENT_TYPES[type(p)], "occurred_at": at, "producer": producer,
             "payload": p.model_dump(mode="json"), "actor": actor}
            for i, p in zip(ids, payloads, strict=True)
        ]
    )  # fmt: skip


def parse_payload(envelope: Envelope) -> Frozen | None:
    """The typed payload of a known event type; None for types this release does not know."""
    cls = PAYLOADS.get(envelope.type)
    return None if cls is None else cls.model_validate(envelope.payload)


def encode_entry(envelopes: list[Envelope]) -> dict[bytes, bytes]:
    """Stream-entry fields for a list of envelopes (orjson writes UUIDs and datetimes itself)."""
    return {ENTRY_FIELD: ENVELOPES.dump_json(envelopes)}


_PAYLOAD_LISTS: dict[str, TypeAdapter[list[Frozen]]] = {
    name: TypeAdapter(list[cls])  # type: ignore[valid-type]
    for name, cls in PAYLOADS.items()
}


def decode_typed(fields: dict[bytes, bytes]) -> list[tuple[Envelope, Frozen | None]]:
    """A stream entry's envelopes with their typed payloads (None for unknown types), validated from its JSON
    in one pass and the payloads one call a type: a consumer's fast path (about half the projector's CPU went
    to validating event by event). Raises ValidationError or ValueError when anything in the entry breaks
    its contract; `decode_entry` then tells which event."""
    raw = fields.get(ENTRY_FIELD)
    if raw is None:
        raise ValueError("stream entry has no 'events' field")
    envelopes = ENVELOPES.validate_json(raw)
    by_type: dict[str, list[int]] = {}
    for index, envelope in enumerate(envelopes):
        by_type.setdefault(envelope.type, []).append(index)
    payloads: list[Frozen | None] = [None] * len(envelopes)
    for name, indexes in by_type.items():
        adapter = _PAYLOAD_LISTS.get(name)
        if adapter is not None:
            for index, payload in zip(indexes, adapter.validate_python([envelopes[i].payload for i in indexes]),
                                      strict=True):  # fmt: skip
                payloads[index] = payload
    return list(zip(envelopes, payloads, strict=True))


def decode_entry(fields: dict[bytes, bytes]) -> list[dict[str, Any]]:
    """Raw envelope dicts from a stream entry; raises ValueError when the entry is malformed."""
    raw = fields.get(ENTRY_FIELD)
    if raw is None:
        raise ValueError("stream entry has no 'events' field")
    items = orjson.loads(raw)
    if not isinstance(items, list):
        raise ValueError("'events' is not a list")
    return items
