"""The cursor codec of every paged list: a cursor is opaque to clients and carries the last key seen."""

from __future__ import annotations

import base64
from typing import Any

import orjson

#: What every cursor looks like (base64url), declared where a cursor is taken so a malformed one is a 422.
PATTERN = r"^[A-Za-z0-9_-]+={0,2}$"


def encode_cursor(value: Any) -> str:
    """A cursor for the next page after `value` (any JSON value: a key, or a tuple of keys)."""
    return base64.urlsafe_b64encode(orjson.dumps(value)).decode()


def decode_cursor(cursor: str | None) -> Any:
    """The value in a cursor; ValueError when the cursor was not made by us."""
    if cursor is None:
        return None
    try:
        return orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise ValueError("cursor is not valid") from exc
