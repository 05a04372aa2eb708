"""httpx clients for the services behind the gateway; tests pass in-process transports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
from httpx_aiohttp import AiohttpTransport

from gateway.adapters.principals import PrincipalCache
from gateway.adapters.thresholds import ThresholdCache
from gateway.adapters.view_cache import ViewCache
from gateway.adapters.waits import WaitSlots
from gateway.settings import GatewaySettings
from platograph import internal


class _NoCookies(httpx.Cookies):
    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class ServiceClient(httpx.AsyncClient):
    """httpx's client, with each read response freed as soon as its caller drops it, and no cookie jar."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._jar = _NoCookies()
        self._base = str(self.base_url).rstrip("/") + "/"

    @property  # type: ignore[misc]
    def cookies(self) -> httpx.Cookies:
        # One client serves every user's requests: a cookie a service set would go out with all later ones.
        # No service sets any, and looking for them cost ~5% of the gateway's CPU a view.
        return self._jar

    async def request(self, method: str, url: httpx.URL | str, **kwargs: Any) -> httpx.Response:
        # A path joined to the base here, as a string: httpx's merge parses the URL twice (both parses were
        # 18% of the gateway's CPU a view).
        if isinstance(url, str) and url.startswith("/"):
            url = self._base + url[1:]
        return await super().request(method, url, **kwargs)

    async def send(self, request: httpx.Request, *, stream: bool = False, **kwargs: Any) -> httpx.Response:
        response = await super().send(request, stream=stream, **kwargs)
        if not stream:
            # httpx leaves a read response in a cycle with its stream (response.stream holds the response),
            # so it and the transport's objects under it (~40 a call) waited for the cyclic collector: young-
            # generation collections of tens of thousands of them paused the gateway for 16-44 ms (the view's
            # p99 at a moderate load). The body is read: the stream is not needed any more.
            response.stream = httpx.ByteStream(b"")
        return response


@dataclass
class Services:
    ingest: httpx.AsyncClient
    graph: httpx.AsyncClient
    similarity: httpx.AsyncClient
    webhooks: httpx.AsyncClient
    access: httpx.AsyncClient
    graph_waits: httpx.AsyncClient  # the graph again, for read-your-writes waits only
    waiting: WaitSlots
    views: ViewCache
    principals: PrincipalCache = field(default_factory=PrincipalCache)
    thresholds: ThresholdCache = field(default_factory=ThresholdCache)

    async def aclose(self) -> None:
        for client in (self.ingest, self.graph, self.similarity, self.webhooks, self.access, self.graph_waits):
            await client.aclose()


def build(settings: GatewaySettings, transports: dict[str, httpx.AsyncBaseTransport] | None = None) -> Services:
    """One client per service; `transports` overrides the network (e.g. httpx.ASGITransport)."""
    transports = transports or {}
    limits = httpx.Limits(
        max_connections=settings.upstream_connections, max_keepalive_connections=settings.upstream_connections
    )

    def client(
        name: str, url: str, pool: httpx.Limits = limits, timeout_s: float = settings.timeout_s
    ) -> httpx.AsyncClient:
        # httpx's API over aiohttp's connection pool: httpcore polls every pooled socket on each request
        # and cost the gateway 1.0-1.3 ms of CPU per upstream call here; aiohttp's pool costs 0.45 ms.
        transport = transports.get(name) or AiohttpTransport(limits=pool)
        return ServiceClient(base_url=url, timeout=timeout_s, limits=pool, transport=transport,
                             headers=internal.headers(settings.internal_token))  # fmt: skip

    waiters = settings.projection_waiters
    longest_wait_s = 30.0 + settings.timeout_s  # the longest `wait_ms`, and an answer after it

    return Services(
        ingest=client("ingest", settings.ingest_url),
        graph=client("graph", settings.graph_url),
        similarity=client("similarity", settings.similarity_url),
        webhooks=client("webhooks", settings.webhooks_url),
        access=client("access", settings.access_url),
        graph_waits=client("graph", settings.graph_url, httpx.Limits(max_connections=waiters), longest_wait_s),
        waiting=WaitSlots(waiters),
        views=ViewCache(settings.view_cache_mb * 2**20, settings.view_cache_ttl_s),
        principals=PrincipalCache(ttl_s=settings.key_cache_s),
    )
