"""Re-embedding requests (shared by the similarity service and the gateway's public API)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Start(BaseModel):
    model: str = Field(description="A registered model (see GET /v1/models)")
    review: bool = Field(False, description="Wait for POST /v1/reembed/{id}/approve before switching")
