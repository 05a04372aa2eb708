"""The vector-index port and its two adapters, which pass one contract test (tests/integration).

- `QdrantClientIndex`: qdrant-client, against a Qdrant server (QDRANT_URL) or its local mode. One
  collection per model version (`entities__<model>-v<version>`); readers go through the alias `entities`.
- `EdgeIndex`: qdrant-edge, Qdrant's Rust engine in-process (HNSW, payload filters) in a directory per
  model version. It has no aliases: the directory name plays the collection's part. One process opens it.

Point ids are uuid5 of the entity id, so a retried upsert overwrites instead of adding.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]
POINT_NAMESPACE = uuid.UUID("3b8f0c52-6a1e-4c3e-9f57-0d3f5c2b7a41")
ALIAS = "entities"


def point_id(entity_id: str) -> str:
    return str(uuid.uuid5(POINT_NAMESPACE, entity_id))


@dataclass(frozen=True)
class Indexed:
    """What the index keeps beside a vector, so a result can be shown without another lookup."""

    id: str
    type: str
    name: str
    description: str = ""
    text: str = ""  # the text that was embedded: the duplicate check reads it

    def payload(self) -> dict[str, Any]:
        return {"entity_id": self.id, "type": self.type, "name": self.name, "description": self.description,
                "text": self.text}  # fmt: skip

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Indexed:
        return cls(
            id=payload["entity_id"],
            type=payload["type"],
            name=payload.get("name", ""),
            description=payload.get("description", ""),
            text=payload.get("text", ""),
        )


@dataclass(frozen=True)
class Hit:
    entity: Indexed
    score: float


class VectorIndex(Protocol):
    def upsert(self, items: Sequence[Indexed], vectors: Vectors) -> None:
        """Insert or replace one point per item (row i of vectors is item i's)."""
        ...

    def delete(self, entity_ids: Sequence[str]) -> None: ...

    def vector(self, entity_id: str) -> list[float] | None:
        """The stored vector of an entity, or None."""
        ...

    def search(
        self,
        vector: Sequence[float],
        *,
        limit: int,
        min_score: float | None = None,
        exclude: Sequence[str] = (),
        types: Sequence[str] | None = None,
    ) -> list[Hit]:
        """Nearest entities by cosine, best first."""
        ...

    def count(self) -> int: ...

    def close(self) -> None: ...


class QdrantClientIndex:
    def __init__(self, client: Any, model_key: str, dimension: int, *, server: bool = True) -> None:
        from qdrant_client import models

        self._m = models
        self._client = client
        self.collection = f"{ALIAS}__{model_key}"
        if not client.collection_exists(self.collection):
            client.create_collection(
                self.collection, vectors_config=models.VectorParams(size=dimension, distance=models.Distance.COSINE)
            )
            if server:  # local mode has no payload indexes (and warns when asked for one)
                client.create_payload_index(self.collection, "type", models.PayloadSchemaType.KEYWORD)
        aliases = {a.alias_name for a in client.get_aliases().aliases}
        if ALIAS not in aliases:
            client.update_collection_aliases(
                change_aliases_operations=[
                    models.CreateAliasOperation(
                        create_alias=models.CreateAlias(collection_name=self.collection, alias_name=ALIAS)
                    )
                ]
            )

    def upsert(self, items: Sequence[Indexed], vectors: Vectors) -> None:
        points = [
            self._m.PointStruct(id=point_id(item.id), vector=vectors[i].tolist(), payload=item.payload())
            for i, item in enumerate(items)
        ]
        if points:
            self._client.upsert(self.collection, points=points, wait=True)

    def delete(self, entity_ids: Sequence[str]) -> None:
        if entity_ids:
            ids = [point_id(e) for e in entity_ids]
            self._client.delete(self.collection, points_selector=self._m.PointIdsList(points=ids), wait=True)

    def vector(self, entity_id: str) -> list[float] | None:
        records = self._client.retrieve(self.collection, ids=[point_id(entity_id)], with_vectors=True)
        return None if not records else list(records[0].vector)

    def search(
        self,
        vector: Sequence[float],
        *,
        limit: int,
        min_score: float | None = None,
        exclude: Sequence[str] = (),
        types: Sequence[str] | None = None,
    ) -> list[Hit]:
        m = self._m
        must = [m.FieldCondition(key="type", match=m.MatchAny(any=list(types)))] if types else None
        must_not = [m.HasIdCondition(has_id=[point_id(e) for e in exclude])] if exclude else None
        result = self._client.query_points(
            ALIAS,
            query=list(vector),
            limit=limit,
            score_threshold=min_score,
            query_filter=m.Filter(must=must, must_not=must_not),
            with_payload=True,
        )
        return [Hit(Indexed.from_payload(p.payload), float(p.score)) for p in result.points]

    def count(self) -> int:
        return int(self._client.count(self.collection, exact=True).count)

    def close(self) -> None:
        self._client.close()


class EdgeIndex:
    def __init__(self, root: Path, model_key: str, dimension: int) -> None:
        import qdrant_edge as q

        self._q = q
        self.path = root / model_key
        config = q.EdgeConfig(vectors=q.EdgeVectorParams(size=dimension, distance=q.Distance.Cosine))
        if (self.path / "edge_config.json").exists() or any(self.path.glob("*")):
            self._shard = q.EdgeShard.load(str(self.path), config)
        else:
            self.path.mkdir(parents=True, exist_ok=True)
            self._shard = q.EdgeShard.create(str(self.path), config)

    def upsert(self, items: Sequence[Indexed], vectors: Vectors) -> None:
        q = self._q
        points = [q.Point(point_id(item.id), vectors[i].tolist(), item.payload()) for i, item in enumerate(items)]
        if points:
            self._shard.update(q.UpdateOperation.upsert_points(points))

    def delete(self, entity_ids: Sequence[str]) -> None:
        if entity_ids:
            self._shard.update(self._q.UpdateOperation.delete_points([point_id(e) for e in entity_ids]))

    def vector(self, entity_id: str) -> list[float] | None:
        records = self._shard.retrieve([point_id(entity_id)], with_payload=False, with_vector=True)
        if not records or records[0].vector is None:
            return None
        vector: Any = records[0].vector
        if isinstance(vector, dict):  # named vectors: this shard has one unnamed dense vector
            vector = next(iter(vector.values()))
        return [float(x) for x in vector]

    def search(
        self,
        vector: Sequence[float],
        *,
        limit: int,
        min_score: float | None = None,
        exclude: Sequence[str] = (),
        types: Sequence[str] | None = None,
    ) -> list[Hit]:
        q = self._q
        must = [q.FieldCondition(key="type", match=q.MatchAny(any=list(types)))] if types else None
        must_not = [q.HasIdCondition({point_id(e) for e in exclude})] if exclude else None
        request = q.QueryRequest(
            limit=limit,
            query=q.Query.Nearest(list(vector)),
            filter=q.Filter(must=must, must_not=must_not) if (must or must_not) else None,
            score_threshold=min_score,
            with_payload=True,
        )
        return [Hit(Indexed.from_payload(p.payload or {}), float(p.score)) for p in self._shard.query(request)]

    def count(self) -> int:
        return int(self._shard.count(self._q.CountRequest(exact=True)))

    def optimize(self) -> None:
        """Build the HNSW graph for what has been written (blocking)."""
        self._shard.optimize()

    def close(self) -> None:
        self._shard.flush()
        self._shard.close()
