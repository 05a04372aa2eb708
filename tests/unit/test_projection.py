import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from pydantic import ValidationError

from platograph.contracts import (
    Actor,
    CandidateProposed,
    CandidateWithdrawn,
    EdgeAdded,
    EdgeRemoved,
    EntityRetracted,
    EntityUpserted,
    Envelope,
    Frozen,
    decode_entry,
    decode_typed,
    encode_entry,
    new_envelope,
    new_envelopes,
    parse_payload,
)
from platograph.positions import event_position
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


def test_a_pairs_state_follows_what_caused_it_not_which_replica_appended_first() -> None:
    """Two similarity replicas: one proposes a pair for entry 1000-0, the other withdraws it for an edge in
    entry 2000-0 and appends first. The withdrawal's cause is later, so it wins in either fold order; with
    no causes (events from before causes existed), the later append wins, as it always did."""

    def appended(payload: Frozen, entry_id: str) -> PositionedEvent:
        return PositionedEvent(event_position(entry_id, 0), entry_id, new_envelope(payload, producer="similarity"))

    proposal = CandidateProposed(a="claim:a", b="claim:b", score=0.8, kind="link", model="m", cause="1000-0")
    withdrawal = CandidateWithdrawn(a="claim:a", b="claim:b", reason="typed edge added: supports", cause="2000-0")
    events = [appended(withdrawal, "3000-0"), appended(proposal, "4000-0")]
    for order in (events, events[::-1]):
        row = fold(order).candidate_rows()[0]
        assert row["status"] == "withdrawn" and row["state_reason"] == "typed edge added: supports"
        assert row["score"] == 0.8  # the proposal's details are kept all the same
    uncaused = [appended(withdrawal.model_copy(update={"cause": None}), "3000-0"),
                appended(proposal.model_copy(update={"cause": None}), "4000-0")]  # fmt: skip
    assert fold(uncaused).candidate_rows()[0]["status"] == "proposed"
    # A later entry's proposal (the entity changed again, and the edge went) wins over the withdrawal.
    again = appended(proposal.model_copy(update={"cause": "2500-0"}), "5000-0")
    assert fold([*events, again]).candidate_rows()[0]["status"] == "proposed"
    # Within one cause, the order the events were appended in that entry decides.
    both = PositionedEvent(event_position("6000-0", 1), "6000-0", new_envelope(withdrawal.model_copy(
        update={"cause": "5500-0"}), producer="similarity"))  # fmt: skip
    first = PositionedEvent(event_position("6000-0", 0), "6000-0", new_envelope(proposal.model_copy(
        update={"cause": "5500-0"}), producer="similarity"))  # fmt: skip
    assert fold([both, first]).candidate_rows()[0]["status"] == "withdrawn"


def test_an_entry_decoded_in_one_pass_equals_the_event_by_event_decoding() -> None:
    payloads: list[Frozen] = [
        EntityUpserted(id="claim:c", type="claim", name="C", attributes={"year": 2024, "tags": ["x"]}),
        EdgeAdded(source="claim:c", target="paper:p", type="extracted_from"),
        CandidateProposed(a="claim:c", b="claim:d", score=0.81, kind="link", model="m", cause="5-0"),
        EntityRetracted(id="claim:d", reason="dup"),
        EdgeRemoved(source="claim:c", target="paper:p", type="extracted_from"),
        CandidateWithdrawn(a="claim:c", b="claim:d", reason="edge added", cause="6-0"),
    ]
    envelopes = new_envelopes(payloads, producer="test", actor=Actor(id="k1", name="k"))
    fields = encode_entry(envelopes)
    slow = []
    for raw in decode_entry(fields):
        envelope = Envelope.model_validate(raw)
        slow.append((envelope, parse_payload(envelope)))
    assert decode_typed(fields) == slow
    assert [payload for _, payload in slow] == payloads
    # An unknown type keeps its raw payload; one event breaking its contract fails the entry (the caller
    # then goes event by event).
    items = orjson.loads(fields[b"events"])
    items[0]["type"] = "something.new"
    assert decode_typed({b"events": orjson.dumps(items)})[0][1] is None
    items[1]["payload"]["source"] = 7
    with pytest.raises(ValidationError):
        decode_typed({b"events": orjson.dumps(items)})
