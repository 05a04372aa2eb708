"""Calls to the graph service's read API that several consumers make (httpx, sync)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx


def pages(client: httpx.Client, path: str, params: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
    """The items of a cursor-paged list, a page at a time, following `next_cursor` to the end."""
    cursor = params.get("cursor")
    while True:
        response = client.get(path, params=params | ({"cursor": cursor} if cursor else {}))
        response.raise_for_status()
        page = response.json()
        yield page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return


def wait_for_projection(client: httpx.Client, entry_id: str, wait_ms: int = 5000) -> bool:
    """Let the graph projection reach a stream entry (briefly); False when it has not in time."""
    response = client.get("/v1/projection", params={"position": entry_id, "wait_ms": wait_ms})
    return response.status_code != 200 or bool(response.json()["reached"])
