"""What every gateway answer carries and what every request must be, before any route runs:

- security headers on every answer: a Content-Security-Policy with no inline script (the pages' one
  script and the API docs' are files), `frame-ancestors 'none'`, `Referrer-Policy`, `X-Content-Type-Options`;
- a body only in the content type its operation takes (415 otherwise): JSON, and NDJSON for `/v1/import`.
  A cross-site form can send `text/plain` without a preflight; this is what keeps it out.
"""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
]
WITH_BODY = {"POST", "PUT", "PATCH"}
NDJSON_PATHS = {"/v1/import"}


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


def _accepted(path: str) -> tuple[str, ...]:
    return ("application/x-ndjson", "application/json") if path in NDJSON_PATHS else ("application/json",)


def _media_type(value: bytes) -> str:
    return value.split(b";", 1)[0].strip().lower().decode("latin-1")


class ContentTypes:
    """415 for a request body in a content type its operation does not take (a bodiless POST passes)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in WITH_BODY and scope["path"].startswith("/v1/"):
            headers = dict(scope["headers"])
            has_body = headers.get(b"content-length", b"0") not in (b"0", b"") or b"transfer-encoding" in headers
            media = _media_type(headers.get(b"content-type", b""))
            accepted = _accepted(scope["path"])
            if has_body and media not in accepted and not (media.endswith("+json") and "application/json" in accepted):
                msg = f"a body here must be {' or '.join(accepted)}, not {media or 'untyped'}"
                body = orjson.dumps({"detail": [{"loc": ["header", "content-type"], "msg": msg,
                                                 "type": "unsupported_media_type"}]})  # fmt: skip
                await send({"type": "http.response.start", "status": 415,
                            "headers": [(b"content-type", b"application/json")]})  # fmt: skip
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
