"""The image: pinned by the lock file (which still satisfies pyproject.toml), not root, with a health
check, and a build context that can never carry the secrets."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "deploy" / "Dockerfile").read_text()


def _locked() -> dict[str, tuple[str, int]]:
    """name -> (version, hashes) of every pin in deploy/requirements.lock."""
    pins: dict[str, tuple[str, int]] = {}
    for block in re.split(r"\n(?=\S)", (ROOT / "deploy" / "requirements.lock").read_text()):
        if match := re.match(r"([A-Za-z0-9_.\-]+)==(\S+)", block):
            pins[canonicalize_name(match[1])] = (match[2], block.count("--hash=sha256:"))
    return pins


def test_every_dependency_is_locked_at_a_version_it_allows_with_hashes() -> None:
    pins = _locked()
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for line in declared:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not in deploy/requirements.lock: run `make lock`"
        version, _ = pins[name]
        assert requirement.specifier.contains(version), f"{name}=={version} no longer meets {line}: `make lock`"
    assert all(hashes for _, hashes in pins.values()), "every pin carries its hashes"


def test_the_image_installs_from_the_lock_and_runs_as_a_numeric_non_root_user() -> None:
    assert "pip install --no-cache-dir --require-hashes -r requirements.lock" in DOCKERFILE
    assert "pip install --no-cache-dir --no-deps ." in DOCKERFILE, "the project itself adds no unpinned package"
    users = re.findall(r"^USER (\S+)", DOCKERFILE, re.MULTILINE)
    assert users, "the image must not run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) > 0


def test_the_image_checks_readiness_with_the_probe() -> None:
    assert re.search(r"^HEALTHCHECK .*CMD \[\"python\", \"-m\", \"platograph.probe\"\]", DOCKERFILE, re.MULTILINE)


def test_the_build_context_leaves_out_secrets_and_local_state_but_keeps_what_is_copied() -> None:
    ignored = {
        line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")
    }
    assert {"deploy/secrets", ".venv", ".git", ".platograph"} <= ignored
    for source in re.findall(r"^COPY (\S+(?: \S+)*) \S+$", DOCKERFILE, re.MULTILINE):
        for path in source.split():
            assert path not in ignored and not any(path.startswith(f"{i}/") for i in ignored), path
            assert (ROOT / path).exists(), path
