"""Refuse text Postgres cannot store, at the door of every service, with a 422 naming where it is.

PostgreSQL's text and JSONB cannot hold U+0000, and UTF-8 cannot encode a lone surrogate (which
Python's JSON decoder lets through). Such a string, accepted, would fail later: a 500 on a read, or an
acknowledged write the projection can only dead-letter. One check in front of every app covers every
path, query and JSON body, including the ones added later.
"""

from __future__ import annotations

import json
import re
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

Loc = list[str | int]


class Refusal(NamedTuple):
    loc: Loc
    msg: str
    type: str = "string_unstorable"


TOO_DEEP = 500  # levels of nesting the guard walks; a body nested deeper is refused
# A body is parsed only when one of these could be in it: a raw NUL, its JSON escape, or a surrogate's.
# (The escapes as one pattern with a literal prefix: 2.4 ms over a 3.7 MB import, against 33 ms for a
# single alternation that includes the raw NUL.)
_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")


def _suspect(data: bytes) -> bool:
    return b"\x00" in data or _ESCAPE.search(data) is not None


def problem(text: str) -> str | None:
    """Why Postgres could not store this text, or None."""
    if "\x00" in text:
        return "text contains a NUL character (\\u0000), which cannot be stored"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "text contains a lone UTF-16 surrogate, which is not valid Unicode text"
    return None


def find(value: Any, loc: Loc) -> Refusal | None:
    """The first string (key or value) in decoded JSON that Postgres could not store, with its location."""
    if len(loc) > TOO_DEEP:
        raise RecursionError  # deeper than any body we take; also keeps the recursion bounded
    if isinstance(value, str):
        why = problem(value)
        return None if why is None else Refusal(loc, why)
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = find(item, [*loc, index])
            if found:
                return found
    if isinstance(value, dict):
        for key, item in value.items():
            why = problem(key)
            if why is not None:
                return Refusal([*loc, ascii(key)[1:-1]], f"key: {why}")  # escaped: the answer must be valid JSON
            found = find(item, [*loc, key])
            if found:
                return found
    return None


def in_url(scope: Scope) -> Refusal | None:
    # Percent-decoding replaces invalid UTF-8 (no surrogates come of it), so only a NUL can be here; the
    # raw query is searched first because parsing it costs more than the rest of this check on every read.
    if "\x00" in scope["path"]:
        return Refusal(["path"], problem(scope["path"]) or "")
    query: bytes = scope.get("query_string", b"")
    if b"%00" not in query:
        return None
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        why = problem(name) or problem(value)
        if why is not None:
            return Refusal(["query", name.replace("\x00", "\\u0000")], why)
    return None


def in_body(body: bytes) -> Refusal | None:
    """Where the first bad string of a JSON or NDJSON body is (whatever its content type says: ingest
    reads a body without one, and so does FastAPI)."""
    if not _suspect(body):
        return None
    try:
        return _in_document(body, ["body"])
    except ValueError:
        pass
    for number, line in enumerate(body.splitlines(), start=1):  # NDJSON, located as ingest locates lines
        if _suspect(line):
            try:
                found = _in_document(line, ["body", f"line {number}"])
            except ValueError:
                continue  # malformed: the app answers that itself, naming the line
            if found:
                return found
    return None


def _in_document(raw: bytes, loc: Loc) -> Refusal | None:
    try:
        return find(json.loads(raw), loc)  # not orjson: it refuses lone surrogates, which we look for
    except RecursionError:  # nested deeper than we can walk; ingest's orjson refuses past 1,024 levels too
        return Refusal(loc, f"nests too deeply to be checked (over {TOO_DEEP} levels)", "too_deep")


class TextGuard:
    """Plain ASGI: the URL is checked on every request (cheap); a JSON body is read once and handed on."""

    def __init__(self, app: ASGIApp, skip: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.skip = skip  # paths whose body is streamed on to a service that checks it

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        found = in_url(scope)
        if found is None and scope["method"] in ("POST", "PUT", "PATCH") and scope["path"] not in self.skip:
            body, receive = await _buffered(receive)
            found = in_body(body)
        if found is None:
            await self.app(scope, receive, send)
            return
        detail = [found._asdict()]
        payload = orjson.dumps({"detail": detail})
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
        await send({"type": "http.response.start", "status": 422, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


async def _buffered(receive: Receive) -> tuple[bytes, Receive]:
    """The whole body (its size bounded by platograph.body_limit in front), and a `receive` that replays it
    as one message (then passes on what comes next)."""
    chunks: list[bytes] = []
    tail: list[Message] = []  # a disconnect that came before the end of the body
    while True:
        message = await receive()
        if message["type"] != "http.request":
            tail = [message]
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    del chunks  # one copy of the body from here on
    messages: list[Message] = [{"type": "http.request", "body": body, "more_body": bool(tail)}, *tail]

    async def replay() -> Message:
        return messages.pop(0) if messages else await receive()

    return body, replay
