"""HTTP view models shared by the graph service (producer) and the gateway (public API)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from platograph import cursors


class View(BaseModel):
    model_config = ConfigDict(frozen=True)


class EntitySummary(View):
    id: str
    type: str
    status: str
    name: str
    description: str


class EntityView(EntitySummary):
    text: str
    attributes: dict[str, Any]
    version: int
    created_at: datetime | None
    updated_at: datetime
    merged_into: str | None = None  # set while status is `merged`: the entity that stands for this one


class EntityPage(View):
    items: list[EntityView]
    next_cursor: str | None


class SourcePaper(View):
    id: str
    name: str
    year: int | None
    authors: list[str]
    edge: str = "extracted_from"


class Neighbor(View):
    entity: EntitySummary
    edges: list[str]
    edge_count: int


class NeighborGroup(View):
    type: str
    label: str
    count: int
    neighbors: list[Neighbor]
    next_cursor: str | None


class SimilarItem(View):
    entity: EntitySummary
    score: float
    # From a proposed candidate (the view's usual source): what the system takes the pair for, and why.
    kind: str | None = None  # link | duplicate
    reason: str | None = None
    suggested_edge: str | None = None


class RelatedBySimilarity(View):
    threshold: float | None  # None only when the similarity service could not be asked
    count: int
    items: list[SimilarItem]


class EvidenceItem(View):
    entity: EntitySummary
    edge: str  # supports, evidence_for or contradicts
    via: Literal["edge", "candidate"]  # a typed edge, or a proposed candidate whose wording shows a reversal


class EvidenceSide(View):
    count: int
    items: list[EvidenceItem]  # typed edges first, then by name: the first 20


class Evidence(View):
    """What supports a hypothesis or a claim, and what contradicts it."""

    supporting: EvidenceSide
    contradicting: EvidenceSide


class Neighborhood(View):
    entity: EntityView
    source_paper: SourcePaper | None
    neighborhood: list[NeighborGroup]
    ranking: str = "edge_count desc, then name, then id"
    evidence: Evidence | None = None  # hypotheses and claims only


class NeighborhoodView(Neighborhood):
    related_by_similarity: RelatedBySimilarity
    warnings: list[str] = []


class EdgeView(View):
    source: str
    type: str
    target: str
    description: str
    created_at: datetime | None


class EdgePage(View):
    items: list[EdgeView]
    next_cursor: str | None


class ProjectionState(View):
    position: str
    reached: bool


class CandidateQuery(BaseModel):
    """The filters and page of `GET /v1/candidates`, declared once: the gateway documents and checks them,
    the graph applies them."""

    status: str = Field("proposed", pattern="^(proposed|withdrawn|accepted|rejected)$")
    kind: str | None = Field(None, pattern="^(link|duplicate)$")
    min_score: float = Field(-1.0, ge=-1, le=1)
    max_score: float = Field(1.0, ge=-1, le=1)
    entity: str | None = None
    type_pair: str | None = Field(None, description="Two entity types joined by `|`, e.g. `claim|paper` (either order)")
    cursor: str | None = Field(None, min_length=1, pattern=cursors.PATTERN, description="A page's `next_cursor`")
    limit: int = Field(50, ge=1, le=500)


class AuditQuery(BaseModel):
    """The filters and page of `GET /v1/audit` (the journal read as an audit log, newest first)."""

    actor: str | None = Field(None, max_length=200, description="A key's id or name")
    type: str | None = Field(None, max_length=100, description="An event type, e.g. `candidate.accepted`")
    since: datetime | None = Field(None, description="Only events at or after this time (ISO 8601)")
    cursor: str | None = Field(None, min_length=1, pattern=cursors.PATTERN, description="A page's `next_cursor`")
    limit: int = Field(50, ge=1, le=500)

    @field_validator("since", mode="before")
    @classmethod
    def _iso(cls, value: object) -> object:
        # pydantic would also read a number as Unix seconds; the document says date-time, so only that.
        if isinstance(value, str) and not value[:10].count("-") == 2:
            raise ValueError("since must be an ISO 8601 date-time, e.g. 2026-12-01T00:00:00Z")
        return value


class AuditItem(View):
    event_id: str
    type: str
    occurred_at: datetime
    producer: str
    actor: dict[str, str] | None
    position: str
    payload: dict[str, Any]


class AuditPage(View):
    items: list[AuditItem]
    next_cursor: str | None
