from typing import Any

import pytest

from platograph import ontology
from services.ingest.domain.validation import (
    InvalidInput,
    parse_json,
    validate_edges,
    validate_entities,
    validate_ndjson,
)

ONT = ontology.load()


def locs(exc: InvalidInput) -> list[list[Any]]:
    return [e["loc"] for e in exc.errors]


def test_single_entity_becomes_one_payload_with_type_from_id() -> None:
    payloads, was_list = validate_entities({"id": "concept:x", "name": "X"}, ONT, 10)
    assert not was_list and payloads[0].type == "concept" and payloads[0].status == "active"


def test_missing_name_is_named() -> None:
    with pytest.raises(InvalidInput) as info:
        validate_entities([{"id": "concept:x", "name": "X"}, {"id": "concept:y"}], ONT, 10)
    assert locs(info.value) == [["body", 1, "name"]]


def test_unknown_type_is_named() -> None:
    with pytest.raises(InvalidInput) as info:
        validate_entities({"id": "widget:x", "name": "X"}, ONT, 10)
    assert locs(info.value) == [["body", "id"]] and "unknown entity type" in info.value.errors[0]["msg"]


def test_type_field_must_match_the_id() -> None:
    with pytest.raises(InvalidInput) as info:
        validate_entities({"id": "concept:x", "type": "claim", "name": "X"}, ONT, 10)
    assert locs(info.value) == [["body", "type"]]


def test_oversized_field_is_named() -> None:
    with pytest.raises(InvalidInput) as info:
        validate_entities({"id": "concept:x", "name": "X", "description": "d" * 5001}, ONT, 10)
    assert locs(info.value) == [["body", "description"]]


def test_unknown_fields_are_refused_not_dropped() -> None:
    with pytest.raises(InvalidInput) as info:
        validate_entities({"id": "concept:x", "name": "X", "colour": "red"}, ONT, 10)
    assert locs(info.value) == [["body", "colour"]]


def test_paper_attributes_are_checked() -> None:
    with pytest.raises(InvalidInput) as info:
        validate_entities({"id": "paper:p", "name": "P", "attributes": {"year": "soon"}}, ONT, 10)
    assert locs(info.value) == [["body", "attributes", "year"]]
    payloads, _ = validate_entities(
        {"id": "paper:p", "name": "P", "attributes": {"year": 2024, "authors": ["A"], "venue": "NeurIPS"}}, ONT, 10
    )
    assert payloads[0].attributes == {"year": 2024, "authors": ["A"], "venue": "NeurIPS"}


def test_batch_over_the_limit_is_413() -> None:
    with pytest.raises(InvalidInput) as info:
        validate_entities([{"id": f"concept:c{i}", "name": "c"} for i in range(11)], ONT, 10)
    assert info.value.status_code == 413 and locs(info.value) == [["body"]]


def test_one_bad_item_refuses_the_whole_batch() -> None:
    batch = [
        {"source": "paper:a", "target": "quote:b", "type": "introduces"},
        {"source": "concept:a", "target": "quote:b", "type": "introduces"},
    ]
    with pytest.raises(InvalidInput) as info:
        validate_edges(batch, ONT, 10)
    assert locs(info.value) == [["body", 1, "type"]]
    assert "not allowed from concept to quote" in info.value.errors[0]["msg"]


def test_malformed_json_is_400_naming_the_body() -> None:
    with pytest.raises(InvalidInput) as info:
        parse_json(b'{"id": ')
    assert info.value.status_code == 400 and locs(info.value) == [["body"]]


def test_ndjson_errors_name_the_line_and_field() -> None:
    lines = [
        b'{"kind": "entity", "id": "concept:a", "name": "A"}',
        b"",
        b'{"kind": "edge", "source": "concept:a", "target": "widget:b", "type": "mentions"}',
        b'{"kind": "thing"}',
    ]
    with pytest.raises(InvalidInput) as info:
        validate_ndjson(lines, ONT, 100)
    assert locs(info.value) == [["body", "line 3", "target"], ["body", "line 4", "kind"]]


def test_ndjson_malformed_line_is_400() -> None:
    with pytest.raises(InvalidInput) as info:
        validate_ndjson([b'{"kind": "entity"', b"{}"], ONT, 100)
    assert info.value.status_code == 400 and locs(info.value) == [["body", "line 1"]]


def test_ndjson_line_limit() -> None:
    lines = [b'{"kind": "entity", "id": "concept:a", "name": "A"}'] * 3
    with pytest.raises(InvalidInput) as info:
        validate_ndjson(lines, ONT, 2)
    assert info.value.status_code == 413


def test_ndjson_mixes_entities_and_edges_in_order() -> None:
    payloads = validate_ndjson(
        [
            b'{"kind": "entity", "id": "concept:a", "name": "A"}',
            b'{"kind": "edge", "source": "concept:a", "target": "concept:b", "type": "refines"}',
        ],
        ONT,
        10,
    )
    assert [type(p).__name__ for p in payloads] == ["EntityUpserted", "EdgeAdded"]
