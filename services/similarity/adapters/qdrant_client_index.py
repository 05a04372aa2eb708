"""The vector-index port over qdrant-client: a Qdrant server (QDRANT_URL) or its local mode."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from services.similarity.adapters.index import (
    ALIAS,
    DENSE,
    FUSION_DEPTH,
    LAYOUT,
    PARTS,
    SPARSE,
    Hit,
    Indexed,
    Vectors,
    batched,
    cosines,
    fused,
    point_id,
    point_parts,
    sparse_document,
    sparse_query,
)


@dataclass(frozen=True)
class Layout:
    """How a new collection is laid out on a Qdrant server or cluster (the PLATOGRAPH_QDRANT_* settings)."""

    shards: int = 1
    replication_factor: int = 1
    write_consistency: int = 1
    on_disk: bool = False
    quantization: str = "none"  # or "int8"
    hnsw_m: int = 16
    hnsw_ef_construct: int = 100


def _unless_done(create: Callable[[], object], done: Callable[[], bool]) -> None:
    """Create something another replica may be creating at the same moment: losing that race is fine."""
    try:
        create()
    except Exception:  # a server answers 409, local mode raises ValueError; either way, look again
        if not done():
            raise


class QdrantClientIndex:
    def __init__(
        self, client: Any, model_key: str, dimension: int, *, server: bool = True, layout: Layout | None = None
    ) -> None:
        from qdrant_client import models

        self._m = models
        self._client = client
        self.collection = f"{ALIAS}__{model_key}.{LAYOUT}"
        layout = layout or Layout()
        if not client.collection_exists(self.collection):
            _unless_done(lambda: self._create(dimension, layout), lambda: client.collection_exists(self.collection))
            if server:  # local mode has no payload indexes (and warns when asked for one); repeating is harmless
                client.create_payload_index(self.collection, "type", models.PayloadSchemaType.KEYWORD)

        def aliased() -> bool:
            return ALIAS in {a.alias_name for a in client.get_aliases().aliases}

        if not aliased():
            create = models.CreateAliasOperation(
                create_alias=models.CreateAlias(collection_name=self.collection, alias_name=ALIAS)
            )
            _unless_done(lambda: client.update_collection_aliases(change_aliases_operations=[create]), aliased)

    def _create(self, dimension: int, layout: Layout) -> None:
        models = self._m
        quantization = (
            models.ScalarQuantization(
                scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8, always_ram=True)
            )
            if layout.quantization == "int8"
            else None
        )
        dense = models.VectorParams(size=dimension, distance=models.Distance.COSINE, on_disk=layout.on_disk)
        parts = models.VectorParams(
            size=dimension,
            distance=models.Distance.COSINE,
            on_disk=layout.on_disk,
            multivector_config=models.MultiVectorConfig(comparator=models.MultiVectorComparator.MAX_SIM),
        )
        self._client.create_collection(
            self.collection,
            vectors_config={DENSE: dense, PARTS: parts},
            sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
            shard_number=layout.shards,
            replication_factor=layout.replication_factor,
            write_consistency_factor=layout.write_consistency,
            on_disk_payload=layout.on_disk,
            hnsw_config=models.HnswConfigDiff(m=layout.hnsw_m, ef_construct=layout.hnsw_ef_construct),
            quantization_config=quantization,
        )

    def upsert(self, items: Sequence[Indexed], vectors: Vectors, parts: Sequence[Vectors] | None = None) -> None:
        points = []
        for i, (item, dense) in enumerate(zip(items, vectors.tolist(), strict=True)):
            indices, values = sparse_document(item.text)
            vector = {
                DENSE: dense,
                PARTS: point_parts(dense, parts, i),
                SPARSE: self._m.SparseVector(indices=indices, values=values),
            }
            points.append(self._m.PointStruct(id=point_id(item.id), vector=vector, payload=item.payload()))
        if points:
            self._client.upsert(self.collection, points=points, wait=True)

    def delete(self, entity_ids: Sequence[str]) -> None:
        if entity_ids:
            ids = [point_id(e) for e in entity_ids]
            self._client.delete(self.collection, points_selector=self._m.PointIdsList(points=ids), wait=True)

    def lookup(self, entity_id: str) -> tuple[Indexed, list[float]] | None:
        records = self._client.retrieve(
            self.collection, ids=[point_id(entity_id)], with_vectors=[DENSE], with_payload=True
        )
        if not records:
            return None
        return Indexed.from_payload(records[0].payload), [float(x) for x in records[0].vector[DENSE]]

    def search(
        self,
        vector: Sequence[float],
        *,
        limit: int,
        min_score: float | None = None,
        exclude: Sequence[str] = (),
        types: Sequence[str] | None = None,
        text: str | None = None,
    ) -> list[Hit]:
        m = self._m
        must = [m.FieldCondition(key="type", match=m.MatchAny(any=list(types)))] if types else None
        must_not = [m.HasIdCondition(has_id=[point_id(e) for e in exclude])] if exclude else None
        where = m.Filter(must=must, must_not=must_not)
        if text is None:
            result = self._client.query_points(
                ALIAS, query=list(vector), using=DENSE, limit=limit, score_threshold=min_score, query_filter=where,
                with_payload=True,
            )  # fmt: skip
            return [Hit(Indexed.from_payload(p.payload), float(p.score)) for p in result.points]
        indices, values = sparse_query(text)
        depth = max(FUSION_DEPTH, limit)
        # Only a cosine threshold drops fused rows: without one the page is the fusion's first `limit`.
        answered = depth if min_score is not None else limit
        result = self._client.query_points(
            ALIAS,
            prefetch=[
                m.Prefetch(query=list(vector), using=DENSE, limit=depth, filter=where),
                m.Prefetch(query=[list(vector)], using=PARTS, limit=depth, filter=where),
                m.Prefetch(
                    query=m.SparseVector(indices=indices, values=values), using=SPARSE, limit=depth, filter=where
                ),
            ],  # fmt: skip
            query=m.FusionQuery(fusion=m.Fusion.DBSF),
            limit=answered,
            with_payload=True,
            with_vectors=[DENSE],
        )
        return fused(cosines(vector, result.points), limit, min_score)

    def search_many(
        self, vectors: Vectors, *, limit: int, min_score: float | None, exclude: Sequence[Sequence[str]]
    ) -> list[list[Hit]]:
        m = self._m

        def run(rows: list[list[float]], depth: int) -> list[list[Hit]]:
            requests = [m.QueryRequest(query=row, using=DENSE, limit=depth, score_threshold=min_score,
                                       with_payload=True) for row in rows]  # fmt: skip
            answers = self._client.query_batch_points(ALIAS, requests=requests)
            return [[Hit(Indexed.from_payload(p.payload), float(p.score)) for p in a.points] for a in answers]

        return batched(self, run, vectors, limit, min_score, exclude)

    def count(self) -> int:
        return int(self._client.count(self.collection, exact=True).count)

    def activate(self) -> None:
        """Point the alias at this collection, in one request (readers never see no alias)."""
        m = self._m
        aliases = {a.alias_name for a in self._client.get_aliases().aliases}
        operations: list[Any] = (
            [m.DeleteAliasOperation(delete_alias=m.DeleteAlias(alias_name=ALIAS))] if ALIAS in aliases else []
        )
        operations.append(m.CreateAliasOperation(create_alias=m.CreateAlias(collection_name=self.collection,
                                                                            alias_name=ALIAS)))  # fmt: skip
        self._client.update_collection_aliases(change_aliases_operations=operations)

    def drop(self) -> None:
        self._client.delete_collection(self.collection)

    def close(self) -> None:
        self._client.close()
