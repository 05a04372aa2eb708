"""`platograph up`: start (or connect to) Redis and Postgres, migrate, run every process, supervise.

Each child gets PR_SET_PDEATHSIG, so even a kill -9 of the supervisor leaves no orphans; Ctrl-C
stops the children in reverse start order and then the embedded servers.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ops import credentials, migrate
from ops.embedded import EmbeddedPostgres, EmbeddedRedis
from platograph import internal

log = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1


class UpSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PLATOGRAPH_", extra="ignore")

    redis_url: str | None = Field(None, validation_alias="REDIS_URL")
    database_url: str | None = Field(None, validation_alias="DATABASE_URL")
    data_dir: Path = Path(".platograph")
    host: str = "127.0.0.1"  # the gateway's: set 0.0.0.0 to expose it
    services_host: str = "127.0.0.1"  # the internal services' (they also want the internal token)
    port: int = 8000
    ingest_port: int = 8001
    graph_port: int = 8002
    similarity_port: int = 8003
    webhooks_port: int = 8004
    access_port: int = 8005
    webhook_workers: int = Field(2, ge=1, le=64)
    webhook_queue: str = "platograph-webhooks"
    reembed_workers: int = Field(1, ge=0, le=64)
    reembed_queue: str = "platograph-reembed"
    # How often an idle worker requeues the jobs of workers that died (RQ's registry maintenance).
    worker_maintenance_s: int = Field(60, ge=1, le=3600)
    # Two: a projector waits for Postgres about as long as it computes, so a second one fills those waits
    # (bench/core.py, 100k entities and 1M edges on 2 cores: ~35% more events/s than one).
    projectors: int = Field(2, ge=1, le=16)
    redis_fsync: str = Field("always", pattern="^(always|everysec|no)$")


def kept_secret(path: Path, make: Callable[[], str]) -> str:
    """A secret made once and kept in the data directory, readable by its owner only."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(make())
    return path.read_text().strip()


def webhook_key(path: Path) -> str:
    """The Fernet key that encrypts webhook secrets at rest."""
    from cryptography.fernet import Fernet

    return kept_secret(path, lambda: Fernet.generate_key().decode())


def _die_with_parent(nice: int = 0) -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if nice:
        os.nice(nice)


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    health_url: str | None = None
    nice: int = 0  # background work yields the CPU to the processes that answer requests
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=lambda: _die_with_parent(self.nice),
            )

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _uvicorn(factory: str, host: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        factory,
        "--host",
        host,
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]


@dataclass
class System:
    settings: UpSettings
    children: list[Child] = field(default_factory=list)
    redis: EmbeddedRedis | None = None
    postgres: EmbeddedPostgres | None = None
    env: dict[str, str] = field(default_factory=dict)
    admin_key: str = ""

    def key_path(self) -> Path:
        return self.settings.data_dir.resolve() / credentials.KEY_FILE

    def api_headers(self) -> dict[str, str]:
        """What a client of the gateway sends: the admin key."""
        return credentials.headers(self.admin_key)

    def internal_headers(self) -> dict[str, str]:
        """What a caller of an internal service sends: the internal token."""
        return internal.headers(self.env.get("PLATOGRAPH_INTERNAL_TOKEN"))

    @property
    def gateway_url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.port}"

    def start_infrastructure(self) -> None:
        """Embedded servers unless URLs are set; then migrations."""
        s = self.settings
        data_dir = s.data_dir.resolve()
        self.env = dict(os.environ)
        if s.redis_url is None:
            self.redis = EmbeddedRedis(data_dir / "valkey", fsync=s.redis_fsync)
            self.env["REDIS_URL"] = self.redis.start()
        if s.database_url is None:
            self.postgres = EmbeddedPostgres(data_dir / "pg")
            self.env["DATABASE_URL"] = self.postgres.start()
        migrate.upgrade_all(self.env["DATABASE_URL"])
        self.admin_key = credentials.ensure_admin_key(data_dir, self.env["DATABASE_URL"])
        if not self.env.get("PLATOGRAPH_WEBHOOK_KEY"):
            self.env["PLATOGRAPH_WEBHOOK_KEY"] = webhook_key(data_dir / "webhook.key")
        if not self.env.get("PLATOGRAPH_INTERNAL_TOKEN"):
            self.env["PLATOGRAPH_INTERNAL_TOKEN"] = kept_secret(data_dir / "internal.token", internal.new_token)
        s_ports = {"ingest": s.ingest_port, "graph": s.graph_port, "similarity": s.similarity_port,
                   "webhooks": s.webhooks_port, "access": s.access_port}  # fmt: skip
        for name, port in s_ports.items():
            self.env[f"PLATOGRAPH_{name.upper()}_URL"] = f"http://{s.services_host}:{port}"

    def plan(self) -> None:
        s, logs = self.settings, self.settings.data_dir.resolve() / "logs"
        http = [
            ("ingest", "services.ingest.entrypoints.http:create_app", s.ingest_port),
            ("graph", "services.graph.entrypoints.http:create_app", s.graph_port),
            ("similarity", "services.similarity.entrypoints.http:create_app", s.similarity_port),
            ("webhooks", "services.webhooks.entrypoints.http:create_app", s.webhooks_port),
            ("access", "services.access.entrypoints.http:create_app", s.access_port),
        ]
        # The similarity process owns the embedded index (one opener per directory) and runs its consumer.
        similarity_env = {
            "PLATOGRAPH_INDEX_DIR": str(s.data_dir.resolve() / "index"),
            "PLATOGRAPH_SIMILARITY_CONSUMER": "similarity-1",
        }
        for name, factory, port in http:
            env = self.env | similarity_env if name == "similarity" else self.env
            health = f"http://{s.services_host}:{port}/healthz"
            self.children.append(Child(name, _uvicorn(factory, s.services_host, port), env, logs / f"{name}.log",
                                       health))  # fmt: skip
        for n in range(1, s.projectors + 1):
            env = self.env | {"PLATOGRAPH_CONSUMER": f"projector-{n}"}
            argv = [sys.executable, "-m", "ops.cli", "projector"]
            self.children.append(Child(f"projector-{n}", argv, env, logs / f"projector-{n}.log"))
        worker = [sys.executable, "-m", "ops.cli", "worker"]
        self.children.append(Child("worker", worker, self.env, logs / "worker.log"))
        cli = [sys.executable, "-m", "ops.cli"]
        queues = ["--queue", "platograph", "--queue", s.webhook_queue, "--queue", s.reembed_queue]
        self.children.append(Child("scheduler", [*cli, "scheduler", *queues], self.env, logs / "scheduler.log"))
        self.children.append(Child("coordinator", [*cli, "coordinator"], self.env, logs / "coordinator.log"))
        # A delivery worker imports its jobs at start, not on its first delivery (a second of CPU); a
        # re-embed batch runs for seconds anyway.
        for name, queue, count, preload in (
            ("webhook-worker", s.webhook_queue, s.webhook_workers, ["--preload", "services.webhooks.entrypoints.jobs"]),
            ("reembed-worker", s.reembed_queue, s.reembed_workers, []),
        ):
            # One thread per embedding worker: parallelism comes from the number of workers.
            env = self.env | ({"OMP_NUM_THREADS": self.env.get("OMP_NUM_THREADS", "1")} if name == "reembed-worker"
                              else {})  # fmt: skip
            for n in range(1, count + 1):
                argv = [*cli, "worker", "--queue", queue, "--simple", "--maintenance-s", str(s.worker_maintenance_s),
                        *preload]  # fmt: skip
                nice = 10 if name == "reembed-worker" else 0
                self.children.append(Child(f"{name}-{n}", argv, env, logs / f"{name}-{n}.log", nice=nice))
        gateway = _uvicorn("gateway.app:create_app", s.host, s.port)
        self.children.append(Child("gateway", gateway, self.env, logs / "gateway.log", f"{self.gateway_url}/healthz"))

    def check_ports(self) -> None:
        """Refuse to start over another process's port (a restart loop would hide the clash)."""
        s = self.settings
        ports = {"PLATOGRAPH_PORT": (s.host, s.port), "PLATOGRAPH_INGEST_PORT": (s.services_host, s.ingest_port),
                 "PLATOGRAPH_GRAPH_PORT": (s.services_host, s.graph_port),
                 "PLATOGRAPH_SIMILARITY_PORT": (s.services_host, s.similarity_port),
                 "PLATOGRAPH_WEBHOOKS_PORT": (s.services_host, s.webhooks_port),
                 "PLATOGRAPH_ACCESS_PORT": (s.services_host, s.access_port)}  # fmt: skip
        for variable, (host, port) in ports.items():
            with socket.socket() as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind((host, port))
                except OSError as exc:
                    raise RuntimeError(
                        f"port {port} on {host} is in use (another Platograph?); set {variable}"
                    ) from exc

    def start_children(self, timeout: float = 60.0) -> None:
        self.check_ports()
        for child in self.children:
            child.start()
        deadline = time.monotonic() + timeout
        for child in self.children:
            while child.health_url is not None:
                if child.process is not None and child.process.poll() is not None:
                    raise RuntimeError(f"{child.name} exited at start; see {child.log_path}")
                try:
                    auth = internal.headers(self.env.get("PLATOGRAPH_INTERNAL_TOKEN"))
                    if httpx.get(child.health_url, timeout=1, headers=auth).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{child.name} did not become healthy; see {child.log_path}")
                time.sleep(0.1)

    def supervise(self, stopping: Callable[[], bool]) -> None:
        """Restart an embedded server or a child that dies (with a growing pause) until asked to stop."""
        failures = 0
        while not stopping():
            for server in (self.redis, self.postgres):
                if server is not None and not server.alive() and not stopping():
                    try:
                        server.restart()
                        failures = 0
                    except Exception as exc:  # still going down, or its port not yet free: try again
                        failures += 1
                        log.warning("restarting %s failed (%s); again in %.1f s", type(server).__name__, exc,
                                    min(5.0, 0.2 * failures))  # fmt: skip
                        time.sleep(min(5.0, 0.2 * failures))
            for child in self.children:
                if child.process is not None and child.process.poll() is not None and not stopping():
                    child.restarts += 1
                    log.warning("%s exited with %s; restart #%d", child.name, child.process.returncode, child.restarts)
                    time.sleep(min(5.0, 0.2 * child.restarts))
                    child.start()
            time.sleep(0.2)

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()
        if self.redis is not None:
            self.redis.stop()
        if self.postgres is not None:
            self.postgres.stop()
