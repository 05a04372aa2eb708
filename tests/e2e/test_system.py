"""End to end: `platograph up` as `make run` starts it, seeds loaded, the seed page's neighborhood, clean Ctrl-C."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import psutil
import pytest

from tests import servers
from tests.integration.test_gateway import QUOTE, SEED_PAGE_COUNTS
from tests.ports import free_port

pytestmark = pytest.mark.e2e


@pytest.fixture(params=["external", "embedded"])
def up_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env |= {
        "PLATOGRAPH_DATA_DIR": str(tmp_path / "data"),
        "PLATOGRAPH_STREAM": f"e2e:{uuid.uuid4().hex}",
        "PLATOGRAPH_PORT": str(free_port()),
        "PLATOGRAPH_INGEST_PORT": str(free_port()),
        "PLATOGRAPH_GRAPH_PORT": str(free_port()),
        "PLATOGRAPH_SIMILARITY_PORT": str(free_port()),
        "PLATOGRAPH_WEBHOOKS_PORT": str(free_port()),
        "PLATOGRAPH_ACCESS_PORT": str(free_port()),
        # The seed's few entities are enough for the embedded index's HNSW build (a child process of the
        # similarity service) to run and be swapped in while the test reads.
        "PLATOGRAPH_INDEX_BUILD_MIN_POINTS": "10",
        "PLATOGRAPH_INDEX_BUILD_CHECK_S": "1",
    }
    with ExitStack() as stack:
        if request.param == "external":
            found = stack.enter_context(servers.external())
            env |= {"REDIS_URL": found.redis_url, "DATABASE_URL": found.database_url}
        yield env


def read_until(proc: subprocess.Popen[str], marker: str, timeout: float) -> list[str]:
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            seen.append(lines.get(timeout=0.5))
        except queue.Empty:
            if proc.poll() is not None:
                break
            continue
        if marker in seen[-1]:
            return seen
    raise AssertionError("".join(seen) or f"no output; exit code {proc.poll()}")


def test_up_seeds_serves_the_seed_page_and_stops_without_orphans(up_env: dict[str, str]) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ops.cli", "up"],
        env=up_env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        output = "".join(read_until(proc, "Press Ctrl-C", timeout=180))
        gateway = f"http://127.0.0.1:{up_env['PLATOGRAPH_PORT']}"
        assert f"Platograph is up at {gateway}" in output and f"{gateway}/docs" in output
        assert f"{gateway}/v1/entities/{QUOTE}/neighborhood" in output
        key_file = Path(up_env["PLATOGRAPH_DATA_DIR"]) / "admin.key"
        key = key_file.read_text().strip()
        assert key.startswith("plg_") and f"admin key     {key}" in output
        assert key_file.stat().st_mode & 0o777 == 0o600
        auth = {"Authorization": f"Bearer {key}"}

        def graph_points() -> int:
            status = httpx.get(f"{gateway}/v1/status", headers=auth, timeout=10).json()
            return int(((status.get("similarity") or {}).get("index_graph") or {}).get("points") or 0)

        deadline = time.monotonic() + 60
        while graph_points() == 0 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert graph_points() > 0  # built in a child process and swapped in; the checks below read through it
        home = httpx.get(f"{gateway}/", headers=auth, timeout=10).text
        assert f"HNSW over {graph_points():,} points" in home  # the page a person looks at says so
        anonymous = httpx.get(f"{gateway}/v1/entities/{QUOTE}/neighborhood", timeout=10)
        assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"].startswith("Bearer")
        view = httpx.get(f"{gateway}/v1/entities/{QUOTE}/neighborhood", timeout=10, headers=auth).json()
        counts = [(g["label"], g["count"]) for g in view["neighborhood"]]
        assert counts == SEED_PAGE_COUNTS
        paper = view["source_paper"]
        assert (paper["year"], len(paper["authors"])) == (2024, 4)
        assert httpx.get(f"{gateway}/docs", timeout=10).status_code == 200
        for command, shown in (("status", "journal_events"), ("dead-letters", "0 in all")):
            run = subprocess.run([sys.executable, "-m", "ops.cli", command, "--gateway", gateway],
                                 capture_output=True, text=True, env=up_env, timeout=60)  # fmt: skip
            assert run.returncode == 0 and shown in run.stdout, run.stdout + run.stderr
        command = [sys.executable, "-m", "ops.cli", "dead-letters", "--replay", "1-0", "--gateway", gateway]
        replay = subprocess.run(command, capture_output=True, text=True, env=up_env, timeout=60)
        assert replay.returncode == 1 and "404" in replay.stdout and "no dead letter" in replay.stdout, replay.stdout
        # A reader's key, made and revoked with the CLI (which sends the admin key from the data directory).
        cli = [sys.executable, "-m", "ops.cli", "keys"]
        made = subprocess.run([*cli, "create", "--name", "reader", "--scopes", "read", "--gateway", gateway],
                              capture_output=True, text=True, env=up_env, timeout=60)  # fmt: skip
        assert made.returncode == 0, made.stdout + made.stderr
        key_id, reader = made.stdout.split()[0], made.stdout.split()[-1]
        assert httpx.get(f"{gateway}/v1/status", headers={"Authorization": f"Bearer {reader}"}).status_code == 200
        listed = subprocess.run([*cli, "list", "--gateway", gateway], capture_output=True, text=True, env=up_env,
                                timeout=60)  # fmt: skip
        assert key_id in listed.stdout and "reader" in listed.stdout and reader not in listed.stdout
        revoked = subprocess.run([*cli, "revoke", key_id, "--gateway", gateway], capture_output=True, text=True,
                                 env=up_env, timeout=60)  # fmt: skip
        assert revoked.returncode == 0 and f"revoked {key_id}" in revoked.stdout
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 6  # 4 HTTP services, a projector, a worker (+ embedded servers)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(90)
        assert proc.stdout is not None
        proc.stdout.close()
    assert proc.returncode == 0
    time.sleep(0.5)
    alive = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert alive == [], [c.cmdline() for c in alive]
