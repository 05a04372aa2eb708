"""One HTTP attempt: signed, to the address that was checked, no redirects, the reply read with a cap, and
the whole attempt (connect, send, read) within one deadline, so a receiver that trickles a byte every few
seconds cannot hold the worker without end.

aiohttp, not httpx: a POST through httpx's streaming API cost 1.5 ms of CPU here against aiohttp's 0.36, and
an httpx client built per batch another 36 ms (its TLS context); the TLS context is built once a process.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Hashable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import certifi
from standardwebhooks import Webhook

from services.webhooks.domain.safety import Target

#: How long an idle connection is kept for the endpoint's next batch: below the idle timeouts of common
#: servers (gunicorn 2 s, uvicorn and Node 5 s, nginx 75 s), so a kept connection is rarely one the
#: endpoint is closing.
KEEPALIVE_S = 1.0
_STALE = ("ServerDisconnectedError", "ClientOSError")  # closed or reset by the endpoint, before a reply


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    latency_ms: float
    error: str
    response: str

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def signature_headers(message_id: str, body: str, secrets: list[str], at: datetime | None = None) -> dict[str, str]:
    """Standard Webhooks headers; during a secret rotation each live secret signs (space-separated)."""
    at = at or datetime.now(UTC)
    signatures = " ".join(Webhook(secret).sign(message_id, at, body) for secret in secrets)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signatures,
        "content-type": "application/json",
        "user-agent": "Platograph-Webhooks/0.1",
    }


@cache
def _tls() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=certifi.where())


def client() -> aiohttp.ClientSession:
    """A session to one endpoint (one connection): no redirects, no proxies or cookies from the environment,
    bodies as the endpoint sent them."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=_tls(), limit=1, use_dns_cache=False, keepalive_timeout=KEEPALIVE_S),
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
        auto_decompress=False,
        skip_auto_headers=("User-Agent",),
    )


class Kept:
    """The sessions of one thread's jobs, one an endpoint and address, kept between jobs on the thread's one
    event loop (`run`): a batch goes out on the connection the endpoint's last batch left open instead of
    connecting again (a connection, an event loop and a session a job were about a fifth of a worker's
    CPU at small batches). At most `limit`, the least recently used closed first."""

    def __init__(self, limit: int = 32) -> None:
        self._limit = limit
        self._sessions: OrderedDict[Hashable, aiohttp.ClientSession] = OrderedDict()

    async def session(self, key: Hashable) -> tuple[aiohttp.ClientSession, bool]:
        """The endpoint's session, and whether it was kept (so may hold an idle connection: aiohttp keeps one
        KEEPALIVE_S after the last batch released it)."""
        session = self._sessions.pop(key, None)
        kept = session is not None and not session.closed
        if session is None or session.closed:
            session = client()
        self._sessions[key] = session
        while len(self._sessions) > self._limit:
            await self._sessions.popitem(last=False)[1].close()
        return session, kept

    async def close(self) -> None:
        while self._sessions:
            await self._sessions.popitem()[1].close()


class _Loop:
    """A thread's event loop and kept sessions."""

    def __init__(self) -> None:
        self.runner, self.kept, self.closed = asyncio.Runner(), Kept(), False
        atexit.register(self.close)

    def close(self) -> None:
        """Close the sessions, then the loop (cancelling whatever is left in it); best effort: it runs at
        exit and after a failed job, whose own error is the one to report."""
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            self.runner.run(self.kept.close())
        with contextlib.suppress(Exception):
            self.runner.close()


_thread = threading.local()
T = TypeVar("T")


def run(work: Callable[[Kept], Coroutine[Any, Any, T]]) -> T:
    """Run `work` on this thread's long-lived event loop with the thread's kept sessions."""
    loop: _Loop | None = getattr(_thread, "loop", None)
    if loop is None or loop.closed:
        loop = _thread.loop = _Loop()
    try:
        return loop.runner.run(work(loop.kept))
    except BaseException:
        # RQ's time limit is an exception raised by a signal handler: raised in the loop's own code rather
        # than in the task, it leaves the batch's task pending, and the next job's run would resume it (and
        # its sends). After any failure the loop and its sessions are closed; the next job starts afresh.
        loop.close()
        raise


async def send(
    client: aiohttp.ClientSession, url: str, target: Target, body: str, headers: dict[str, str], *, cap: int,
    excerpt: int, deadline_s: float, warm: bool = False,
) -> Outcome:  # fmt: skip
    """One attempt. `warm`: the session may hold an idle pooled connection; if the endpoint closed it just as
    it was reused (aiohttp reports a disconnect before any reply), the request goes once more on a new one,
    as a browser does, instead of counting as the endpoint's failure (which would also trip its breaker)."""
    outcome = await _send(client, url, target, body, headers, cap=cap, excerpt=excerpt, deadline_s=deadline_s)
    left = deadline_s - outcome.latency_ms / 1000  # both tries within the attempt's one deadline
    if warm and outcome.error.startswith(_STALE) and left > 0:
        outcome = await _send(client, url, target, body, headers, cap=cap, excerpt=excerpt, deadline_s=left)
    return outcome


async def _send(
    client: aiohttp.ClientSession, url: str, target: Target, body: str, headers: dict[str, str], *, cap: int,
    excerpt: int, deadline_s: float,
) -> Outcome:  # fmt: skip
    parts = urlsplit(url)
    address = f"[{target.address}]" if target.address.version == 6 else str(target.address)
    pinned = urlunsplit((parts.scheme, f"{address}:{target.port}", parts.path or "/", parts.query, ""))
    host = parts.netloc.rpartition("@")[2]
    started = time.perf_counter()
    received = bytearray()
    try:
        async with asyncio.timeout(deadline_s):
            async with client.post(
                pinned, data=body.encode(), headers=headers | {"host": host}, allow_redirects=False,
                server_hostname=target.host if target.scheme == "https" else None,
            ) as response:  # fmt: skip
                while len(received) < cap:
                    chunk = await response.content.read(cap - len(received))
                    if not chunk:
                        break
                    received += chunk
                status = response.status
    except TimeoutError:
        latency = (time.perf_counter() - started) * 1000
        return Outcome(None, latency, f"no complete answer within {deadline_s:g} s (the whole attempt)", "")
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        latency = (time.perf_counter() - started) * 1000
        return Outcome(None, latency, f"{type(exc).__name__}: {exc}"[:500], "")
    latency = (time.perf_counter() - started) * 1000
    return Outcome(status, latency, "", bytes(received[:excerpt]).decode(errors="replace"))
