"""Page sessions: signing in with a key gives a random session id (the cookie) that maps, in Redis, to the
key's hash and the session's CSRF token. The key itself is never kept, and revoking it ends its sessions
(every request asks who the key's hash speaks for)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True)
class Session:
    key_hash: str
    csrf: str


@dataclass(frozen=True)
class Sessions:
    redis: Any  # redis.asyncio.Redis
    prefix: str
    ttl_s: int = 8 * 3600

    def _key(self, session_id: str) -> str:
        return f"{self.prefix}:session:{session_id}"

    async def open(self, key_hash: str) -> tuple[str, Session]:
        session_id, session = secrets.token_urlsafe(32), Session(key_hash, secrets.token_urlsafe(32))
        await self.redis.set(self._key(session_id), orjson.dumps(session.__dict__), ex=self.ttl_s)
        return session_id, session

    async def get(self, session_id: str) -> Session | None:
        if not 20 <= len(session_id) <= 100:
            return None
        raw = await self.redis.get(self._key(session_id))
        return None if raw is None else Session(**orjson.loads(raw))

    async def close(self, session_id: str) -> None:
        await self.redis.delete(self._key(session_id))
