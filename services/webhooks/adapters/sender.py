"""One HTTP attempt: signed, to the address that was checked, no redirects, the reply read with a cap, and
the whole attempt (connect, send, read) within one deadline: httpx's timeouts apply per socket operation,
so a receiver that trickles a byte every few seconds would otherwise hold the worker without end."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import httpx
from standardwebhooks import Webhook

from services.webhooks.domain.safety import Target


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


def client(timeout_s: float) -> httpx.AsyncClient:
    """The client a batch sends with: no redirects, no proxies from the environment."""
    return httpx.AsyncClient(timeout=timeout_s, follow_redirects=False, trust_env=False)


async def send(
    client: httpx.AsyncClient, url: str, target: Target, body: str, headers: dict[str, str], *, cap: int,
    excerpt: int, deadline_s: float,
) -> Outcome:  # fmt: skip
    parts = urlsplit(url)
    address = f"[{target.address}]" if target.address.version == 6 else str(target.address)
    pinned = urlunsplit((parts.scheme, f"{address}:{target.port}", parts.path or "/", parts.query, ""))
    host = parts.netloc.rpartition("@")[2]
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    started = time.perf_counter()
    received = bytearray()
    try:
        async with asyncio.timeout(deadline_s):
            request = client.build_request("POST", pinned, content=body.encode(), headers=headers | {"host": host},
                                           extensions=extensions)  # fmt: skip
            response = await client.send(request, stream=True, follow_redirects=False)
            try:
                async for chunk in response.aiter_raw():
                    received += chunk
                    if len(received) >= cap:
                        break
            finally:
                await response.aclose()
    except TimeoutError:
        latency = (time.perf_counter() - started) * 1000
        return Outcome(None, latency, f"no complete answer within {deadline_s:g} s (the whole attempt)", "")
    except httpx.HTTPError as exc:
        latency = (time.perf_counter() - started) * 1000
        return Outcome(None, latency, f"{type(exc).__name__}: {exc}"[:500], "")
    latency = (time.perf_counter() - started) * 1000
    return Outcome(response.status_code, latency, "", bytes(received[:excerpt]).decode(errors="replace"))
