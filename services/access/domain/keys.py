"""API keys: made with 256 random bits behind a recognisable prefix, known afterwards only by their hash
(`platograph.api.access.key_digest`, which the gateway computes too)."""

from __future__ import annotations

import secrets

PREFIX = "plg_"
ID_PREFIX = "key_"


def new_key() -> str:
    """A key: `plg_` and 32 random bytes, URL-safe."""
    return PREFIX + secrets.token_urlsafe(32)


def new_id() -> str:
    """A key's public id (safe to log and show)."""
    return ID_PREFIX + secrets.token_hex(8)


def looks_like_a_key(value: str) -> bool:
    """Cheap shape check before any lookup (a bounded length, our prefix)."""
    return value.startswith(PREFIX) and 20 <= len(value) <= 100
