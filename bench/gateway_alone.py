"""The gateway's own CPU per neighborhood view: its app driven in-process (no uvicorn, no sockets), the
services behind it answered from memory (httpx.MockTransport), Redis real (REDIS_URL, default the local
one). What FastAPI, our middleware, the scope check, the rate limit and httpx cost a view, apart from
network, event-loop and other processes' noise. A diagnostic beside bench/core.py, which measures the
whole system.

Usage: python bench/gateway_alone.py [--views N] [--rounds R]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
os.environ["PLATOGRAPH_RATE_READ"] = "100000000/minute"  # the load is one key's

from gateway.app import create_app  # noqa: E402
from gateway.settings import GatewaySettings  # noqa: E402

KEY = "plg_" + "a" * 40
NEIGHBORS = [
    {
        "entity": {
            "id": f"concept:e{i}",
            "type": "concept",
            "status": "active",
            "name": f"Entity {i}",
            "description": "generated",
        },
        "edges": ["mentions"],
        "edge_count": 1,
    }  # fmt: skip
    for i in range(15)
]
VIEW = orjson.dumps({
    "entity": {"id": "paper:e1", "type": "paper", "name": "Entity 1", "text": "Text", "description": "generated"},
    "source_paper": None,
    "neighborhood": [{"type": "concept", "count": 15, "neighbors": NEIGHBORS, "next_cursor": None}],
    "related_by_similarity": {"threshold": 0.65, "count": 0, "items": []},
})  # fmt: skip
PRINCIPAL = {"id": "k1", "name": "bench", "owner": "bench", "scopes": ["admin"]}
THRESHOLDS = {"threshold": 0.65, "floor": 0.6, "ceiling": 0.7}


def answering(body: bytes) -> httpx.MockTransport:
    return httpx.MockTransport(
        lambda _: httpx.Response(200, content=body, headers={"content-type": "application/json"})
    )


async def run(views: int, rounds: int) -> list[float]:
    transports: dict[str, httpx.AsyncBaseTransport] = {
        "graph": answering(VIEW), "access": answering(orjson.dumps(PRINCIPAL)),
        "similarity": answering(orjson.dumps(THRESHOLDS)),
    }  # fmt: skip
    app = create_app(GatewaySettings(), transports)
    headers = [(b"host", b"127.0.0.1"), (b"authorization", f"Bearer {KEY}".encode())]
    state: dict[str, Any] = {}

    async def view() -> int:
        sent: list[dict[str, Any]] = []
        path = "/v1/entities/paper:e1/neighborhood"
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
                 "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
                 "headers": headers, "client": ("127.0.0.1", 5555), "server": ("127.0.0.1", 8000),
                 "state": state}  # fmt: skip

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(scope, receive, send)
        return int(sent[0]["status"])

    queue: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    started: list[dict[str, Any]] = []

    async def lifespan_send(message: dict[str, Any]) -> None:
        started.append(message)

    await queue.put({"type": "lifespan.startup"})
    lifespan = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": state},
                                       queue.get, lifespan_send))  # fmt: skip
    while not started:
        await asyncio.sleep(0.01)
    assert await view() == 200
    out = []
    for _ in range(rounds):
        cpu = time.process_time()
        for _ in range(views):
            await view()
        out.append(1e6 * (time.process_time() - cpu) / views)
    await queue.put({"type": "lifespan.shutdown"})
    await lifespan
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--views", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for figure in asyncio.run(run(args.views, args.rounds)):
        print(f"gateway alone: {figure:.0f} µs of CPU a view")


if __name__ == "__main__":
    main()
