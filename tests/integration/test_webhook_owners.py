"""A webhook subscription belongs to the owner of the key that made it: another owner never sees or touches
it (404, as if it did not exist); an admin sees every owner's; a retried create makes one subscription."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient

from tests.integration.test_gateway import system

pytestmark = pytest.mark.integration
HOOK = {"url": "http://127.0.0.1:9999/hook", "event_types": ["candidate.proposed"]}


@pytest.fixture
def api(env: dict[str, str], engine: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("PLATOGRAPH_WEBHOOK_KEY", Fernet.generate_key().decode())
    monkeypatch.setenv("PLATOGRAPH_WEBHOOK_ALLOWLIST", "127.0.0.0/8")
    monkeypatch.setenv("PLATOGRAPH_DISPATCH", "false")
    yield from system(tmp_path / "index", webhooks=True)


def owner(api: TestClient, name: str) -> dict[str, str]:
    made = api.post("/v1/keys", json={"name": name, "scopes": ["webhooks"]})
    assert made.status_code == 201, made.text
    return {"Authorization": f"Bearer {made.json()['key']}"}


def test_two_owners_never_cross(api: TestClient) -> None:
    alice, bob = owner(api, "alice"), owner(api, "bob")
    made = api.post("/v1/webhooks", json=HOOK, headers=alice)
    assert made.status_code == 201, made.text
    hook = made.json()["id"]
    assert made.json()["owner"] == "alice" and made.json()["created_by"].startswith("alice (key_")
    assert [h["id"] for h in api.get("/v1/webhooks", headers=alice).json()["items"]] == [hook]
    assert api.get("/v1/webhooks", headers=bob).json()["items"] == []
    since = {"since": "2026-01-01T00:00:00Z"}
    foreign = [
        ("GET", f"/v1/webhooks/{hook}", None), ("PATCH", f"/v1/webhooks/{hook}", {"description": "mine now"}),
        ("POST", f"/v1/webhooks/{hook}/pause", None), ("POST", f"/v1/webhooks/{hook}/resume", None),
        ("POST", f"/v1/webhooks/{hook}/rotate-secret", {}), ("POST", f"/v1/webhooks/{hook}/replay", since),
        ("GET", f"/v1/webhooks/{hook}/deliveries", None),
        ("GET", f"/v1/webhooks/{hook}/deliveries/00000000-0000-0000-0000-000000000000", None),
        ("POST", f"/v1/webhooks/{hook}/deliveries/00000000-0000-0000-0000-000000000000/retry", None),
        ("DELETE", f"/v1/webhooks/{hook}", None),
    ]  # fmt: skip
    for method, path, body in foreign:
        refused = api.request(method, path, json=body, headers=bob)
        assert refused.status_code == 404, (method, path, refused.status_code, refused.text)
    assert api.get(f"/v1/webhooks/{hook}", headers=alice).json()["description"] == ""  # untouched
    assert api.post(f"/v1/webhooks/{hook}/pause", headers=alice).json()["state"] == "paused"
    # Who last changed it: here the admin key of the test client, which may touch every owner's.
    assert api.patch(f"/v1/webhooks/{hook}", json={"description": "seen"}).json()["changed_by"].startswith("it-admin")
    rotated = api.post(f"/v1/webhooks/{hook}/rotate-secret", json={}, headers=alice)
    assert rotated.status_code == 200 and rotated.json()["secret"].startswith("whsec_")
    # The admin key of the test client sees every owner's subscriptions.
    bobs = api.post("/v1/webhooks", json=HOOK, headers=bob).json()["id"]
    assert {h["id"] for h in api.get("/v1/webhooks").json()["items"]} >= {hook, bobs}
    assert api.get(f"/v1/webhooks/{hook}").status_code == 200
    assert api.delete(f"/v1/webhooks/{hook}", headers=alice).status_code == 204


def test_a_retried_create_makes_one_subscription(api: TestClient) -> None:
    alice, bob = owner(api, "alice"), owner(api, "bob")
    once = {"Idempotency-Key": "register-1"}
    first = api.post("/v1/webhooks", json=HOOK, headers=alice | once).json()
    again = api.post("/v1/webhooks", json=HOOK, headers=alice | once).json()
    assert again["id"] == first["id"] and again["secret"] == first["secret"] and again["replayed"] is True
    assert first["replayed"] is False
    assert len(api.get("/v1/webhooks", headers=alice).json()["items"]) == 1
    # The same Idempotency-Key from another owner is another request.
    assert api.post("/v1/webhooks", json=HOOK, headers=bob | once).json()["id"] != first["id"]
