"""The OpenAPI document says what the server accepts, so a client generated from it never sends what the
server refuses for its shape: entity and edge types as enums from the loaded ontology, entity ids as their
pattern, and no NUL in any text (Postgres cannot store it).

What no schema can say stays a 4xx the document lists: a cursor or position this server never issued, an
edge the ontology forbids between two types, a merge into itself, a host that does not resolve.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from platograph import ontology
from platograph.api.webhooks import EVENT_TYPES

NO_NUL = "^[^\\u0000]*$"
URL_MAX = 2083  # what pydantic's HttpUrl accepts
# Query parameters and body fields, by name, and what they accept.
ENTITY_TYPE_PARAMS = ("type", "group")
ID_FIELDS = {"EntityIn": ("id",), "EdgeIn": ("source", "target"), "Merge": ("into",)}


def entity_id_pattern(onto: ontology.Ontology) -> str:
    types = "|".join(re.escape(t) for t in onto.entity_types)
    return f"^({types}):{ontology.SLUG.pattern.removeprefix('^')}"


def install(app: FastAPI, onto: ontology.Ontology) -> None:
    """Have `app.openapi()` return FastAPI's document with the declarations above added (built once)."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = declare(generate(), onto)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def declare(document: dict[str, Any], onto: ontology.Ontology) -> dict[str, Any]:
    types, ids = list(onto.entity_types), entity_id_pattern(onto)
    for operation in (op for item in document.get("paths", {}).values() for op in item.values()):
        for parameter in operation.get("parameters", []):
            if parameter.get("in") != "query":
                continue
            name = parameter["name"]
            if name in ENTITY_TYPE_PARAMS and "event" not in parameter.get("description", ""):
                _strings(parameter["schema"], _setting(enum=types))
            elif name == "entity":
                _strings(parameter["schema"], _setting(pattern=ids))
            elif name == "type_pair":
                pair = f"^({'|'.join(map(re.escape, types))})\\|({'|'.join(map(re.escape, types))})$"
                _strings(parameter["schema"], _setting(pattern=pair))
    edge_types, events = list(onto.edge_types), list(EVENT_TYPES)
    fields: dict[tuple[str, str], Callable[[dict[str, Any]], None]] = {
        ("EntityIn", "type"): _setting(enum=types),
        ("EdgeIn", "type"): _setting(enum=edge_types),
        ("Filter", "entity_types"): _setting(enum=types),
        ("SubscriptionIn", "event_types"): _setting(enum=events),
        ("SubscriptionPatch", "event_types"): _setting(enum=events),
    }
    fields |= {(model, name): _setting(pattern=ids) for model, names in ID_FIELDS.items() for name in names}
    for model in _models(document):  # in components, and inline where a route declares its body itself
        for (title, name), change in fields.items():
            if model.get("title") == title and name in model["properties"]:
                _strings(model["properties"][name], change)
    _no_nul(document)
    return document


def _setting(**values: Any) -> Callable[[dict[str, Any]], None]:
    return lambda schema: schema.update(values)


def _models(node: Any) -> list[dict[str, Any]]:
    """Every object schema with properties in node."""
    if isinstance(node, list):
        return [model for item in node for model in _models(item)]
    if not isinstance(node, dict):
        return []
    own = [node] if isinstance(node.get("properties"), dict) else []
    return own + [model for value in node.values() for model in _models(value)]


def _strings(schema: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> None:
    """Apply change to every string schema in schema (through anyOf and array items)."""
    if schema.get("type") == "string":
        change(schema)
    for branch in schema.get("anyOf", []):
        _strings(branch, change)
    if isinstance(schema.get("items"), dict):
        _strings(schema["items"], change)


def _no_nul(node: Any) -> None:
    """Every free text and every free-form object's keys: no NUL."""
    if isinstance(node, list):
        for item in node:
            _no_nul(item)
        return
    if not isinstance(node, dict):
        return
    if node.get("type") == "string" and node.get("format") == "uri":
        node.setdefault("maxLength", URL_MAX)
    if node.get("type") == "string" and not ({"pattern", "enum", "const", "format"} & node.keys()):
        node["pattern"] = NO_NUL
    if node.get("type") == "object" and node.get("additionalProperties", True) is not False:
        node.setdefault("propertyNames", {"pattern": NO_NUL})
    for value in node.values():
        _no_nul(value)
