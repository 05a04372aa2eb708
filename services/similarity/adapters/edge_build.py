"""The embedded shard's layout, and its HNSW built in a child process.

qdrant-edge builds HNSW only in `optimize()`, which holds the GIL for its whole run (18.7 s at 20,000
points, no other thread ran): called in the service, it would freeze every query. So a child process
gets the shard's points (the parent scrolls them out a page at a time), writes them into a new shard
directory, runs `optimize()` there and closes it; the parent then opens that directory, replays what
was written meanwhile and swaps it in (edge_index.py). The child is niced and limited to
`threads` indexing threads so the service keeps its cores.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from services.similarity.adapters.index import DENSE, PARTS, SPARSE

#: Points the child writes between flushes (the shard keeps its WAL until one; edge_index.FLUSH_EVERY).
FLUSH_EVERY = 10_000
#: A plain point as it crosses the pipe: id, named vectors (sparse as indices and values), payload.
Plain = tuple[str, dict[str, Any], dict[str, Any]]


@dataclass(frozen=True)
class Hnsw:
    """How the HNSW graph is built and searched. `ef`: candidates a search keeps (recall against speed: at
    100,000 MiniLM vectors of SciFact sentences, recall@10 against exact float32 search is 0.953 at 64,
    0.973 at 128, 0.986 at 256 (p50 0.66 ms, against 4.8 ms for the scan), 0.990 at 512; bench/ann.py)."""

    m: int = 16
    ef_construct: int = 100
    ef: int = 256
    threads: int = 1  # indexing threads of the child


def shard_config(q: Any, dimension: int, dense_storage: str | None, hnsw: Hnsw) -> Any:
    """The layout every shard gets. Only `dense` has an HNSW graph: the sentence vectors (`parts`, compared
    by MaxSim) have none (m=0; a hybrid search has them re-score what the graph and BM25 found), and the
    sparse BM25 vector has its inverted index."""
    datatype = {"datatype": getattr(q.VectorStorageDatatype, dense_storage)} if dense_storage else {}
    # full_scan_threshold is in KB: a segment smaller than this is scanned, not walked (Qdrant's default).
    graph = q.HnswIndexConfig(m=hnsw.m, ef_construct=hnsw.ef_construct, full_scan_threshold=10_000,
                              max_indexing_threads=hnsw.threads)  # fmt: skip
    return q.EdgeConfig(
        vectors={
            DENSE: q.EdgeVectorParams(size=dimension, distance=q.Distance.Cosine, **datatype),
            PARTS: q.EdgeVectorParams(
                size=dimension,
                distance=q.Distance.Cosine,
                multivector_config=q.MultiVectorConfig(q.MultiVectorComparator.MaxSim),
                hnsw_config=q.HnswIndexConfig(m=0, ef_construct=hnsw.ef_construct, full_scan_threshold=10_000),
            ),
        },
        sparse_vectors={SPARSE: q.EdgeSparseVectorParams(modifier=q.Modifier.Idf)},
        hnsw_config=graph,
        # One segment to index, built once all points are in: no re-merges while the child runs.
        optimizers=q.EdgeOptimizersConfig(default_segment_number=1, indexing_threshold=1),
    )


def index_payload(q: Any, shard: Any) -> None:
    """A keyword index on `type` (once): without it a search filtered by type reads every point's payload
    (6,000 SciFact points: 13.1 ms a filtered dense search against 1.6 with it and 1.3 unfiltered)."""
    if "type" not in shard.info().payload_schema:
        shard.update(q.UpdateOperation.create_field_index("type", q.PayloadSchemaType.Keyword))


def to_plain(record: Any) -> Plain:
    vectors = dict(record.vector)
    sparse = vectors[SPARSE]
    vectors[SPARSE] = (list(sparse.indices), list(sparse.values))
    return str(record.id), vectors, dict(record.payload or {})


def to_point(q: Any, plain: Plain) -> Any:
    point_id, vectors, payload = plain
    named = dict(vectors)
    named[SPARSE] = q.SparseVector(*vectors[SPARSE])
    return q.Point(point_id, named, payload)


def _child(path: str, dimension: int, dense_storage: str | None, hnsw: Hnsw, conn: Connection) -> None:
    os.nice(10)  # queries and the consumer come first
    import qdrant_edge as q

    shard = q.EdgeShard.create(path, shard_config(q, dimension, dense_storage, hnsw))
    index_payload(q, shard)
    unflushed = 0
    while (page := conn.recv()) is not None:
        shard.update(q.UpdateOperation.upsert_points([to_point(q, p) for p in page]))
        unflushed += len(page)
        if unflushed >= FLUSH_EVERY:  # else the WAL keeps every point: 7.9 GB on disk at 1M points
            shard.flush()
            unflushed = 0
    shard.optimize()
    shard.flush()
    shard.close()
    conn.send("built")


class Build:
    """One child building a shard at `path`: `send` pages of points, then `finish`."""

    def __init__(self, path: Path, dimension: int, dense_storage: str | None, hnsw: Hnsw) -> None:
        shutil.rmtree(path, ignore_errors=True)  # a build a crash left
        self.path = path
        context = multiprocessing.get_context("spawn")  # no copy of the service's threads and locks
        self._conn, theirs = context.Pipe()
        self._process = context.Process(target=_child, args=(str(path), dimension, dense_storage, hnsw, theirs),
                                        name="index-build", daemon=True)  # fmt: skip
        self._process.start()
        theirs.close()

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def send(self, page: list[Plain]) -> bool:
        """False when the child is gone (killed, out of memory)."""
        try:
            self._conn.send(page)
        except OSError:  # BrokenPipeError, ConnectionResetError
            return False
        return True

    def finish(self, stop: threading.Event, poll_s: float = 0.5) -> bool:
        """Wait for the child to build the shard; False if it died or `stop` was set (the build is dropped)."""
        if not self.send(None):  # type: ignore[arg-type]
            return False
        while not stop.is_set():
            if self._conn.poll(poll_s):
                try:
                    return bool(self._conn.recv() == "built")
                except EOFError:
                    return False
            if not self._process.is_alive() and not self._conn.poll(0):
                return False
        return False

    def close(self, keep: bool) -> None:
        """End the child (it has exited after a build); without `keep`, remove what it wrote."""
        if self._process.is_alive():
            self._process.kill()
        self._process.join(5)
        self._conn.close()
        if not keep:
            shutil.rmtree(self.path, ignore_errors=True)
