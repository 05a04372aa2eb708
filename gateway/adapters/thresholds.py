"""What the similarity service proposes candidates at, kept for a few seconds: the neighborhood view reads
related-by-similarity from the projected candidates when its threshold allows, in one call to the graph."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx

TTL_S = 5.0


@dataclass
class Thresholds:
    threshold: float  # the default
    floor: float  # the lowest, per type pair included
    ceiling: float  # the highest


@dataclass
class ThresholdCache:
    """The last answer of `GET /v1/thresholds`; a failed ask keeps the last good one (or None)."""

    value: Thresholds | None = None
    fetched_at: float = field(default=-1e9)

    async def get(self, similarity: httpx.AsyncClient) -> Thresholds | None:
        if time.monotonic() - self.fetched_at < TTL_S:
            return self.value
        self.fetched_at = time.monotonic()  # one ask per TTL, even when it fails
        try:
            response = await similarity.get("/v1/thresholds", timeout=2.0)
            response.raise_for_status()
            body: dict[str, Any] = response.json()
            self.value = Thresholds(float(body["threshold"]), float(body["floor"]), float(body["ceiling"]))
        except (httpx.HTTPError, KeyError, ValueError):
            pass
        return self.value
