"""What clients send the similarity service (the gateway validates with the same models, so its OpenAPI
documents them and errors name the field)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

Text = Annotated[str, Field(max_length=20_000)]


class ComparePairs(BaseModel):
    """Text pairs to score as candidates are scored: `{"pairs": [[a, b], ...]}`."""

    model_config = ConfigDict(extra="forbid")

    pairs: list[tuple[Text, Text]] = Field(min_length=1, max_length=1000)


class Start(BaseModel):
    """Start re-embedding the corpus with another model."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="A registered model (see GET /v1/models)")
    review: bool = Field(False, description="Wait for POST /v1/reembed/{id}/approve before switching")
