"""Bodies are limited while they arrive: 413 before one over the limit is buffered anywhere.

A Content-Length over the limit is refused before a byte of the body is read; a body without one (chunked)
is counted as it is read and refused as soon as it passes the limit, so a 1 GiB upload costs at most the
limit in memory, on every service it would have passed through.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MIB = 1024 * 1024


@dataclass(frozen=True)
class BodyLimits:
    default: int = 16 * MIB
    by_path: Mapping[str, int] = field(default_factory=dict)  # an exact path: its own limit

    def of(self, path: str) -> int:
        return self.by_path.get(path, self.default)


class BodyTooLarge(Exception):
    """Raised from `receive` once the bytes read pass the limit (whoever is reading stops there)."""


class BodyLimit:
    """Plain ASGI, in front of every app (and of the text guard, which buffers what it checks)."""

    def __init__(self, app: ASGIApp, limits: BodyLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.of(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(send, limit)
            return
        read = 0
        started = False

        async def counted() -> Message:
            nonlocal read
            message = await receive()
            if message["type"] == "http.request":
                read += len(message.get("body", b""))
                if read > limit:
                    raise BodyTooLarge
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except BodyTooLarge:
            if started:  # the app answered before reading it all; nothing more can be said
                return
            await _refuse(send, limit)
        except Exception as exc:
            # A reader that wraps what `receive` raised (an HTTP client streaming the body on) says so in
            # its cause.
            if not started and caused_by_limit(exc):
                await _refuse(send, limit)
                return
            raise


def caused_by_limit(exc: BaseException | None) -> bool:
    """Whether exc is, or was raised because of, a body over the limit (say, in an HTTP client that was
    streaming the body on)."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, BodyTooLarge):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(send: Send, limit: int) -> None:
    detail = [{"loc": ["body"], "msg": f"body is over the limit of {limit} bytes", "type": "too_long"}]
    payload = orjson.dumps({"detail": detail})
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        (b"connection", b"close"),
    ]  # fmt: skip  (the rest of the body is not read)
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
