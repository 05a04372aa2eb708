"""The vector-index port and its two adapters, which pass one contract test (tests/integration).

- `QdrantClientIndex`: qdrant-client, against a Qdrant server (QDRANT_URL) or its local mode. One
  collection per model version (`entities__<model>-v<version>`); readers go through the alias `entities`.
- `EdgeIndex`: qdrant-edge, Qdrant's Rust engine in-process (HNSW, payload filters) in a directory per
  model version. It has no aliases: the directory name plays the collection's part. One process opens it.

Point ids are uuid5 of the entity id, so a retried upsert overwrites instead of adding. Each point holds
three vectors: `dense` (the whole text), `parts` (one vector per sentence of a long text, compared by
MaxSim: the best sentence) and `bm25` (sparse BM25 of the text, IDF applied inside Qdrant). A search is
dense by default; given `text`, it is hybrid: dense, best-sentence and BM25 candidates fused by score
(DBSF), while each hit still reports its whole-text cosine.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]
POINT_NAMESPACE = uuid.UUID("3b8f0c52-6a1e-4c3e-9f57-0d3f5c2b7a41")
ALIAS = "entities"
DENSE, PARTS, SPARSE = "dense", "parts", "bm25"
LAYOUT = "l2"  # bump when the vectors a point holds change: a new collection / directory is created
#: How the embedded shard stores dense vectors. The shard has no HNSW (qdrant-edge builds it only in a
#: blocking `optimize()`), so every search scans them all: at 100,000 points, 8.7 ms per query as float32,
#: 1.8 ms as Turbo8 (TurboQuant, 8 bits a dimension), top-10 recall 0.994, scores within 0.0013.
DENSE_STORAGE = "Turbo8"
FUSION_DEPTH = 200  # candidates each side contributes before fusion (SciFact: 100 → 200 lifts recall@5)
#: Points written between two flushes of the embedded shard. qdrant-edge keeps every write in its WAL until
#: a flush, so without one the WAL grows for as long as the process runs and a restart after a crash
#: replays all of it: measured at 100,000 384-d points, 448 MiB of WAL and 5.4 s to reopen, against
#: 128 MiB and 0.57 s when flushed every 10,000 (a flush then takes ~70 ms and holds the GIL).
FLUSH_EVERY = 10_000


def point_id(entity_id: str) -> str:
    return str(uuid.uuid5(POINT_NAMESPACE, entity_id))


@lru_cache(maxsize=1)
def _bm25() -> Any:
    import qdrant_edge as q

    return q.Bm25(q.Bm25Config(language="english"))


def sparse_document(text: str) -> tuple[list[int], list[float]]:
    """BM25 term weights of a stored text (qdrant-edge's tokenizer; IDF is applied by the index)."""
    vector = _bm25().embed_document(text or " ")
    return list(vector.indices), list(vector.values)


def sparse_query(text: str) -> tuple[list[int], list[float]]:
    vector = _bm25().embed_query(text or " ")
    return list(vector.indices), list(vector.values)


def _cosine(query: Sequence[float], vector: Any) -> float:
    if isinstance(vector, dict):
        vector = vector[DENSE]
    return float(np.dot(np.asarray(query, dtype=np.float32), np.asarray(vector, dtype=np.float32)))


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
    score: float  # cosine, whatever ranked the hit


class VectorIndex(Protocol):
    def upsert(self, items: Sequence[Indexed], vectors: Vectors, parts: Sequence[Vectors] | None = None) -> None:
        """Insert or replace one point per item: row i of vectors is item i's; parts[i] its sentences'
        vectors (default: the whole-text vector alone)."""
        ...

    def delete(self, entity_ids: Sequence[str]) -> None: ...

    def lookup(self, entity_id: str) -> tuple[Indexed, list[float]] | None:
        """What is stored for an entity (payload and dense vector), or None."""
        ...

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
        """Nearest entities, best first: by cosine, or with `text` by dense + BM25 fusion. `min_score` is
        always on the cosine."""
        ...

    def search_many(
        self, vectors: Vectors, *, limit: int, min_score: float | None, exclude: Sequence[Sequence[str]]
    ) -> list[list[Hit]]:
        """What `search(row, limit=, min_score=, exclude=exclude[i])` answers for each row, as one batch."""
        ...

    def count(self) -> int: ...

    def activate(self) -> None:
        """Make this collection the one the readers' alias names (a no-op where the alias is ours alone)."""
        ...

    def drop(self) -> None:
        """Close and delete the collection (a cancelled or replaced build)."""
        ...

    def close(self) -> None: ...


def _parts(dense: list[float], parts: Sequence[Vectors] | None, i: int) -> list[list[float]]:
    """The sentence vectors of item i; a text of one sentence is its own only part."""
    if parts is None or len(parts[i]) == 0:
        return [dense]
    return [row.tolist() for row in parts[i]]


def _fused(ranked: Iterable[tuple[dict[str, Any], float]], limit: int, min_score: float | None) -> list[Hit]:
    """Fused order kept; cosine reported and thresholded."""
    hits = [Hit(Indexed.from_payload(payload), cosine) for payload, cosine in ranked]
    return [h for h in hits if min_score is None or h.score >= min_score][:limit]


OVERFETCH = 64  # rows excluding more than this many ids are searched one by one, with a filter


BatchRun = Callable[[list[list[float]], int], list[list[Hit]]]  # (rows, depth) -> hits of each row


def _batched(
    index: VectorIndex,
    run: BatchRun,
    vectors: Vectors,
    limit: int,
    min_score: float | None,
    exclude: Sequence[Sequence[str]],
) -> list[list[Hit]]:
    """Rows that exclude few ids share one unfiltered batch (the index scores same-shaped queries
    together: about 2.5 times cheaper per row than one filtered search each) that asks for enough extra
    hits to drop the excluded ones afterwards; the rest go one by one. `run(rows, depth)` answers the batch."""
    small = [i for i, ex in enumerate(exclude) if len(ex) <= OVERFETCH]
    out: list[list[Hit]] = [[] for _ in range(len(vectors))]
    if small:
        depth = limit + max(len(exclude[i]) for i in small)
        for i, hits in zip(small, run([vectors[i].tolist() for i in small], depth), strict=True):
            dropped = set(exclude[i])
            out[i] = [h for h in hits if h.entity.id not in dropped][:limit]
    for i, ex in enumerate(exclude):
        if len(ex) > OVERFETCH:
            out[i] = index.search(vectors[i].tolist(), limit=limit, min_score=min_score, exclude=ex)
    return out


class QdrantClientIndex:
    def __init__(self, client: Any, model_key: str, dimension: int, *, server: bool = True) -> None:
        from qdrant_client import models

        self._m = models
        self._client = client
        self.collection = f"{ALIAS}__{model_key}.{LAYOUT}"
        if not client.collection_exists(self.collection):
            client.create_collection(
                self.collection,
                vectors_config={
                    DENSE: models.VectorParams(size=dimension, distance=models.Distance.COSINE),
                    PARTS: models.VectorParams(
                        size=dimension,
                        distance=models.Distance.COSINE,
                        multivector_config=models.MultiVectorConfig(comparator=models.MultiVectorComparator.MAX_SIM),
                    ),
                },
                sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
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

    def upsert(self, items: Sequence[Indexed], vectors: Vectors, parts: Sequence[Vectors] | None = None) -> None:
        points = []
        for i, (item, dense) in enumerate(zip(items, vectors.tolist(), strict=True)):
            indices, values = sparse_document(item.text)
            vector = {
                DENSE: dense,
                PARTS: _parts(dense, parts, i),
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
            limit=depth,
            with_payload=True,
            with_vectors=[DENSE],
        )
        return _fused(((p.payload, _cosine(vector, p.vector)) for p in result.points), limit, min_score)

    def search_many(
        self, vectors: Vectors, *, limit: int, min_score: float | None, exclude: Sequence[Sequence[str]]
    ) -> list[list[Hit]]:
        m = self._m

        def run(rows: list[list[float]], depth: int) -> list[list[Hit]]:
            requests = [m.QueryRequest(query=row, using=DENSE, limit=depth, score_threshold=min_score,
                                       with_payload=True) for row in rows]  # fmt: skip
            answers = self._client.query_batch_points(ALIAS, requests=requests)
            return [[Hit(Indexed.from_payload(p.payload), float(p.score)) for p in a.points] for a in answers]

        return _batched(self, run, vectors, limit, min_score, exclude)

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


class EdgeIndex:
    def __init__(
        self,
        root: Path,
        model_key: str,
        dimension: int,
        dense_storage: str | None = DENSE_STORAGE,
        flush_every: int = FLUSH_EVERY,
    ) -> None:
        """`dense_storage`: a qdrant-edge VectorStorageDatatype name for new shards, None for float32."""
        import qdrant_edge as q

        self._q = q
        self._flush_every, self._unflushed = flush_every, 0
        self.path = root / f"{model_key}.{LAYOUT}"
        if self.path.exists() and any(self.path.iterdir()):
            try:
                self._shard = q.EdgeShard.load(str(self.path), self._config(dimension, dense_storage))
            except Exception as exc:  # qdrant-edge raises a plain Exception
                if "datatype" not in str(exc):
                    raise
                # A shard keeps the storage it was made with (float32 before Turbo8 was the default, or the
                # other way round after a setting change); the next re-embed builds its successor as asked.
                other = None if dense_storage else DENSE_STORAGE
                self._shard = q.EdgeShard.load(str(self.path), self._config(dimension, other))
        else:
            self.path.mkdir(parents=True, exist_ok=True)
            self._shard = q.EdgeShard.create(str(self.path), self._config(dimension, dense_storage))

    def _config(self, dimension: int, dense_storage: str | None) -> Any:
        q = self._q
        datatype = {"datatype": getattr(q.VectorStorageDatatype, dense_storage)} if dense_storage else {}
        return q.EdgeConfig(
            vectors={
                DENSE: q.EdgeVectorParams(size=dimension, distance=q.Distance.Cosine, **datatype),
                PARTS: q.EdgeVectorParams(
                    size=dimension,
                    distance=q.Distance.Cosine,
                    multivector_config=q.MultiVectorConfig(q.MultiVectorComparator.MaxSim),
                ),
            },
            sparse_vectors={SPARSE: q.EdgeSparseVectorParams(modifier=q.Modifier.Idf)},
        )

    def upsert(self, items: Sequence[Indexed], vectors: Vectors, parts: Sequence[Vectors] | None = None) -> None:
        q = self._q
        points = []
        for i, (item, dense) in enumerate(zip(items, vectors.tolist(), strict=True)):
            named = {DENSE: dense, PARTS: _parts(dense, parts, i), SPARSE: q.SparseVector(*sparse_document(item.text))}
            points.append(q.Point(point_id(item.id), named, item.payload()))
        if points:
            self._shard.update(q.UpdateOperation.upsert_points(points))
            self._written(len(points))

    def delete(self, entity_ids: Sequence[str]) -> None:
        if entity_ids:
            self._shard.update(self._q.UpdateOperation.delete_points([point_id(e) for e in entity_ids]))
            self._written(len(entity_ids))

    def _written(self, points: int) -> None:
        """Flush once enough has been written, so the WAL (and a restart's replay of it) stays small."""
        self._unflushed += points
        if self._unflushed >= self._flush_every:
            self._shard.flush()
            self._unflushed = 0

    def lookup(self, entity_id: str) -> tuple[Indexed, list[float]] | None:
        records = self._shard.retrieve([point_id(entity_id)], with_payload=True, with_vector=[DENSE])
        if not records or records[0].vector is None:
            return None
        vector: Any = records[0].vector
        dense = vector[DENSE] if isinstance(vector, dict) else vector
        return Indexed.from_payload(records[0].payload or {}), [float(x) for x in dense]

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
        q = self._q
        must = [q.FieldCondition(key="type", match=q.MatchAny(any=list(types)))] if types else None
        must_not = [q.HasIdCondition({point_id(e) for e in exclude})] if exclude else None
        where = q.Filter(must=must, must_not=must_not) if (must or must_not) else None
        if text is None:
            request = q.QueryRequest(limit=limit, query=q.Query.Nearest(list(vector), using=DENSE), filter=where,
                                     score_threshold=min_score, with_payload=True)  # fmt: skip
            return [Hit(Indexed.from_payload(p.payload or {}), float(p.score)) for p in self._shard.query(request)]
        depth = max(FUSION_DEPTH, limit)
        request = q.QueryRequest(
            limit=depth,
            prefetches=[
                q.Prefetch(limit=depth, query=q.Query.Nearest(list(vector), using=DENSE), filter=where),
                q.Prefetch(limit=depth, query=q.Query.Nearest([list(vector)], using=PARTS), filter=where),
                q.Prefetch(
                    limit=depth, query=q.Query.Nearest(q.SparseVector(*sparse_query(text)), using=SPARSE), filter=where
                ),
            ],  # fmt: skip
            query=q.Fusion.Dbsf(),
            with_payload=True,
            with_vector=[DENSE],
        )
        points = self._shard.query(request)
        return _fused(((p.payload or {}, _cosine(vector, p.vector)) for p in points), limit, min_score)

    def search_many(
        self, vectors: Vectors, *, limit: int, min_score: float | None, exclude: Sequence[Sequence[str]]
    ) -> list[list[Hit]]:
        q = self._q

        def run(rows: list[list[float]], depth: int) -> list[list[Hit]]:
            requests = [q.QueryRequest(limit=depth, query=q.Query.Nearest(row, using=DENSE),
                                       score_threshold=min_score, with_payload=True) for row in rows]  # fmt: skip
            answers = self._shard.query_batch(q.QueryBatchRequest(requests))
            return [[Hit(Indexed.from_payload(p.payload or {}), float(p.score)) for p in a] for a in answers]

        return _batched(self, run, vectors, limit, min_score, exclude)

    def count(self) -> int:
        # The shard's own tally, not an exact count request, which visits every point: 8.4 ms at 100,000
        # points (0.004 ms for this), under the index lock, on every status poll. With no optimizer, the
        # shard is one plain segment and the tally is exact (checked after re-upserts, deletes, a reload).
        return int(self._shard.info().points_count)

    def activate(self) -> None:
        return None  # one process opens the shard; which model answers is the similarity service's alias

    def drop(self) -> None:
        self.close()
        shutil.rmtree(self.path, ignore_errors=True)

    def close(self) -> None:
        self._shard.flush()
        self._shard.close()
