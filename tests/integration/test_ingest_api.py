"""The ingest API against a real Redis: accepted writes land on the stream, bad ones touch nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import redis
from fastapi.testclient import TestClient

from platograph.contracts import decode_entry
from services.ingest.bootstrap import bootstrap
from services.ingest.entrypoints.http import create_app
from services.ingest.settings import IngestSettings

pytestmark = pytest.mark.integration


@pytest.fixture
def client(env: dict[str, str]) -> Iterator[TestClient]:
    settings = IngestSettings(max_batch=5, max_import_lines=10)
    with TestClient(create_app(bootstrap(settings))) as c:
        yield c


def events_on(redis_client: redis.Redis, stream: str) -> list[dict[str, Any]]:
    return [e for _, fields in redis_client.xrange(stream) for e in decode_entry(fields)]


def test_entity_batch_is_accepted_with_ids_events_and_position(
    client: TestClient, redis_client: redis.Redis, stream: str
) -> None:
    body = [{"id": "concept:a", "name": "A"}, {"id": "paper:p", "name": "P", "attributes": {"year": 2024}}]
    response = client.post("/v1/entities", json=body)
    assert response.status_code == 202, response.text
    reply = response.json()
    assert reply["entities"] == ["concept:a", "paper:p"]
    events = events_on(redis_client, stream)
    assert [e["event_id"] for e in events] == reply["event_ids"]
    assert [e["type"] for e in events] == ["entity.upserted"] * 2
    assert redis_client.xrange(stream)[-1][0].decode() == reply["position"]


def test_edge_reply_says_what_happens_to_missing_endpoints(client: TestClient) -> None:
    response = client.post("/v1/edges", json={"source": "paper:nope", "target": "quote:later", "type": "introduces"})
    assert response.status_code == 202
    assert "dangling=true" in response.json()["missing_endpoints"]


@pytest.mark.parametrize(
    ("path", "body", "status", "loc"),
    [
        ("/v1/entities", {"id": "widget:a", "name": "A"}, 422, ["body", "id"]),
        ("/v1/entities", {"id": "concept:a"}, 422, ["body", "name"]),
        ("/v1/entities", {"id": "concept:a", "name": "x" * 1001}, 422, ["body", "name"]),
        ("/v1/entities", [{"id": f"concept:c{i}", "name": "c"} for i in range(6)], 413, ["body"]),
        ("/v1/edges", {"source": "concept:a", "target": "quote:b", "type": "gates"}, 422, ["body", "type"]),
        (
            "/v1/edges",
            [{"source": "paper:a", "target": "quote:b", "type": "introduces"}, {"source": "paper:a"}],
            422,
            ["body", 1, "target"],
        ),
    ],
)
def test_bad_input_is_a_4xx_naming_the_field_and_appends_nothing(
    client: TestClient, redis_client: redis.Redis, stream: str, path: str, body: Any, status: int, loc: list[Any]
) -> None:
    response = client.post(path, json=body)
    assert response.status_code == status, response.text
    assert loc in [e["loc"] for e in response.json()["detail"]]
    assert redis_client.xlen(stream) == 0


def test_malformed_json_is_400(client: TestClient, redis_client: redis.Redis, stream: str) -> None:
    response = client.post("/v1/entities", content=b'{"id": "concept:a",', headers={"content-type": "application/json"})
    assert response.status_code == 400 and response.json()["detail"][0]["loc"] == ["body"]
    assert redis_client.xlen(stream) == 0


def test_idempotency_key_makes_a_retry_a_no_op(client: TestClient, redis_client: redis.Redis, stream: str) -> None:
    body = {"id": "concept:a", "name": "A"}
    first = client.post("/v1/entities", json=body, headers={"Idempotency-Key": "abc"})
    second = client.post("/v1/entities", json=body, headers={"Idempotency-Key": "abc"})
    assert first.status_code == second.status_code == 202
    assert second.json()["replayed"] and second.json()["event_ids"] == first.json()["event_ids"]
    assert redis_client.xlen(stream) == 1
    other = client.post("/v1/entities", json={"id": "concept:b", "name": "B"}, headers={"Idempotency-Key": "abc"})
    assert other.status_code == 422 and other.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]


def test_ndjson_import_is_all_or_nothing(client: TestClient, redis_client: redis.Redis, stream: str) -> None:
    good = [{"kind": "entity", "id": f"concept:c{i}", "name": "c"} for i in range(3)]
    bad = good + [{"kind": "edge", "source": "concept:c0", "target": "concept:c1", "type": "cites"}]
    body = b"\n".join(orjson.dumps(x) for x in bad)
    response = client.post("/v1/import", content=body, headers={"content-type": "application/x-ndjson"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "line 4", "type"]
    assert redis_client.xlen(stream) == 0
    ndjson = {"content-type": "application/x-ndjson"}
    ok = client.post("/v1/import", content=b"\n".join(orjson.dumps(x) for x in good), headers=ndjson)
    assert ok.status_code == 202 and ok.json()["entity_count"] == 3
    too_many = client.post("/v1/import", content=b"\n".join(orjson.dumps(good[0]) for _ in range(11)), headers=ndjson)
    assert too_many.status_code == 413


@pytest.mark.parametrize(
    ("path", "body", "loc"),
    [
        ("/v1/entities", b'{"id": "concept:a", "name": "A\\u0000"}', ["body", "name"]),
        ("/v1/entities", b'[{"id": "concept:a", "name": "A", "attributes": {"k": ["ok", "\\ud800"]}}]',
         ["body", 0, "attributes", "k", 1]),
        ("/v1/edges", b'{"source": "concept:a", "target": "concept:b", "type": "refines", "description": "\\u0000"}',
         ["body", "description"]),
        ("/v1/import", b'{"kind": "entity", "id": "concept:a", "name": "A"}\n{"kind": "entity", "id": "concept:b", '
         b'"name": "B", "text": "\\u0000"}', ["body", "line 2", "text"]),
    ],
)  # fmt: skip
def test_text_postgres_cannot_store_is_a_422_naming_it_and_appends_nothing(
    client: TestClient, redis_client: redis.Redis, stream: str, path: str, body: bytes, loc: list[Any]
) -> None:
    # Accepted, a NUL stopped the projection (the projector now dead-letters such an entry, but the write
    # was acknowledged and then lost): it must be refused at the door.
    response = client.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    (detail,) = response.json()["detail"]
    assert detail["loc"] == loc and detail["type"] == "string_unstorable"
    assert redis_client.xlen(stream) == 0


def test_escaped_surrogate_pairs_and_literal_backslash_u_are_fine(client: TestClient) -> None:
    body = b'{"id": "concept:a", "name": "emoji \\ud83d\\ude00", "text": "a literal \\\\u0000"}'
    response = client.post("/v1/entities", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 202, response.text


def test_event_log_down_is_503(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    with TestClient(create_app(bootstrap(IngestSettings()))) as c:
        response = c.post("/v1/entities", json={"id": "concept:a", "name": "A"})
    assert response.status_code == 503 and response.headers["retry-after"] == "1"


def test_a_body_in_another_content_type_is_refused_with_415(client: TestClient, redis_client: redis.Redis,
                                                            stream: str) -> None:  # fmt: skip
    """What a cross-site form can send (text/plain) never reaches the event log."""
    body = orjson.dumps({"id": "concept:form", "name": "Sent by a form"})
    for path, kind in (("/v1/entities", "text/plain"), ("/v1/edges", "application/x-www-form-urlencoded"),
                       ("/v1/import", "text/plain")):  # fmt: skip
        refused = client.post(path, content=body, headers={"content-type": kind})
        assert refused.status_code == 415, (path, refused.text)
        assert refused.json()["detail"][0]["loc"] == ["header", "content-type"]
    assert redis_client.xlen(stream) == 0
