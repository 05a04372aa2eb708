"""The short chaos run: `bench/chaos.py` (the whole run is `make chaos`) killing the projector, a webhook
worker and Valkey in turn under load; it exits non-zero when a write was lost or applied twice, a
delivery is missing, the index differs from the active entities, or a 5xx came outside an outage or
without Retry-After."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.ports import free_port

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def test_a_short_chaos_run_loses_nothing() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env |= {"PLATOGRAPH_STREAM": f"chaos:{uuid.uuid4().hex}"}
    for name in ("PORT", "INGEST_PORT", "GRAPH_PORT", "SIMILARITY_PORT", "WEBHOOKS_PORT", "ACCESS_PORT"):
        env[f"PLATOGRAPH_{name}"] = str(free_port())
    run = subprocess.run(
        [sys.executable, "bench/chaos.py", "--pause", "3", "--victims", "projector-1,webhook-worker-1,valkey"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    lines = [line for line in run.stdout.splitlines() if line.strip()]
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert lines[-1].startswith("writes acknowledged") and "/ lost 0 / duplicated 0;" in lines[-1], lines[-3:]
