"""The internal services answer only callers holding the internal token (PLATOGRAPH_INTERNAL_TOKEN, sent as
the `X-Platograph-Internal` header): the gateway, the other services, workers and the supervisor.

`platograph up` makes a token and hands it to every process; deploy/ requires one. A service started
without it answers anyone, and says so in its log at start-up.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from typing import TYPE_CHECKING

import orjson
from pydantic import Field
from pydantic_settings import SettingsConfigDict
from starlette.types import ASGIApp, Receive, Scope, Send

from platograph.contracts import Actor
from platograph.settings import SecretFiles

if TYPE_CHECKING:  # workers use the headers: FastAPI is 0.3 s of their start-up
    from fastapi import FastAPI

log = logging.getLogger(__name__)
HEADER = "X-Platograph-Internal"
#: Who the gateway authenticated (contracts.Actor as JSON), on the writes it forwards; trusted because only
#: holders of the internal token reach a service.
ACTOR_HEADER = "X-Platograph-Actor"
#: Whose subscriptions a webhook call may touch (the key's owner); absent for an admin, who sees them all.
OWNER_HEADER = "X-Platograph-Owner"
_HEADER = HEADER.lower().encode()
REFUSAL = orjson.dumps({"detail": [{"loc": ["header", HEADER], "msg": "an internal service: the internal token "
                                    "is required", "type": "unauthorized"}]})  # fmt: skip


class InternalSettings(SecretFiles):
    model_config = SettingsConfigDict(env_prefix="PLATOGRAPH_", extra="ignore")

    internal_token: str | None = Field(None, min_length=32)


def actor_headers(actor: Actor) -> dict[str, str]:
    """What the gateway sends a service on behalf of a key."""
    return {ACTOR_HEADER: actor.model_dump_json()}


def actor_label(raw: str | None) -> str | None:
    """`name (key id)` of an ACTOR_HEADER value, for records that are not events; None without one."""
    try:
        return None if not raw else Actor.model_validate_json(raw).label()
    except ValueError:
        return None


def new_token() -> str:
    return secrets.token_urlsafe(32)


def headers(token: str | None) -> dict[str, str]:
    """What a caller of an internal service sends."""
    return {HEADER: token} if token else {}


class InternalOnly:
    """Refuse (401) every request that does not carry the token, before anything else runs."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app, self.token = app, token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            given = next((v for k, v in scope["headers"] if k == _HEADER), b"")
            if not hmac.compare_digest(given, self.token):
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"www-authenticate", HEADER.encode())]})  # fmt: skip
                await send({"type": "http.response.body", "body": REFUSAL})
                return
        await self.app(scope, receive, send)


def protect(app: FastAPI, service: str, token: str | None = None) -> None:
    """Put the token check in front of everything else (call it after every other middleware is added)."""
    token = token or InternalSettings().internal_token
    if token is None:
        log.warning("%s: PLATOGRAPH_INTERNAL_TOKEN is not set; this internal service answers anyone who "
                    "reaches its port", service)  # fmt: skip
        return
    app.add_middleware(InternalOnly, token=token)
