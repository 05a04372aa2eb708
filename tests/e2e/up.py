"""`platograph up` for end-to-end tests: embedded servers, free ports, a stream of its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from tests.e2e.test_system import read_until
from tests.ports import free_port


class Up(NamedTuple):
    url: str
    proc: subprocess.Popen[str]
    key: str  # the admin key `platograph up` made

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@contextmanager
def platograph_up(data: Path, stream: str, extra: dict[str, str] | None = None) -> Iterator[Up]:
    """Run `platograph up` until its Ctrl-C: yields the gateway's URL, the process and the admin key."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env |= {
        "PLATOGRAPH_DATA_DIR": str(data),
        "PLATOGRAPH_STREAM": f"{stream}:{uuid.uuid4().hex}",
        # Tests poll and fuzz faster than a person: budgets are tested on their own (test_access.py).
        "PLATOGRAPH_RATE_READ": "1000000/minute",
        "PLATOGRAPH_RATE_WRITE": "1000000/minute",
    } | (extra or {})
    for name in ("PORT", "INGEST_PORT", "GRAPH_PORT", "SIMILARITY_PORT", "WEBHOOKS_PORT", "ACCESS_PORT"):
        if f"PLATOGRAPH_{name}" not in (extra or {}):  # a test that talks to the services names their ports
            env[f"PLATOGRAPH_{name}"] = str(free_port())
    proc = subprocess.Popen([sys.executable, "-m", "ops.cli", "up"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        read_until(proc, "Press Ctrl-C", timeout=180)
        yield Up(f"http://127.0.0.1:{env['PLATOGRAPH_PORT']}", proc, (data / "admin.key").read_text().strip())
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(90)
        if proc.stdout is not None:
            proc.stdout.close()
