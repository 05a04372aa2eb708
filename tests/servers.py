"""Real Redis and Postgres for tests: the machine's servers ("external"), embedded ones, or a Valkey
cluster beside the machine's PostgreSQL ("cluster")."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import redis

from ops.embedded import EmbeddedPostgres, EmbeddedRedis
from tests.ports import free_port
from tests.valkey_cluster import valkey_cluster

EXTERNAL_REDIS = os.environ.get("PLATOGRAPH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
EXTERNAL_POSTGRES = os.environ.get("PLATOGRAPH_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@dataclass(frozen=True)
class Servers:
    kind: str
    redis_url: str
    database_url: str
    rq_redis_url: str | None = None  # RQ's own server, where REDIS_URL is a cluster
    prepared_statements: bool = True  # off behind PgBouncer in transaction mode
    direct_database_url: str | None = None  # PostgreSQL itself, where database_url is PgBouncer's (migrations)


def _unavailable(what: str, exc: Exception) -> None:
    message = f"external {what} unavailable: {exc}"
    if os.environ.get("CI"):
        pytest.fail(message)  # CI machines start both servers: their absence is a failure there
    pytest.skip(message)


@contextmanager
def external() -> Iterator[Servers]:
    """A fresh database on the machine's PostgreSQL, and its Redis (tests use unique stream names)."""
    try:
        redis.Redis.from_url(EXTERNAL_REDIS).ping()
    except redis.RedisError as exc:
        _unavailable("Redis", exc)
    with _fresh_database() as database_url:
        yield Servers("external", EXTERNAL_REDIS, database_url)


@contextmanager
def cluster(data_dir: Path) -> Iterator[Servers]:
    """A 3-master Valkey cluster (tests/valkey_cluster.py) for the event stream and everything derived
    from it; RQ's queues on the machine's Redis (RQ takes no cluster client); a fresh database."""
    try:
        redis.Redis.from_url(EXTERNAL_REDIS).ping()
    except redis.RedisError as exc:
        _unavailable("Redis", exc)
    with valkey_cluster(data_dir) as ports, _fresh_database() as database_url:
        yield Servers("cluster", f"redis+cluster://127.0.0.1:{ports[0]}", database_url, rq_redis_url=EXTERNAL_REDIS)


@contextmanager
def _fresh_database() -> Iterator[str]:
    name = f"platograph_test_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(EXTERNAL_POSTGRES, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        _unavailable("PostgreSQL", exc)
    base, _, _ = EXTERNAL_POSTGRES.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(EXTERNAL_POSTGRES, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def embedded(data_dir: Path) -> Iterator[Servers]:
    """Valkey and PostgreSQL from their pip wheels, in data_dir."""
    valkey = EmbeddedRedis(data_dir / "valkey")
    postgres = EmbeddedPostgres(data_dir / "pg")
    redis_url = valkey.start()
    try:
        yield Servers("embedded", redis_url, postgres.start())
    finally:
        postgres.stop()
        valkey.stop()


@contextmanager
def pgbouncer() -> Iterator[Servers]:
    """Debian's PgBouncer (1.18) in transaction mode in front of the machine's PostgreSQL, with a fresh
    database behind it: the services must run with prepared statements off (`.ci/run` installs it)."""
    binary = shutil.which("pgbouncer") or next((p for p in ("/usr/sbin/pgbouncer",) if Path(p).exists()), None)
    if binary is None:
        _unavailable("PgBouncer", FileNotFoundError("pgbouncer is not installed (apt-get install pgbouncer)"))
    # It refuses to run as root: as root it runs as nobody, so its files sit where nobody can reach them
    # (pytest's own temporary directories are private to their owner).
    data_dir = Path(tempfile.mkdtemp(prefix="platograph-pgbouncer-"))
    data_dir.chmod(0o777)
    with external() as direct:
        port = free_port()
        (data_dir / "users.txt").write_text('"postgres" ""\n')
        (data_dir / "pgbouncer.ini").write_text(
            f"[databases]\n* = host=127.0.0.1 port={_pg_port()}\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\n"
            f"listen_port = {port}\nunix_socket_dir =\nauth_type = trust\nauth_file = {data_dir}/users.txt\n"
            "pool_mode = transaction\nmax_client_conn = 1000\ndefault_pool_size = 4\n"
            "ignore_startup_parameters = extra_float_digits,options\n"
            f"logfile = {data_dir}/pgbouncer.log\n"
        )
        argv = [str(binary), *(["-u", "nobody"] if os.geteuid() == 0 else []), str(data_dir / "pgbouncer.ini")]
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            url = direct.database_url.replace(f":{_pg_port()}/", f":{port}/")
            while True:
                try:
                    psycopg.connect(url, prepare_threshold=None).close()
                    break
                except psycopg.OperationalError as exc:
                    if time.monotonic() > deadline or process.poll() is not None:
                        log = (data_dir / "pgbouncer.log").read_text()[-2000:]
                        raise RuntimeError(f"pgbouncer did not start: {log}") from exc
                    time.sleep(0.1)
            yield Servers(
                "pgbouncer", direct.redis_url, url, prepared_statements=False, direct_database_url=direct.database_url
            )
        finally:
            process.terminate()
            process.wait(10)
            shutil.rmtree(data_dir, ignore_errors=True)


@contextmanager
def replicated() -> Iterator[tuple[str, str]]:
    """A PostgreSQL primary and a streaming replica of it, made from Debian's PostgreSQL binaries (initdb,
    then `pg_basebackup -R`): (primary URL, replica URL). The machine's own server takes no replication
    connections, so the primary is a fresh one. As root both run as the postgres user."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_basebackup"))
    if not found:
        _unavailable("a PostgreSQL replica", FileNotFoundError("Debian's PostgreSQL binaries are missing"))
    bindir = Path(found[-1]).parent
    root = Path(tempfile.mkdtemp(prefix="platograph-replica-"))
    root.chmod(0o777)
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    ports = {"primary": free_port(), "replica": free_port()}

    def run(*argv: str) -> None:
        subprocess.run([*as_user, *argv], check=True, capture_output=True, timeout=120)

    def start(name: str, *options: str) -> None:
        settings = " ".join((f"-p {ports[name]} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", *options))
        run(str(bindir / "pg_ctl"), "-D", str(root / name), "-o", settings, "-l", str(root / f"{name}.log"),
            "-w", "start")  # fmt: skip

    started = []
    try:
        run(str(bindir / "initdb"), "-D", str(root / "primary"), "-A", "trust", "-U", "postgres", "--no-sync")
        start("primary", "-c wal_level=replica -c max_wal_senders=4")
        started.append("primary")
        run(str(bindir / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(ports["primary"]), "-U", "postgres",
            "-D", str(root / "replica"), "-R", "-X", "stream", "--no-sync")  # fmt: skip
        start("replica", "-c hot_standby=on")
        started.append("replica")
        yield tuple(f"postgresql://postgres@127.0.0.1:{ports[n]}/postgres" for n in ("primary", "replica"))  # type: ignore[misc]
    except subprocess.CalledProcessError as exc:
        logs = " ".join(p.read_text()[-1000:] for p in root.glob("*.log"))
        raise RuntimeError(f"{exc.cmd}: {exc.stderr.decode(errors='replace')} {logs}") from exc
    finally:
        for name in reversed(started):
            subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(root / name), "-m", "immediate", "stop"],
                           capture_output=True, timeout=60, check=False)  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)


def _pg_port() -> int:
    return int(EXTERNAL_POSTGRES.rpartition(":")[2].partition("/")[0])
