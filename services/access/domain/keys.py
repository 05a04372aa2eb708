"""API keys: made with 256 random bits behind a recognisable prefix, known afterwards only by a hash.

A key has that much entropy, so one round of SHA-256 is enough to keep it (there is nothing to guess
that a slow hash would protect), and a lookup by hash is one index probe on every request.
"""

from __future__ import annotations

import hashlib
import secrets

PREFIX = "plg_"
ID_PREFIX = "key_"


def new_key() -> str:
    """A key: `plg_` and 32 random bytes, URL-safe."""
    return PREFIX + secrets.token_urlsafe(32)


def new_id() -> str:
    """A key's public id (safe to log and show)."""
    return ID_PREFIX + secrets.token_hex(8)


def digest(key: str) -> str:
    """What is stored of a key, and what it is looked up by."""
    return hashlib.sha256(key.encode()).hexdigest()


def looks_like_a_key(value: str) -> bool:
    """Cheap shape check before any lookup (a bounded length, our prefix)."""
    return value.startswith(PREFIX) and 20 <= len(value) <= 100
