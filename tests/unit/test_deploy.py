"""The compose file parses, names an image, a command and its environment for every service, and every
variable it sets or any settings class reads is documented in deploy/README.md."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from gateway.settings import GatewaySettings
from ops.credentials import deploy_secrets
from ops.supervisor import UpSettings
from platograph.internal import InternalSettings
from services.access.settings import AccessSettings
from services.graph.settings import GraphSettings
from services.ingest.settings import IngestSettings
from services.similarity.entrypoints.reembed_jobs import ReembedSettings
from services.similarity.settings import SimilaritySettings
from services.webhooks.settings import WebhookSettings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
APP_SERVICES = {"migrate", "ingest", "graph", "similarity", "webhooks", "access", "projector", "worker",
                "webhook-worker", "reembed-worker", "coordinator", "scheduler", "gateway"}  # fmt: skip


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())  # type: ignore[no-any-return]


def documented() -> set[str]:
    return set(re.findall(r"^\| `([A-Z_]+)` \|", (DEPLOY / "README.md").read_text(), flags=re.M))


def env_names(settings: type[BaseSettings]) -> set[str]:
    names = set()
    for name, field in settings.model_fields.items():
        alias = field.validation_alias
        choices = getattr(alias, "choices", None)
        if isinstance(alias, str):
            names.add(alias)
        elif choices:
            names.add(str(choices[0]))
        else:
            names.add(f"PLATOGRAPH_{name.upper()}")
    return names


def test_every_service_has_image_command_and_environment() -> None:
    services = compose()["services"]
    assert APP_SERVICES | {"valkey", "postgres", "qdrant"} == set(services)
    for name, spec in services.items():
        assert isinstance(spec.get("image"), str) and spec["image"], name
        assert isinstance(spec.get("command"), list) and spec["command"], name
        assert isinstance(spec.get("environment"), dict), name


def test_app_services_run_real_entry_points() -> None:
    services = compose()["services"]
    factories = {s["command"][2] for s in services.values() if s["command"][0] == "uvicorn"}
    assert factories == {
        "services.ingest.entrypoints.http:create_app",
        "services.graph.entrypoints.http:create_app",
        "services.similarity.entrypoints.http:create_app",
        "services.webhooks.entrypoints.http:create_app",
        "services.access.entrypoints.http:create_app",
        "gateway.app:create_app",
    }
    for factory in factories:
        module, _, attr = factory.partition(":")
        assert callable(getattr(__import__(module, fromlist=[attr]), attr))
    assert {tuple(services[n]["command"]) for n in ("projector", "worker", "migrate")} == {
        ("platograph", "projector"),
        ("platograph", "worker"),
        ("platograph", "migrate"),
    }
    assert services["webhook-worker"]["command"][:4] == ["platograph", "worker", "--queue", "platograph-webhooks"]
    assert services["scheduler"]["command"][:2] == ["platograph", "scheduler"]
    assert services["reembed-worker"]["command"][:4] == ["platograph", "worker", "--queue", "platograph-reembed"]
    assert services["coordinator"]["command"] == ["platograph", "coordinator"]


def test_app_environment_points_at_the_compose_servers_and_takes_its_credentials_from_secrets() -> None:
    spec = compose()
    services, declared = spec["services"], spec["secrets"]
    for name in APP_SERVICES:
        env = services[name]["environment"]
        assert env["PLATOGRAPH_SECRETS_DIR"] == "/run/secrets"
        assert not {"REDIS_URL", "DATABASE_URL", "PLATOGRAPH_INTERNAL_TOKEN", "PLATOGRAPH_WEBHOOK_KEY"} & set(env)
        assert set(services[name]["secrets"]) == {"REDIS_URL", "DATABASE_URL", "PLATOGRAPH_INTERNAL_TOKEN",
                                                  "PLATOGRAPH_WEBHOOK_KEY"}  # fmt: skip
        assert set(env) <= documented(), set(env) - documented()
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    assert "/run/secrets/valkey_password" in services["valkey"]["command"][-1]
    assert all(set(source) == {"file"} for source in declared.values())  # files, not values in this file
    assert "PASSWORD:" not in (DEPLOY / "docker-compose.yml").read_text().replace("PASSWORD_FILE:", "")


def test_the_secret_files_the_compose_file_mounts_are_made_once_and_read_as_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = deploy_secrets(tmp_path / "secrets")
    assert set(made) == set(compose()["secrets"])
    assert deploy_secrets(tmp_path / "secrets") == []  # kept: running it again changes nothing
    assert oct((tmp_path / "secrets" / "REDIS_URL").stat().st_mode & 0o777) == "0o600"
    for name in ("REDIS_URL", "DATABASE_URL", "PLATOGRAPH_INTERNAL_TOKEN", "PLATOGRAPH_WEBHOOK_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PLATOGRAPH_SECRETS_DIR", str(tmp_path / "secrets"))
    settings = WebhookSettings()
    password = (tmp_path / "secrets" / "valkey_password").read_text()
    assert settings.redis_url == f"redis://:{password}@valkey:6379/0"
    assert settings.internal_token == (tmp_path / "secrets" / "PLATOGRAPH_INTERNAL_TOKEN").read_text()
    assert settings.webhook_key == (tmp_path / "secrets" / "PLATOGRAPH_WEBHOOK_KEY").read_text()
    assert InternalSettings().internal_token == settings.internal_token  # what the services check callers with
    monkeypatch.setenv("PLATOGRAPH_INTERNAL_TOKEN", "x" * 40)
    assert WebhookSettings().internal_token == "x" * 40  # the environment wins over a file


def test_every_setting_is_documented() -> None:
    read = set().union(
        *(
            env_names(s)
            for s in (
                IngestSettings,
                GraphSettings,
                GatewaySettings,
                UpSettings,
                SimilaritySettings,
                WebhookSettings,
                ReembedSettings,
                AccessSettings,
            )
        )
    )
    assert read - documented() == set()
