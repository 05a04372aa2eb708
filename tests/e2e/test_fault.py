"""Fault test: kill -9 the projector in the middle of a 50,000-event import, restart it, and the read
model equals a clean rebuild from the journal, with every event journaled exactly once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import orjson
import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from services.graph.adapters import projection_store
from services.ingest.bootstrap import bootstrap
from services.ingest.entrypoints.http import create_app
from tests.helpers import consumer, count, snapshot

pytestmark = pytest.mark.e2e
ENTITIES, EDGES, CHUNK = 10_000, 40_000, 5_000


def ndjson_lines(rng: random.Random) -> list[bytes]:
    lines = [orjson.dumps({"kind": "entity", "id": f"concept:c{i}", "name": f"Concept {i}"}) for i in range(ENTITIES)]
    for _ in range(EDGES):
        a = int(rng.paretovariate(1.2)) % ENTITIES  # a few hubs, a long tail
        b = rng.randrange(ENTITIES)
        if a == b:
            b = (b + 1) % ENTITIES
        lines.append(
            orjson.dumps(
                {"kind": "edge", "source": f"concept:c{a}", "target": f"concept:c{b}", "type": "associated_with"}
            )
        )
    return lines


def start_projector(env: dict[str, str]) -> subprocess.Popen[bytes]:
    child_env = os.environ | env | {"PLATOGRAPH_CONSUMER": "fault-projector"}
    return subprocess.Popen(
        [sys.executable, "-m", "ops.cli", "projector"],
        env=child_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_kill_9_mid_import_then_restart_equals_rebuild(
    env: dict[str, str], engine: Engine, redis_client: redis.Redis, stream: str
) -> None:
    lines = ndjson_lines(random.Random(11))
    projector = start_projector(env)
    try:
        with TestClient(create_app(bootstrap())) as ingest:
            positions = []
            for n, i in enumerate(range(0, len(lines), CHUNK)):
                reply = ingest.post("/v1/import", content=b"\n".join(lines[i : i + CHUNK]),
                                    headers={"content-type": "application/x-ndjson"})  # fmt: skip
                assert reply.status_code == 202, reply.text
                positions.append(reply.json()["position"])
                if n == 4:  # half-way through the import, once the projector is busy writing
                    deadline = time.monotonic() + 60
                    while count(engine, "SELECT count(*) FROM journal") == 0 and time.monotonic() < deadline:
                        time.sleep(0.01)
                    projector.send_signal(signal.SIGKILL)
                    projector.wait()
                    projected_at_kill = count(engine, "SELECT count(*) FROM journal")
        assert 0 < projected_at_kill < len(lines)
        projector = start_projector(env)
        watcher = consumer(redis_client, stream, name="watcher")
        deadline = time.monotonic() + 240
        while not watcher.reached(positions[-1]):
            assert time.monotonic() < deadline, "projection did not catch up after the restart"
            assert projector.poll() is None, "restarted projector died"
            time.sleep(0.2)
    finally:
        projector.send_signal(signal.SIGTERM)
        projector.wait(30)
    assert count(engine, "SELECT count(*) FROM journal") == len(lines)
    assert count(engine, "SELECT count(DISTINCT event_id) FROM journal") == len(lines)
    assert count(engine, "SELECT count(*) FROM entities WHERE version = 1") == ENTITIES
    live = snapshot(engine)
    assert projection_store.rebuild(engine) == len(lines)
    assert snapshot(engine) == live
