"""Every appended event carries its actor, set by the gateway from the API key (never from a body), and the
journal reads back as an audit log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.helpers import eventually
from tests.integration.test_gateway import system

pytestmark = pytest.mark.integration


@pytest.fixture
def api(env: dict[str, str], engine: Any, tmp_path: Path) -> Iterator[TestClient]:
    yield from system(tmp_path / "index")


def holder(api: TestClient, name: str, *scopes: str) -> tuple[str, dict[str, str]]:
    made = api.post("/v1/keys", json={"name": name, "scopes": list(scopes)}).json()
    return made["id"], {"Authorization": f"Bearer {made['key']}"}


def audit(api: TestClient, **params: Any) -> list[dict[str, Any]]:
    return list(api.get("/v1/audit", params=params | {"limit": 500}).json()["items"])


def test_writes_decisions_and_merges_record_the_key_that_made_them(api: TestClient) -> None:
    writer_id, writer = holder(api, "writer", "write")
    reviewer_id, reviewer = holder(api, "rita", "review")
    entities = [{"id": "claim:a", "name": "Alpha claim"}, {"id": "claim:b", "name": "Alpha claim, again"}]
    written = api.post("/v1/entities", json=entities, headers=writer)
    assert written.status_code == 202
    api.get("/v1/projection", params={"position": written.json()["position"], "wait_ms": 5000})
    merged = api.post("/v1/entities/claim:b/merge", json={"into": "claim:a", "by": "somebody else"}, headers=reviewer)
    assert merged.status_code == 202, merged.text
    api.get("/v1/projection", params={"position": merged.json()["position"], "wait_ms": 5000})

    upserts = eventually(lambda: audit(api, actor=writer_id, type="entity.upserted"))
    assert {e["payload"]["id"] for e in upserts} == {"claim:a", "claim:b"}
    assert all(e["actor"] == {"id": writer_id, "name": "writer"} for e in upserts)
    (merge,) = audit(api, actor="rita")  # by name too
    assert merge["type"] == "entity.merged" and merge["actor"] == {"id": reviewer_id, "name": "rita"}
    assert merge["payload"]["by"] == "rita" and merge["payload"]["note"] == "somebody else"
    assert audit(api, actor="nobody") == []
    # Newest first, paged by cursor.
    mine = {"actor": writer_id, "limit": 1}
    first = api.get("/v1/audit", params=mine).json()
    second = api.get("/v1/audit", params=mine | {"cursor": first["next_cursor"]}).json()
    assert [first["items"][0]["payload"]["id"], second["items"][0]["payload"]["id"]] == ["claim:b", "claim:a"]
    assert second["next_cursor"] is None
    assert api.get("/v1/audit", params={"cursor": "nonsense"}).status_code == 422


def test_an_idempotency_key_belongs_to_the_key_that_sent_it(api: TestClient) -> None:
    _, one = holder(api, "one", "write")
    _, two = holder(api, "two", "write")
    same = {"Idempotency-Key": "import-1"}
    first = api.post("/v1/entities", json=[{"id": "concept:one", "name": "One"}], headers=one | same)
    other = api.post("/v1/entities", json=[{"id": "concept:two", "name": "Two"}], headers=two | same)
    assert first.status_code == other.status_code == 202
    assert other.json()["replayed"] is False and other.json()["entities"] == ["concept:two"]
    again = api.post("/v1/entities", json=[{"id": "concept:one", "name": "One"}], headers=one | same)
    assert again.json()["replayed"] is True
