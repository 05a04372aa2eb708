"""The ontology: entity types, edge types and the (source type, target type) pairs each allows.

Entity ids are ``<type>:<slug>``, so an edge's endpoint types are read from its ids and checking an
edge needs no lookup.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import yaml

DEFAULT_PATH = Path(__file__).with_name("ontology.yaml")
SLUG = re.compile(r"^[a-z0-9]+(?:[-_.][a-z0-9]+)*$")
WILDCARD = "*"


class OntologyError(ValueError):
    """A value the ontology does not allow; `field` names the offending input field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class EdgeType:
    name: str
    description: str
    pairs: frozenset[tuple[str, str]]

    def allows(self, source_type: str, target_type: str) -> bool:
        """Whether this edge type may join an entity of source_type to one of target_type."""
        return any(s in (source_type, WILDCARD) and t in (target_type, WILDCARD) for s, t in self.pairs)


@dataclass(frozen=True)
class Ontology:
    entity_types: dict[str, str]  # type -> plural label, in display order
    edge_types: dict[str, EdgeType]

    def type_of(self, entity_id: str, field: str = "id") -> str:
        """The entity type named by an id's prefix; OntologyError if the id is malformed."""
        prefix, sep, slug = entity_id.partition(":")
        if not sep or not slug:
            raise OntologyError(field, f"entity id must look like '<type>:<slug>', got {entity_id!r}")
        if prefix not in self.entity_types:
            raise OntologyError(field, f"unknown entity type {prefix!r}; known: {', '.join(self.entity_types)}")
        if not SLUG.match(slug):
            raise OntologyError(field, "slug must be lowercase letters, digits and - _ . separators")
        return prefix

    def check_edge(self, source: str, target: str, edge_type: str) -> None:
        """Raise OntologyError naming the field unless the edge is allowed."""
        source_type = self.type_of(source, "source")
        target_type = self.type_of(target, "target")
        if source == target:
            raise OntologyError("target", "an edge cannot join an entity to itself")
        kind = self.edge_types.get(edge_type)
        if kind is None:
            raise OntologyError("type", f"unknown edge type {edge_type!r}; known: {', '.join(self.edge_types)}")
        if edge_type not in self._allowed.get((source_type, target_type), ()):
            raise OntologyError("type", f"edge type {edge_type!r} is not allowed from {source_type} to {target_type}")

    def allowed_edge_types(self, source_type: str, target_type: str) -> list[str]:
        """Edge types the ontology allows from source_type to target_type."""
        known = self._allowed.get((source_type, target_type))
        return list(known) if known is not None else self._allows(source_type, target_type)

    def _allows(self, source_type: str, target_type: str) -> list[str]:
        return [n for n, k in self.edge_types.items() if k.allows(source_type, target_type)]

    @cached_property
    def _allowed(self) -> dict[tuple[str, str], tuple[str, ...]]:
        # Asked for every edge ingested and every candidate proposed: a table of the few type pairs.
        return {(s, t): tuple(self._allows(s, t)) for s in self.entity_types for t in self.entity_types}


def parse(document: dict[str, object]) -> Ontology:
    """Build an Ontology from a parsed YAML document, checking that pairs name known types."""
    raw_entities = document.get("entity_types")
    raw_edges = document.get("edge_types")
    if not isinstance(raw_entities, dict) or not isinstance(raw_edges, dict):
        raise ValueError("ontology needs 'entity_types' and 'edge_types' mappings")
    entity_types = {str(name): str((spec or {}).get("label", name)) for name, spec in raw_entities.items()}
    edges: dict[str, EdgeType] = {}
    for name, spec in raw_edges.items():
        pairs = frozenset((str(s), str(t)) for s, t in spec["pairs"])
        for pair in pairs:
            unknown = [p for p in pair if p != WILDCARD and p not in entity_types]
            if unknown:
                raise ValueError(f"edge type {name!r} names unknown entity type(s) {unknown}")
        edges[str(name)] = EdgeType(str(name), str(spec.get("description", "")), pairs)
    return Ontology(entity_types, edges)


@lru_cache(maxsize=8)
def load(path: Path = DEFAULT_PATH) -> Ontology:
    """Load and check an ontology file (cached per path)."""
    return parse(yaml.safe_load(path.read_text()))
