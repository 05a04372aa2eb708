"""Calls to the graph service's read API that several consumers make (httpx, sync)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson

from platograph.contracts import ENTRY_FIELD
from platograph.cursors import encode_cursor


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


def entity_ids(client: httpx.Client) -> list[str]:
    """The id of every entity the graph holds, in id order."""
    return [e["id"] for page in pages(client, "/v1/entities", {"limit": 500}) for e in page]


def wait_for_projection(client: httpx.Client, entry_id: str, wait_ms: int = 5000) -> bool:
    """Let the graph projection reach a stream entry (briefly); False when it has not in time."""
    response = client.get("/v1/projection", params={"position": entry_id, "wait_ms": wait_ms})
    return response.status_code != 200 or bool(response.json()["reached"])


def projected_through(client: httpx.Client) -> str | None:
    """The last stream position up to which the graph has projected every entry (None: none yet)."""
    response = client.get("/v1/projection/through")
    response.raise_for_status()
    position = response.json()["position"]
    return None if position is None else str(position)


def journal_entries(
    client: httpx.Client, until: str, after: str | None = None, page_size: int = 1000
) -> Iterator[list[tuple[str, Any]]]:
    """Stream entries up to `until` as the graph journal holds them, a page at a time, in stream order: each
    as (entry id, stream-entry fields), the shape consumers read from Redis."""
    while True:
        params: dict[str, str | int] = {"until": until, "limit": page_size}
        if after:
            params["after"] = after
        response = client.get("/v1/journal", params=params)
        response.raise_for_status()
        page = response.json()
        if page["items"]:
            yield [(item["id"], {ENTRY_FIELD: orjson.dumps(item["events"])}) for item in page["items"]]
        after = page["next_after"]
        if not after:
            return


def entity_pages_between(
    client: httpx.Client, after: str, last: str | None, page_size: int = 500
) -> Iterator[list[dict[str, Any]]]:
    """Active entities with after < id <= last (no upper bound when `last` is None), in id order, a page at
    a time: a range of any size in bounded memory."""
    params: dict[str, Any] = {"limit": page_size} | ({"cursor": encode_cursor(after)} if after else {})
    for page in pages(client, "/v1/entities", params):
        inside = [e for e in page if last is None or e["id"] <= last]
        if active := [e for e in inside if e["status"] == "active"]:
            yield active
        if len(inside) < len(page):
            return
