"""`platograph up` brings back the Valkey and PostgreSQL it started when one is killed (kill -9), on their
data directories, with no one restarting anything by hand; every acknowledged write is still there."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import psutil
import pytest

from tests.e2e.up import platograph_up
from tests.helpers import eventually

pytestmark = pytest.mark.e2e


def _written(client: httpx.Client, n: int) -> str | None:
    """Write concept:k{n} (idempotently, so a retry is safe); its position once acknowledged."""
    try:
        answer = client.post("/v1/entities", json={"id": f"concept:k{n}", "name": f"K{n}"},
                             headers={"Idempotency-Key": f"k{n}"})  # fmt: skip
    except httpx.TransportError:
        return None
    return str(answer.json()["position"]) if answer.status_code == 202 else None


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _read(client: httpx.Client, n: int, after: str) -> bool:
    try:
        return client.get(f"/v1/entities/concept:k{n}", params={"after": after}).status_code == 200
    except httpx.TransportError:
        return False


def test_embedded_servers_killed_with_9_come_back_by_themselves(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with platograph_up(data, "restart") as up, httpx.Client(base_url=up.url, headers=up.auth, timeout=15) as client:
        first = eventually(lambda: _written(client, 0))
        valkey = next(p for p in psutil.Process(up.proc.pid).children(recursive=True) if "valkey" in p.name())
        valkey.send_signal(signal.SIGKILL)
        eventually(lambda: _gone(valkey.pid))
        second = eventually(lambda: _written(client, 1), timeout=90)  # Valkey is back, and so are its clients
        postmaster = int((data / "pg" / "postmaster.pid").read_text().split()[0])
        os.kill(postmaster, signal.SIGKILL)
        eventually(lambda: _gone(postmaster))
        third = eventually(lambda: _written(client, 2), timeout=90)
        for n, position in enumerate((first, second, third)):
            assert eventually(lambda n=n, position=position: _read(client, n, position), timeout=90), n
