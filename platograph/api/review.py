"""What people send to decide on candidates and merges (the gateway owns these decisions)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Accept(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not ignored

    edge_type: str = Field(description="An edge type the ontology allows between the two entities")
    direction: Literal["a_to_b", "b_to_a"] = "a_to_b"
    by: str = Field("", max_length=200, description="Who decided")


class Reject(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: str = Field("", max_length=200)
    reason: str = Field("", max_length=2000)


class Merge(BaseModel):
    model_config = ConfigDict(extra="forbid")

    into: str = Field(min_length=3, max_length=512, description="The entity that stays (the survivor)")
    by: str = Field("", max_length=200, description="Who decided")


class Unmerge(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: str = Field("", max_length=200)
