"""One HTTP attempt: signed, to the address that was checked, no redirects, the reply read with a cap."""

from __future__ import annotations

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


def send(
    client: httpx.Client, url: str, target: Target, body: str, headers: dict[str, str], *, cap: int, excerpt: int
) -> Outcome:
    parts = urlsplit(url)
    address = f"[{target.address}]" if target.address.version == 6 else str(target.address)
    pinned = urlunsplit((parts.scheme, f"{address}:{target.port}", parts.path or "/", parts.query, ""))
    host = parts.netloc.rpartition("@")[2]
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    started = time.perf_counter()
    try:
        request = client.build_request("POST", pinned, content=body.encode(), headers=headers | {"host": host},
                                       extensions=extensions)  # fmt: skip
        response = client.send(request, stream=True, follow_redirects=False)
        try:
            received = bytearray()
            for chunk in response.iter_raw():
                received += chunk
                if len(received) >= cap:
                    break
        finally:
            response.close()
    except httpx.HTTPError as exc:
        latency = (time.perf_counter() - started) * 1000
        return Outcome(None, latency, f"{type(exc).__name__}: {exc}"[:500], "")
    latency = (time.perf_counter() - started) * 1000
    return Outcome(response.status_code, latency, "", bytes(received[:excerpt]).decode(errors="replace"))
