import asyncio

import pytest

from platograph.contracts import EdgeAdded, EntityUpserted
from services.ingest.domain.validation import InvalidInput
from services.ingest.service_layer import writes
from tests.fakes import FakeEventLog

PAYLOADS = [
    EntityUpserted(id="concept:a", type="concept", name="A"),
    EntityUpserted(id="concept:b", type="concept", name="B"),
    EdgeAdded(source="concept:a", target="concept:b", type="refines"),
]


def accept(log: FakeEventLog, key: str | None, body: bytes = b"body", per_entry: int = 1000) -> dict:
    return asyncio.run(
        writes.accept(
            PAYLOADS, log=log, key=key, body_hash=writes.request_hash(body), events_per_entry=per_entry, ttl_s=60
        )
    )


def test_reply_names_ids_events_and_position() -> None:
    log = FakeEventLog()
    reply = accept(log, None)
    assert reply["entities"] == ["concept:a", "concept:b"]
    assert reply["edges"] == [{"source": "concept:a", "type": "refines", "target": "concept:b"}]
    assert len(reply["event_ids"]) == 3 and reply["position"] == log.entries[-1][0]
    assert "missing_endpoints" in reply


def test_events_are_split_into_entries() -> None:
    log = FakeEventLog()
    accept(log, None, per_entry=2)
    assert [len(envs) for _, envs in log.entries] == [2, 1]


def test_idempotency_key_makes_a_retry_a_no_op() -> None:
    log = FakeEventLog()
    first = accept(log, "k1")
    second = accept(log, "k1")
    assert len(log.entries) == 1
    assert second["replayed"] and second["event_ids"] == first["event_ids"]


def test_event_ids_are_derived_from_the_key_so_expired_keys_still_dedupe() -> None:
    log_a, log_b = FakeEventLog(), FakeEventLog()
    assert accept(log_a, "k1")["event_ids"] == accept(log_b, "k1")["event_ids"]
    assert accept(FakeEventLog(), None)["event_ids"] != accept(FakeEventLog(), None)["event_ids"]


def test_a_key_reused_with_another_body_is_refused() -> None:
    log = FakeEventLog()
    accept(log, "k1", b"one")
    with pytest.raises(InvalidInput) as info:
        accept(log, "k1", b"two")
    assert info.value.errors[0]["loc"] == ["header", "Idempotency-Key"]
