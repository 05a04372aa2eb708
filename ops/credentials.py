"""The admin key `platograph up` makes on a fresh data directory, and the key the CLI sends.

The key is printed once by `platograph up` and kept in the data directory (mode 0600) for the CLI; only
its hash is in the database. A key file whose key the database does not know (another database, or a
revoked key) is replaced by a new admin key."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import create_engine

from platograph.api.access import KeyIn, key_digest
from platograph.settings import sqlalchemy_url
from services.access.service_layer import keys

KEY_FILE = "admin.key"


def data_dir() -> Path:
    return Path(os.environ.get("PLATOGRAPH_DATA_DIR", ".platograph"))


def ensure_admin_key(directory: Path, database_url: str) -> str:
    """The admin key kept in `directory`, made (and kept) if there is none the database knows."""
    path = directory / KEY_FILE
    engine = create_engine(sqlalchemy_url(database_url))
    try:
        if path.exists():
            kept = path.read_text().strip()
            if keys.recognise(engine, key_digest(kept)) is not None:
                return kept
        made = keys.create(engine, KeyIn(name="admin", scopes=["admin"]))
    finally:
        engine.dispose()
    directory.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(made.key + "\n")
    os.replace(partial, path)
    return made.key


def cli_key(explicit: str | None) -> str | None:
    """The key the CLI sends: --key / PLATOGRAPH_KEY, else the admin key in the data directory, if any."""
    if explicit:
        return explicit
    path = data_dir() / KEY_FILE
    return path.read_text().strip() if path.exists() else None


def headers(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def deploy_secrets(directory: Path) -> list[str]:
    """The files deploy/docker-compose.yml mounts as Docker secrets, made with fresh random values (a file
    that exists is kept, so running it again changes nothing). Returns the names written."""
    import secrets

    from cryptography.fernet import Fernet

    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    current = {p.name: p.read_text().strip() for p in directory.iterdir() if p.is_file()}
    valkey = current.get("valkey_password") or secrets.token_urlsafe(24)
    postgres = current.get("postgres_password") or secrets.token_urlsafe(24)
    values = {
        "valkey_password": valkey,
        "postgres_password": postgres,
        "REDIS_URL": f"redis://:{valkey}@valkey:6379/0",
        "DATABASE_URL": f"postgresql://platograph:{postgres}@postgres:5432/platograph",
        "PLATOGRAPH_INTERNAL_TOKEN": secrets.token_urlsafe(32),
        "PLATOGRAPH_WEBHOOK_KEY": Fernet.generate_key().decode(),
    }
    written = []
    for name, value in values.items():
        path = directory / name
        if not path.exists():
            path.write_text(value)
            path.chmod(0o600)
            written.append(name)
    return written
