"""The Kubernetes manifests: both overlays render with `kubectl kustomize`, every container's environment is
what its process's settings classes read (nothing unknown, nothing required missing, every value valid),
and every pod is hardened, sized, probed and fenced."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.fernet import Fernet
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from gateway.settings import GatewaySettings
from platograph.internal import InternalSettings
from platograph.observability import TelemetrySettings
from platograph.settings import CoreSettings, DatabaseSettings
from services.access.settings import AccessSettings
from services.graph.settings import GraphSettings
from services.ingest.settings import IngestSettings
from services.similarity.entrypoints.reembed_jobs import ReembedSettings
from services.similarity.settings import SimilaritySettings
from services.webhooks.settings import WebhookSettings

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
OVERLAYS = ("small", "large")
EVERY_PROCESS = (InternalSettings, TelemetrySettings)
# What each command reads (its jobs' settings included): the key is the uvicorn factory, or the
# `platograph` subcommand (with the queue, for workers).
PROCESSES: dict[str, tuple[type[BaseSettings], ...]] = {
    "gateway.app:create_app": (GatewaySettings,),
    "services.ingest.entrypoints.http:create_app": (IngestSettings,),
    "services.graph.entrypoints.http:create_app": (GraphSettings,),
    "services.similarity.entrypoints.http:create_app": (SimilaritySettings,),
    "services.webhooks.entrypoints.http:create_app": (WebhookSettings,),
    "services.access.entrypoints.http:create_app": (AccessSettings,),
    "projector": (GraphSettings,),
    "worker platograph": (CoreSettings, DatabaseSettings),  # rebuilds
    "worker platograph-webhooks": (WebhookSettings,),
    "worker platograph-reembed": (ReembedSettings,),
    "coordinator": (ReembedSettings,),
    "scheduler": (CoreSettings,),
    "migrate": (DatabaseSettings,),
}
READ_OUTSIDE_SETTINGS = {"PLATOGRAPH_SECRETS_DIR", "PLATOGRAPH_HEALTH_URL"}  # platograph/settings.py, probe.py
# Stand-ins for the Secret's values, to check that the settings accept the rest.
SECRET_VALUES = {
    "REDIS_URL": "redis://:password@valkey:6379/0",
    "DATABASE_URL": "postgresql://platograph:password@postgres:5432/platograph",
    "PLATOGRAPH_INTERNAL_TOKEN": "t" * 40,
    "PLATOGRAPH_WEBHOOK_KEY": Fernet.generate_key().decode(),
}


def names_of(settings: type[BaseSettings]) -> dict[str, set[str]]:
    """Each field's environment variable names, as pydantic-settings looks them up."""
    prefix = str(settings.model_config.get("env_prefix", ""))
    names = {}
    for field_name, field in settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names[field_name] = {str(choice).upper() for choice in alias.choices}
        else:
            names[field_name] = {(alias if isinstance(alias, str) else prefix + field_name).upper()}
    return names


def render(overlay: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        if os.environ.get("CI"):
            pytest.fail("kubectl is missing: .ci/run installs it")
        pytest.skip("kubectl is not installed")
    rendered = subprocess.run([kubectl, "kustomize", str(K8S / "overlays" / overlay)],
                              capture_output=True, text=True, check=True, timeout=60)  # fmt: skip
    return [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def docs(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(request.param)


def workloads(docs: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield doc, doc["spec"]["template"]["spec"]


def process(container: dict[str, Any]) -> str:
    command = container["command"]
    if command[0] == "uvicorn":
        return str(command[command.index("--factory") + 1])
    assert command[0] == "platograph", command
    if command[1] == "worker":
        return f"worker {command[command.index('--queue') + 1]}"
    return str(command[1])


def environment(docs: list[dict[str, Any]], pod: dict[str, Any], container: dict[str, Any]) -> dict[str, str]:
    """What the process sees: the ConfigMaps, its own variables, and the Secret files under the secrets dir."""
    config_maps = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        name = source["configMapRef"]["name"]
        assert name in config_maps, f"no ConfigMap {name}"
        env |= config_maps[name]
    for variable in container.get("env", []):
        env[variable["name"]] = variable.get("value", "a-pod-name-0")
    mounts = {m["name"]: m["mountPath"] for m in container.get("volumeMounts", [])}
    for volume in pod.get("volumes", []):
        if "secret" in volume and mounts.get(volume["name"]) == env.get("PLATOGRAPH_SECRETS_DIR"):
            for item in volume["secret"]["items"]:
                env[item["path"]] = SECRET_VALUES[item["key"]]
    return env


def test_every_container_runs_a_known_process_and_reads_every_variable_it_is_given(
    docs: list[dict[str, Any]],
) -> None:
    everything = set(READ_OUTSIDE_SETTINGS)
    for classes in PROCESSES.values():
        for settings in (*classes, *EVERY_PROCESS):
            everything |= set().union(*names_of(settings).values())
    seen = set()
    for doc, pod in workloads(docs):
        for container in pod["containers"]:
            key = process(container)
            assert key in PROCESSES, f"{doc['metadata']['name']}: unknown process {key}"
            seen.add(key)
            own = set(READ_OUTSIDE_SETTINGS)
            for settings in (*PROCESSES[key], *EVERY_PROCESS):
                own |= set().union(*names_of(settings).values())
            env = environment(docs, pod, container)
            assert set(env) <= everything, f"{doc['metadata']['name']}: nothing reads {set(env) - everything}"
            given = {v["name"] for v in container.get("env", [])}
            assert given <= own, f"{doc['metadata']['name']}: {key} does not read {given - own}"
    assert seen == set(PROCESSES), f"not deployed: {set(PROCESSES) - seen}"


def test_every_process_gets_each_required_setting_and_accepts_the_values(
    docs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    for doc, pod in workloads(docs):
        for container in pod["containers"]:
            key = process(container)
            env = environment(docs, pod, container)
            for settings in (*PROCESSES[key], *EVERY_PROCESS):
                for field_name, names in names_of(settings).items():
                    if settings.model_fields[field_name].is_required():
                        assert names & set(env), f"{doc['metadata']['name']}: {key} needs one of {names}"
                for name in list(os.environ):
                    monkeypatch.delenv(name)
                for name, value in env.items():
                    if name != "PLATOGRAPH_SECRETS_DIR":  # the files' stand-in values are in env already
                        monkeypatch.setenv(name, value)
                settings()  # a value the process would refuse at start-up fails here


def test_every_pod_is_non_root_read_only_and_sized(docs: list[dict[str, Any]]) -> None:
    for doc, pod in workloads(docs):
        name = doc["metadata"]["name"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0, name
        assert pod["automountServiceAccountToken"] is False, name
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False and context["readOnlyRootFilesystem"] is True, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]) and "memory" in resources["limits"], name


def test_every_http_process_has_probes_on_its_own_port_and_a_disruption_budget(docs: list[dict[str, Any]]) -> None:
    budgets = {tuple(d["spec"]["selector"]["matchLabels"].items()) for d in docs if d["kind"] == "PodDisruptionBudget"}
    for doc, pod in workloads(docs):
        for container in pod["containers"]:
            if container["command"][0] != "uvicorn":
                continue
            port = container["command"][container["command"].index("--port") + 1]
            for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
                command = container[probe]["exec"]["command"]
                assert command[:3] == ["python", "-m", "platograph.probe"], doc["metadata"]["name"]
                assert command[3] == f"http://127.0.0.1:{port}{path}", doc["metadata"]["name"]
            labels = tuple(doc["spec"]["selector"]["matchLabels"].items())
            assert labels in budgets, f"no PodDisruptionBudget for {doc['metadata']['name']}"


def test_only_the_gateway_is_reachable_from_outside(docs: list[dict[str, Any]]) -> None:
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    deny = [p for p in policies if p["spec"]["podSelector"] == {} and "ingress" not in p["spec"]]
    assert deny and deny[0]["spec"]["policyTypes"] == ["Ingress"], "a default deny of every ingress"
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            if "from" not in rule:  # open to any source
                assert policy["spec"]["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "gateway"}}
                assert rule["ports"] == [{"port": 8000, "protocol": "TCP"}]
    public = [d for d in docs if d["kind"] == "Service" and d["spec"].get("type") in ("LoadBalancer", "NodePort")]
    assert public == [], "no Service is exposed past the cluster (put an Ingress in front of `gateway`)"


def test_the_large_overlay_scales_out() -> None:
    docs = render("large")
    replicas = {
        d["metadata"]["name"]: d["spec"].get("replicas") for d in docs if d["kind"] in ("Deployment", "StatefulSet")
    }
    assert (replicas["gateway"], replicas["ingest"], replicas["projector"], replicas["webhook-worker"]) == (3, 2, 4, 4)
    assert replicas["similarity"] == 2  # replicas share the model state (services/similarity/service_layer/replicas.py)
    (scaled,) = [d for d in docs if d["kind"] == "ScaledObject"]
    assert scaled["spec"]["scaleTargetRef"]["name"] == "reembed-worker" and scaled["spec"]["maxReplicaCount"] == 8
    assert scaled["spec"]["triggers"][0]["metadata"]["listName"] == "rq:queue:platograph-reembed"
    (projector,) = [d for d in docs if d["kind"] == "StatefulSet"]
    env = projector["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "PLATOGRAPH_CONSUMER", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in env
