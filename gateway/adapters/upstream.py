"""Calling a service and turning its failures into answers a client can act on."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import HTTPException, Request, Response

from platograph.body_limit import BodyTooLarge, caused_by_limit

PASSED_HEADERS = ("retry-after", "content-type")


class UpstreamUnavailable(HTTPException):
    def __init__(self, service: str, exc: Exception) -> None:
        detail = [{"loc": ["server", service], "msg": f"{service} service unavailable: {exc}", "type": "unavailable"}]
        super().__init__(503, detail=detail, headers={"Retry-After": "1"})


async def call(client: httpx.AsyncClient, service: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """Send a request to a service; a transport failure becomes a 503 naming the service."""
    try:
        return await client.request(method, url, **kwargs)
    except httpx.TransportError as exc:
        if caused_by_limit(exc):  # the body being streamed on passed the limit: a 413 (BodyLimit answers)
            raise BodyTooLarge from exc
        raise UpstreamUnavailable(service, exc) from exc


async def passthrough(client: httpx.AsyncClient, service: str, url: str, request: Request) -> Response:
    """GET `url` on a service with the request's own query parameters, and relay its answer."""
    return relay(await call(client, service, "GET", url, params=list(request.query_params.multi_items())))


def relay(response: httpx.Response) -> Response:
    """The service's answer, status and body unchanged."""
    headers = {k: v for k, v in response.headers.items() if k.lower() in PASSED_HEADERS}
    return Response(content=response.content, status_code=response.status_code, headers=headers)


def raise_for_client_error(response: httpx.Response) -> None:
    """Pass a service's 4xx/5xx through to the client as the same error."""
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        retry = response.headers.get("retry-after")
        raise HTTPException(response.status_code, detail=detail, headers={"Retry-After": retry} if retry else None)
