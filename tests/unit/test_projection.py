import uuid
from datetime import UTC, datetime, timedelta

from platograph.contracts import EdgeAdded, EdgeRemoved, EntityRetracted, EntityUpserted, Frozen, new_envelope
from services.graph.domain.projection import PositionedEvent, fold

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def event(payload: Frozen, position: int, type_: str | None = None) -> PositionedEvent:
    envelope = new_envelope(payload, producer="test", at=T0 + timedelta(seconds=position))
    if type_ is not None:
        envelope = envelope.model_copy(update={"type": type_})
    return PositionedEvent(position=position, stream_id=f"{position}-0", envelope=envelope)


def test_latest_upsert_by_position_wins_whatever_the_order() -> None:
    old = event(EntityUpserted(id="concept:a", type="concept", name="old"), 1)
    new = event(EntityUpserted(id="concept:a", type="concept", name="new"), 2)
    for events in ([old, new], [new, old]):
        row = fold(events).entity_rows()[0]
        assert row["name"] == "new" and row["position"] == 2 and row["version"] == 2
        assert row["created_at"] == T0 + timedelta(seconds=1) and row["updated_at"] == T0 + timedelta(seconds=2)


def test_retraction_is_a_status_register_of_its_own() -> None:
    up = event(EntityUpserted(id="claim:c", type="claim", name="C"), 1)
    retract = event(EntityRetracted(id="claim:c"), 2)
    row = fold([retract, up]).entity_rows()[0]
    assert row["status"] == "retracted" and row["name"] == "C"
    later_up = event(EntityUpserted(id="claim:c", type="claim", name="C2"), 3)
    assert fold([up, retract, later_up]).entity_rows()[0]["status"] == "active"


def test_retraction_alone_leaves_an_invisible_placeholder() -> None:
    row = fold([event(EntityRetracted(id="claim:c"), 5)]).entity_rows()[0]
    assert row["version"] == 0 and row["position"] == 0 and row["status"] == "retracted"


def test_edge_add_and_remove_are_last_writer_wins() -> None:
    add = event(EdgeAdded(source="concept:a", target="concept:b", type="refines", description="d"), 1)
    remove = event(EdgeRemoved(source="concept:a", target="concept:b", type="refines"), 2)
    assert fold([add, remove]).edge_rows()[0]["removed"] is True
    assert fold([remove, add]).edge_rows()[0]["removed"] is True
    row = fold([remove, add, event(EdgeAdded(source="concept:a", target="concept:b", type="refines"), 3)]).edge_rows()[
        0
    ]
    assert row["removed"] is False and row["created_at"] == T0 + timedelta(seconds=1)


def test_unknown_event_types_change_nothing() -> None:
    other = event(EntityUpserted(id="concept:a", type="concept", name="A"), 1, type_="webhook.delivered")
    deltas = fold([other])
    assert deltas.entities == {} and deltas.edges == {}


def test_rows_are_sorted_so_concurrent_writers_lock_in_one_order() -> None:
    ids = [f"concept:{uuid.uuid4().hex}" for _ in range(20)]
    deltas = fold([event(EntityUpserted(id=i, type="concept", name=i), n + 1) for n, i in enumerate(ids)])
    assert [r["id"] for r in deltas.entity_rows()] == sorted(ids)
