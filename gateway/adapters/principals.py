"""Who a key speaks for, asked of the access service and kept for a few seconds: a revoked key stops
working within `ttl_s` on every gateway, and each gateway asks about each key at most once per `ttl_s`.
Unknown keys are remembered too (so a flood of made-up keys costs one lookup each per `ttl_s`), in a
bounded table."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field

import httpx

from gateway.adapters.upstream import call, raise_for_client_error
from platograph.api.access import Principal, key_digest

MAX_KEYS = 10_000


@dataclass
class PrincipalCache:
    ttl_s: float = 5.0
    _known: OrderedDict[str, tuple[float, Principal | None]] = field(default_factory=OrderedDict)

    async def get(self, access: httpx.AsyncClient, key: str) -> Principal | None:
        """The key's principal; None for an unknown or revoked key."""
        return await self.by_hash(access, key_digest(key))

    async def by_hash(self, access: httpx.AsyncClient, key_hash: str) -> Principal | None:
        """The principal of the key with this SHA-256 (a page session keeps only that)."""
        now = time.monotonic()
        cached = self._known.get(key_hash)
        if cached is not None and now - cached[0] < self.ttl_s:
            return cached[1]
        response = await call(access, "access", "GET", f"/v1/principals/{key_hash}")
        found = None if response.status_code == 404 else _principal(response)
        self._known[key_hash] = (now, found)
        self._known.move_to_end(key_hash)
        while len(self._known) > MAX_KEYS:
            self._known.popitem(last=False)
        return found


def _principal(response: httpx.Response) -> Principal:
    raise_for_client_error(response)
    return Principal.model_validate_json(response.content)
