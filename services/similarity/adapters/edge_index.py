"""The vector-index port over qdrant-edge: Qdrant's Rust engine in-process, one opener per directory."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from services.similarity.adapters.edge_build import Build, Hnsw, Plain, index_payload, shard_config, to_plain, to_point
from services.similarity.adapters.index import (
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

#: How the embedded shard stores dense vectors. The shard has no HNSW (qdrant-edge builds it only in a
#: blocking `optimize()`), so every search scans them all: at 100,000 points, 8.7 ms per query as float32,
#: 1.8 ms as Turbo8 (TurboQuant, 8 bits a dimension), top-10 recall 0.994, scores within 0.0013.
DENSE_STORAGE = "Turbo8"
#: Points written between two flushes of the embedded shard. qdrant-edge keeps every write in its WAL until
#: a flush, so without one the WAL grows for as long as the process runs and a restart after a crash
#: replays all of it: measured at 100,000 384-d points, 448 MiB of WAL and 5.4 s to reopen, against
#: 128 MiB and 0.57 s when flushed every 10,000 (a flush then takes ~70 ms and holds the GIL).
FLUSH_EVERY = 10_000


#: Points a page when the shard is copied out to a build.
EXPORT_PAGE = 250
WARM_BUFFER = bytearray(1 << 22)


class EdgeIndex:
    """One model version's shard. Its directory is named by a pointer file (`<name>.current`) once an HNSW
    build has been swapped in (each build writes a new directory, `<name>.g<N>`); before that it is
    `<name>` itself. Writes while a build runs are tracked (point ids) and replayed into it at the swap."""

    def __init__(
        self,
        root: Path,
        model_key: str,
        dimension: int,
        dense_storage: str | None = DENSE_STORAGE,
        flush_every: int = FLUSH_EVERY,
        hnsw: Hnsw | None = None,
    ) -> None:
        """`dense_storage`: a qdrant-edge VectorStorageDatatype name for new shards, None for float32."""
        import qdrant_edge as q

        self._q = q
        self._flush_every, self._unflushed = flush_every, 0
        self._root, self._name, self._dimension = root, f"{model_key}.{LAYOUT}", dimension
        self.hnsw = hnsw or Hnsw()
        self._walk = q.SearchParams(hnsw_ef=max(self.hnsw.ef, 1))
        self._dirty: set[Any] | None = None  # point ids written since a build began copying the shard
        self._since_build = 0  # points written since the last build was swapped in
        self._last_write = time.monotonic()  # when a point was last written (or the shard opened)
        self._pointer = root / f"{self._name}.current"
        current = json.loads(self._pointer.read_text()) if self._pointer.exists() else {}
        self.path: Path = root / str(current.get("dir", self._name))
        self.built_points: int = current.get("built", 0)
        self._remove_others()
        self._storage = dense_storage
        if self.path.exists() and any(self.path.iterdir()):
            try:
                self._shard = q.EdgeShard.load(str(self.path), self._config(dense_storage))
            except Exception as exc:  # qdrant-edge raises a plain Exception
                if "datatype" not in str(exc):
                    raise
                # A shard keeps the storage it was made with (float32 before Turbo8 was the default, or the
                # other way round after a setting change); the next re-embed builds its successor as asked.
                self._storage = None if dense_storage else DENSE_STORAGE
                self._shard = q.EdgeShard.load(str(self.path), self._config(self._storage))
        else:
            self.path.mkdir(parents=True, exist_ok=True)
            self._shard = q.EdgeShard.create(str(self.path), self._config(dense_storage))
        index_payload(q, self._shard)
        # The tail a restart finds: at least the points the last build (if any) did not hold.
        self._since_build = max(0, self.count() - self.built_points)

    def _config(self, dense_storage: str | None) -> Any:
        return shard_config(self._q, self._dimension, dense_storage, self.hnsw)

    def _remove_others(self) -> None:
        """Directories of builds a crash left, and the one a swap replaced."""
        for other in self._root.glob(f"{self._name}*"):
            if other.is_dir() and other != self.path and other.name.removeprefix(self._name)[:2] in ("", ".g"):
                shutil.rmtree(other, ignore_errors=True)

    def upsert(self, items: Sequence[Indexed], vectors: Vectors, parts: Sequence[Vectors] | None = None) -> None:
        q = self._q
        points = []
        for i, (item, dense) in enumerate(zip(items, vectors.tolist(), strict=True)):
            named = {
                DENSE: dense,
                PARTS: point_parts(dense, parts, i),
                SPARSE: q.SparseVector(*sparse_document(item.text)),
            }
            points.append(q.Point(point_id(item.id), named, item.payload()))
        if points:
            self._shard.update(q.UpdateOperation.upsert_points(points))
            self._written([point_id(i.id) for i in items])

    def delete(self, entity_ids: Sequence[str]) -> None:
        if entity_ids:
            ids: list[Any] = [point_id(e) for e in entity_ids]
            self._shard.update(self._q.UpdateOperation.delete_points(ids))
            self._written(ids)

    def _written(self, ids: Sequence[Any]) -> None:
        """Flush once enough has been written, so the WAL (and a restart's replay of it) stays small."""
        if self._dirty is not None:
            self._dirty.update(ids)
        self._since_build += len(ids)
        self._last_write = time.monotonic()
        self._unflushed += len(ids)
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
                                     score_threshold=min_score, with_payload=True, params=self._walk)  # fmt: skip
            return [Hit(Indexed.from_payload(p.payload or {}), float(p.score)) for p in self._shard.query(request)]
        depth = max(FUSION_DEPTH, limit)
        # Only a cosine threshold drops fused rows: without one the page is the fusion's first `limit`.
        answered = depth if min_score is not None else limit
        by_dense = q.Prefetch(limit=depth, query=q.Query.Nearest(list(vector), using=DENSE), filter=where,
                              params=self._walk)  # fmt: skip
        by_words = q.Prefetch(limit=depth, query=q.Query.Nearest(q.SparseVector(*sparse_query(text)), using=SPARSE),
                              filter=where)  # fmt: skip
        # The sentence vectors have no graph, so MaxSim over all of them scans the corpus (10.7 ms a search
        # at 100,000 points); it re-scores only what the dense graph and BM25 bring instead, which changed no
        # rank on SciFact (bench/README, "The search box").
        by_sentence = q.Prefetch(limit=depth, query=q.Query.Nearest([list(vector)], using=PARTS),
                                 prefetches=[by_dense, by_words])  # fmt: skip
        request = q.QueryRequest(
            limit=answered,
            prefetches=[by_dense, by_sentence, by_words],
            query=q.Fusion.Dbsf(),
            with_payload=True,
            with_vector=[DENSE],
        )
        points = self._shard.query(request)
        return fused(cosines(vector, points), limit, min_score)

    def search_many(
        self, vectors: Vectors, *, limit: int, min_score: float | None, exclude: Sequence[Sequence[str]]
    ) -> list[list[Hit]]:
        q = self._q

        def run(rows: list[list[float]], depth: int) -> list[list[Hit]]:
            requests = [q.QueryRequest(limit=depth, query=q.Query.Nearest(row, using=DENSE), params=self._walk,
                                       score_threshold=min_score, with_payload=True) for row in rows]  # fmt: skip
            answers = self._shard.query_batch(q.QueryBatchRequest(requests))
            return [[Hit(Indexed.from_payload(p.payload or {}), float(p.score)) for p in a] for a in answers]

        return batched(self, run, vectors, limit, min_score, exclude)

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
        self._pointer.unlink(missing_ok=True)

    # An HNSW build (services/similarity/service_layer/index_builds.py calls these, holding the index lock
    # for each call but `start_build` and `open_built`).

    def build_due(self, min_points: int, growth: float, quiet_points: int | None = None, quiet_s: float = 0) -> bool:
        """Enough points to be worth a graph, and enough written since the last one (a share of it); or, once
        no write has come for `quiet_s`, at least `quiet_points` written since (a tail left scanned for good)."""
        if self.count() < min_points:
            return False
        since = self._since_build
        if self.built_points == 0 or since >= growth * self.built_points:
            return True
        return quiet_points is not None and since >= quiet_points and time.monotonic() - self._last_write >= quiet_s

    @property
    def unbuilt_points(self) -> int:
        """Points written since the last build (each search scans them beside the graph)."""
        return self._since_build

    def start_build(self) -> Build:
        generation = 1 + max((int(p.name.rsplit(".g", 1)[1]) for p in self._root.glob(f"{self._name}.g*")
                              if p.name.rsplit(".g", 1)[1].isdigit()), default=0)  # fmt: skip
        return Build(self._root / f"{self._name}.g{generation}", self._dimension, self._storage, self.hnsw)

    def track_writes(self) -> None:
        """From now on, note the points written (replayed into a build at the swap)."""
        self._dirty = set()

    def export(self, offset: Any) -> tuple[list[Plain], Any]:
        """A page of the shard's points from `offset` (None: the first) and the next offset (None after the
        last page). qdrant-edge's shard takes this beside searches and writes from other threads."""
        request = self._q.ScrollRequest(offset=offset, limit=EXPORT_PAGE, with_payload=True, with_vector=True)
        records, after = self._shard.scroll(request)
        return [to_plain(r) for r in records], after

    def open_built(self, build: Build) -> Any:
        """Open the built shard. `EdgeShard.load` holds the GIL while it reads the shard's files (1.4 s at
        100,000 points from a cold page cache, 0.2 s from a warm one; every thread of the process waits),
        so the files are read into the page cache first by plain reads, which release the GIL."""
        for file in sorted(build.path.rglob("*")):
            if file.is_file():
                with file.open("rb") as f:
                    while f.readinto(WARM_BUFFER):
                        pass
        return self._q.EdgeShard.load(str(build.path))

    def replay(self, built: Any, limit: int | None = None) -> int:
        """Copy into `built` the current state of up to `limit` points written since the export began
        (deleted ones are deleted there); how many are left."""
        assert self._dirty is not None
        ids: list[Any] = [self._dirty.pop() for _ in range(min(len(self._dirty), limit or len(self._dirty)))]
        for start in range(0, len(ids), EXPORT_PAGE):
            chunk = ids[start : start + EXPORT_PAGE]
            records = self._shard.retrieve(chunk, with_payload=True, with_vector=True)
            present = {str(r.id) for r in records}
            if records:
                points = [to_point(self._q, to_plain(r)) for r in records]
                built.update(self._q.UpdateOperation.upsert_points(points))
            if gone := [i for i in chunk if str(i) not in present]:
                built.update(self._q.UpdateOperation.delete_points(gone))
        return len(self._dirty)

    def swap(self, built: Any, build: Build) -> Callable[[], None]:
        """Replay the rest and answer from `built` from now on; what closes and removes the replaced shard
        (to call without the lock: closing a large shard takes a while). The replayed writes are in the
        built shard's WAL, as any write is until a flush."""
        self.replay(built)
        points = int(built.info().points_count)
        tmp = self._pointer.with_suffix(".tmp")
        tmp.write_text(json.dumps({"dir": build.path.name, "built": points}))
        with tmp.open() as f:
            os.fsync(f.fileno())
        tmp.replace(self._pointer)  # the switch a restart sees: the built directory holds every write
        old, old_path, self._shard, self.path = self._shard, self.path, built, build.path
        self.built_points, self._since_build, self._dirty = points, 0, None

        def retire() -> None:
            old.close()
            shutil.rmtree(old_path, ignore_errors=True)

        return retire

    @property
    def building(self) -> bool:
        return self._dirty is not None

    def abandon_build(self) -> None:
        self._dirty = None

    def close(self) -> None:
        self._shard.flush()
        self._shard.close()
