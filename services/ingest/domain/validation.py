"""Turn raw request data into event payloads, or into errors that name the offending field.

Nothing is appended unless every item of a request is valid, so a request is never half-applied.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from pydantic import BaseModel, TypeAdapter, ValidationError

from platograph.api.ingest import EdgeIn, EdgeLine, EntityIn, EntityLine, PaperAttributes
from platograph.contracts import EdgeAdded, EntityUpserted
from platograph.ontology import Ontology, OntologyError

Loc = list[str | int]
MAX_REPORTED_ERRORS = 50


class InvalidInput(Exception):
    """The request cannot be accepted; `errors` use FastAPI's shape: {loc, msg, type}."""

    def __init__(self, errors: list[dict[str, Any]], status_code: int = 422) -> None:
        super().__init__(errors[0]["msg"] if errors else "invalid input")
        self.errors = errors[:MAX_REPORTED_ERRORS]
        self.status_code = status_code


def error(loc: Loc, msg: str, kind: str) -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": kind}


def parse_json(body: bytes) -> Any:
    """Decode a JSON body; malformed JSON is a 400 naming the body."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput([error(["body"], f"malformed JSON: {exc}", "json_invalid")], 400) from exc


def as_batch(data: Any, max_batch: int) -> tuple[list[Any], bool]:
    """A single object or a list of them, as (items, was_list); oversized batches are a 413."""
    if isinstance(data, list):
        if not data:
            raise InvalidInput([error(["body"], "batch is empty", "too_short")])
        if len(data) > max_batch:
            raise InvalidInput(
                [error(["body"], f"batch of {len(data)} items is over the limit of {max_batch}", "too_long")],
                413,
            )
        return data, True
    return [data], False


def _pydantic_errors(exc: ValidationError, prefix: Loc) -> list[dict[str, Any]]:
    return [error(prefix + list(e["loc"]), e["msg"], e["type"]) for e in exc.errors(include_url=False)]


def _validated(model: type[BaseModel], item: Any, prefix: Loc, errors: list[dict[str, Any]]) -> Any:
    try:
        return model.model_validate(item)
    except ValidationError as exc:
        errors.extend(_pydantic_errors(exc, prefix))
        return None


def entity_payload(item: EntityIn, ontology: Ontology, prefix: Loc) -> EntityUpserted:
    """Check an entity against the ontology and build its event payload."""
    try:
        entity_type = ontology.type_of(item.id)
    except OntologyError as exc:
        raise InvalidInput([error(prefix + [exc.field], exc.message, "ontology")]) from exc
    if item.type is not None and item.type != entity_type:
        msg = f"type {item.type!r} does not match the id's prefix {entity_type!r}"
        raise InvalidInput([error(prefix + ["type"], msg, "ontology")])
    attributes = item.attributes
    if entity_type == "paper":
        try:
            attributes = PaperAttributes.model_validate(attributes).model_dump(mode="json", exclude_none=True)
        except ValidationError as exc:
            raise InvalidInput(_pydantic_errors(exc, prefix + ["attributes"])) from exc
    return EntityUpserted(
        id=item.id,
        type=entity_type,
        name=item.name,
        text=item.text,
        description=item.description,
        status=item.status,
        attributes=attributes,
    )


def edge_payload(item: EdgeIn, ontology: Ontology, prefix: Loc) -> EdgeAdded:
    """Check an edge against the ontology and build its event payload."""
    try:
        ontology.check_edge(item.source, item.target, item.type)
    except OntologyError as exc:
        raise InvalidInput([error(prefix + [exc.field], exc.message, "ontology")]) from exc
    return EdgeAdded(source=item.source, target=item.target, type=item.type, description=item.description)


def _collect(
    items: Iterable[tuple[Loc, Any]], ontology: Ontology, model: type[BaseModel] | None
) -> list[EntityUpserted | EdgeAdded]:
    payloads: list[EntityUpserted | EdgeAdded] = []
    errors: list[dict[str, Any]] = []
    for prefix, raw in items:
        if model is None:
            parsed = _validated_line(raw, prefix, errors)
        else:
            parsed = _validated(model, raw, prefix, errors)
        if parsed is None:
            continue
        try:
            if isinstance(parsed, EntityIn):
                payloads.append(entity_payload(parsed, ontology, prefix))
            else:
                payloads.append(edge_payload(parsed, ontology, prefix))
        except InvalidInput as exc:
            errors.extend(exc.errors)
        if len(errors) >= MAX_REPORTED_ERRORS:
            break
    if errors:
        raise InvalidInput(errors)
    return payloads


_LINE = TypeAdapter(EntityLine | EdgeLine)


def _validated_line(raw: Any, prefix: Loc, errors: list[dict[str, Any]]) -> EntityIn | EdgeIn | None:
    if not isinstance(raw, dict) or raw.get("kind") not in ("entity", "edge"):
        errors.append(error(prefix + ["kind"], 'each line needs "kind": "entity" or "edge"', "missing"))
        return None
    model = EntityLine if raw["kind"] == "entity" else EdgeLine
    parsed: EntityLine | EdgeLine | None = _validated(model, raw, prefix, errors)
    return parsed  # a line is an EntityIn or EdgeIn with its kind (checking it again cost a third of a line)


def validate_entities(data: Any, ontology: Ontology, max_batch: int) -> tuple[list[EntityUpserted], bool]:
    """Payloads for a single entity or a batch, all-or-nothing."""
    items, was_list = as_batch(data, max_batch)
    prefix: Loc = ["body"]
    located = [((prefix + [i]) if was_list else prefix, raw) for i, raw in enumerate(items)]
    return [p for p in _collect(located, ontology, EntityIn) if isinstance(p, EntityUpserted)], was_list


def validate_edges(data: Any, ontology: Ontology, max_batch: int) -> tuple[list[EdgeAdded], bool]:
    """Payloads for a single edge or a batch, all-or-nothing."""
    items, was_list = as_batch(data, max_batch)
    prefix: Loc = ["body"]
    located = [((prefix + [i]) if was_list else prefix, raw) for i, raw in enumerate(items)]
    return [p for p in _collect(located, ontology, EdgeIn) if isinstance(p, EdgeAdded)], was_list


def validate_ndjson(lines: Iterable[bytes], ontology: Ontology, max_lines: int) -> list[EntityUpserted | EdgeAdded]:
    """Payloads for an NDJSON import; errors name the 1-based line number and the field."""
    decoded: list[tuple[Loc, Any]] = []
    errors: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if len(decoded) + len(errors) >= max_lines:
            raise InvalidInput(
                [error(["body", f"line {number}"], f"import is over the limit of {max_lines} lines", "too_long")],
                413,
            )
        try:
            decoded.append((["body", f"line {number}"], orjson.loads(line)))
        except orjson.JSONDecodeError as exc:
            errors.append(error(["body", f"line {number}"], f"malformed JSON: {exc}", "json_invalid"))
    if errors:
        raise InvalidInput(errors, 400)
    if not decoded:
        raise InvalidInput([error(["body"], "import is empty", "too_short")])
    return _collect(decoded, ontology, None)
