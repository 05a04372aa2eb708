"""Loading NDJSON files through the public API, with a progress bar and idempotency keys."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import httpx
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from ops import credentials

SEEDS = Path(__file__).resolve().parent.parent / "seeds"
SEED_ENTITY = (
    "quote:neural-networks-trained-with-different-objectives-on-different-data-and-modalities-are-converging-"
    "to-a-shared-statistical-model-of-reality-in-their-representation-spaces"
)
CHUNK_LINES = 50_000
CHUNK_BYTES = 8 * 1024 * 1024  # well under the import limit (PLATOGRAPH_MAX_IMPORT_BYTES, 16 MiB by default)


class LoadError(RuntimeError):
    """The API refused a file; the message carries its error detail."""


def _chunks(path: Path) -> Iterator[bytes]:
    lines: list[bytes] = []
    size = 0
    with path.open("rb") as f:
        for line in f:
            if line.strip():
                lines.append(line if line.endswith(b"\n") else line + b"\n")
                size += len(lines[-1])
            if len(lines) >= CHUNK_LINES or size >= CHUNK_BYTES:
                yield b"".join(lines)
                lines, size = [], 0
    if lines:
        yield b"".join(lines)


@retry(
    retry=retry_if_exception_type(httpx.TransportError),
    wait=wait_exponential(max=5),
    stop=stop_after_attempt(6),
    reraise=True,
)
def _post(client: httpx.Client, body: bytes, key: str) -> dict[str, Any]:
    response = client.post(
        "/v1/import", content=body, headers={"content-type": "application/x-ndjson", "Idempotency-Key": key}
    )
    if response.status_code != 202:
        raise LoadError(f"HTTP {response.status_code}: {response.text[:2000]}")
    return response.json()  # type: ignore[no-any-return]


def import_file(
    gateway: str, path: Path, *, key: str | None = None, wait: bool = True, show_progress: bool = True
) -> dict[str, Any]:
    """Send a file in chunks (each chunk idempotent by content), then wait until it is projected."""
    total = {"entity_count": 0, "edge_count": 0, "event_count": 0, "position": None}
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    client = httpx.Client(base_url=gateway, timeout=300, headers=credentials.headers(key))
    with client, Progress(*columns, disable=not show_progress) as bar:
        task = bar.add_task(f"import {path.name}", total=path.stat().st_size)
        for body in _chunks(path):
            key = "import:" + hashlib.sha256(body).hexdigest()
            reply = _post(client, body, key)
            for k in ("entity_count", "edge_count", "event_count"):
                total[k] += reply[k]
            total["position"] = reply["position"]
            bar.advance(task, len(body))
        if wait and total["position"]:
            wait_task = bar.add_task("projecting", total=None)
            _wait_projected(client, str(total["position"]))
            bar.update(wait_task, total=1, completed=1)
    return total


def _wait_projected(client: httpx.Client, position: str, attempts: int = 120) -> None:
    for _ in range(attempts):
        response = client.get("/v1/projection", params={"position": position, "wait_ms": 5000})
        response.raise_for_status()
        if response.json()["reached"]:
            return
    raise LoadError(f"projection did not reach {position}")


class Embedding(NamedTuple):
    done: int
    waiting: int
    caught_up: bool


def embedding_state(client: httpx.Client) -> Embedding:
    """Entities embedded and waiting, from the gateway's status; caught up once none waits and the
    similarity consumer has read the whole stream."""
    response = client.get("/v1/status")
    response.raise_for_status()
    state = response.json()
    progress, similarity = state.get("embedding") or {}, state.get("similarity") or {}
    done, waiting = int(progress.get("done") or 0), int(progress.get("waiting") or 0)
    backlog = int(similarity.get("lag") or 0) + int(similarity.get("pending") or 0)
    return Embedding(done, waiting, bool(progress) and waiting == 0 and backlog == 0)


def wait_embedded(
    client: httpx.Client, *, show_progress: bool = True, poll_s: float = 1.0, timeout_s: float | None = None
) -> Embedding:
    """Follow embedding with a progress bar until every entity is in the index (or timeout_s passes)."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    with Progress(*columns, disable=not show_progress) as bar:
        task = bar.add_task("embedding", total=None)
        while True:
            state = embedding_state(client)
            bar.update(task, completed=state.done, total=state.done + state.waiting)
            if state.caught_up or (deadline is not None and time.monotonic() > deadline):
                return state
            time.sleep(poll_s)


def seed_files() -> list[Path]:
    return sorted(SEEDS.glob("*.ndjson"))
