"""The compose file parses, names an image, a command and its environment for every service, and every
variable it sets or any settings class reads is documented in deploy/README.md."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic_settings import BaseSettings

from gateway.settings import GatewaySettings
from ops.supervisor import UpSettings
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


def test_app_environment_points_at_the_compose_servers() -> None:
    services = compose()["services"]
    for name in APP_SERVICES:
        env = services[name]["environment"]
        assert env["REDIS_URL"].startswith("redis://:${VALKEY_PASSWORD:?") and "@valkey:6379/" in env["REDIS_URL"]
        assert env["DATABASE_URL"].startswith("postgresql://platograph:${POSTGRES_PASSWORD:?")  # from a secret
        assert env["DATABASE_URL"].endswith("@postgres:5432/platograph")
        assert set(env) <= documented(), set(env) - documented()


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
