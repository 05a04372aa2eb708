"""What clients send: entities and edges, with the size limits that bound them."""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator

from platograph.contracts import EntityStatus

MAX_ATTRIBUTES_BYTES = 16 * 1024


class PaperAttributes(BaseModel):
    """Attributes a paper may carry; other keys pass through unchanged."""

    model_config = ConfigDict(extra="allow")

    year: int | None = Field(None, ge=1000, le=2100)
    authors: list[str] = Field(default_factory=list, max_length=500)
    doi: str | None = Field(None, max_length=200, pattern=r"^10\.\d{4,9}/\S+$")
    url: HttpUrl | None = None


class EntityIn(BaseModel):
    """An entity to create or replace; its id is ``<type>:<slug>``."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=3, max_length=512)
    type: str | None = Field(None, description="Optional; must equal the id's prefix when given.")
    name: str = Field(min_length=1, max_length=1000)
    text: str = Field("", max_length=50_000)
    description: str = Field("", max_length=5_000)
    status: EntityStatus = "active"
    attributes: dict[str, Any] = Field(default_factory=dict)

    @field_validator("attributes")
    @classmethod
    def _bounded(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(orjson.dumps(value)) > MAX_ATTRIBUTES_BYTES:
            raise ValueError(f"attributes must serialize to at most {MAX_ATTRIBUTES_BYTES} bytes")
        return value


class EdgeIn(BaseModel):
    """A typed, directed edge between two entity ids."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(min_length=3, max_length=512)
    target: str = Field(min_length=3, max_length=512)
    type: str = Field(min_length=1, max_length=100)
    description: str = Field("", max_length=5_000)


class EntityLine(EntityIn):
    kind: Literal["entity"]


class EdgeLine(EdgeIn):
    kind: Literal["edge"]
