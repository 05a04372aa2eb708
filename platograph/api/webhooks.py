"""What integrators send the webhooks service (through the gateway, which validates with the same models)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator

# Events an integrator may subscribe to (the merge events come with the review loop).
EVENT_TYPES = (
    "candidate.proposed",
    "candidate.withdrawn",
    "candidate.accepted",
    "candidate.rejected",
    "candidate.unrejected",
    "entity.merged",
    "entity.unmerged",
    "threshold.changed",  # a type pair's learned threshold moved: why candidates were proposed or withdrawn
)


def _known_types(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    unknown = sorted(set(value) - set(EVENT_TYPES))
    if unknown:
        raise ValueError(f"unknown event types {unknown}; known: {', '.join(EVENT_TYPES)}")
    return sorted(set(value))


class Filter(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not ignored

    entity_types: list[str] | None = Field(None, description="Only events where either entity has one of these types")
    min_score: float | None = Field(None, ge=-1, le=1, description="Only candidates scoring at least this")


class SubscriptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: HttpUrl
    event_types: list[str] = Field(["candidate.proposed"], min_length=1)
    filter: Filter = Field(default_factory=Filter)
    description: str = Field("", max_length=2000)

    _known = field_validator("event_types")(_known_types)


class SubscriptionPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: HttpUrl | None = None
    event_types: list[str] | None = Field(None, min_length=1)
    filter: Filter | None = None
    description: str | None = Field(None, max_length=2000)

    _known = field_validator("event_types")(_known_types)


class Rotation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_s: float | None = Field(None, ge=0, le=30 * 24 * 3600, description="How long the old secret still signs")


class Replay(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: datetime = Field(description="Re-send every delivery recorded at or after this time")
    only_failed: bool = False
