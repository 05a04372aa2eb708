import pytest

from platograph.positions import entry_id_of, event_position, parse_entry_id


def test_positions_order_like_the_stream() -> None:
    ids = ["1700000000000-0", "1700000000000-1", "1700000000001-0"]
    positions = [event_position(i, 0) for i in ids]
    assert positions == sorted(positions)
    assert event_position(ids[0], 999) < event_position(ids[1], 0)


def test_position_round_trips_to_its_entry() -> None:
    assert entry_id_of(event_position("1764259200123-7", 42)) == "1764259200123-7"


@pytest.mark.parametrize("bad", ["", "12", "a-b", "1-2-3", "-1-0"])
def test_malformed_positions_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_entry_id(bad)


def test_index_out_of_range() -> None:
    with pytest.raises(ValueError):
        event_position("1-0", 100_000)
