"""The embedded index's HNSW is built in a child process while the service goes on searching and writing;
what was written meanwhile is in the swapped-in shard; a restart opens it; a build that dies changes
nothing (service_layer/index_builds.py; real qdrant-edge, no Redis or graph reads needed)."""

from __future__ import annotations

import multiprocessing
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from services.similarity.adapters.edge_index import EdgeIndex
from services.similarity.adapters.index import Indexed
from services.similarity.bootstrap import Similarity
from services.similarity.bootstrap import bootstrap as similarity_bootstrap
from services.similarity.entrypoints.http import stats
from services.similarity.service_layer import index_builds
from services.similarity.settings import SimilaritySettings
from tests.integration.test_gateway import EMBEDDER

pytestmark = pytest.mark.integration
N, DIM = 6_000, 384


def vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    centers = rng.normal(size=(60, DIM)).astype(np.float32)
    x = centers[rng.integers(0, len(centers), n)] + 0.7 * rng.normal(size=(n, DIM)).astype(np.float32)
    return np.asarray(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=np.float32)


def items(ids: range | list[int], prefix: str = "e") -> list[Indexed]:
    return [Indexed(id=f"{prefix}:{i}", type="claim", name=f"{prefix} {i}", text=f"text {i}") for i in ids]


def similarity(tmp_path: Path, env: dict[str, str], **settings_: Any) -> Similarity:
    settings = SimilaritySettings(index_dir=tmp_path, index_build_min_points=N // 2, **settings_)
    return similarity_bootstrap(settings, embedder=EMBEDDER, graph=httpx.Client(base_url="http://127.0.0.1:9"))


def building() -> bool:
    return any(p.name == "index-build" for p in multiprocessing.active_children())


def test_a_graph_is_built_beside_the_service_and_keeps_what_was_written_meanwhile(
    env: dict[str, str], tmp_path: Path
) -> None:
    rng = np.random.default_rng(7)
    sim = similarity(tmp_path, env)
    index = sim.index
    assert isinstance(index, EdgeIndex)
    x = vectors(rng, N)
    for start in range(0, N, 1_000):
        index.upsert(items(range(start, start + 1_000)), x[start : start + 1_000])
    assert index.build_due(N // 2, 0.2)
    assert stats(sim)["index_graph"] == {"points": 0, "since": N, "building": False}
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(index_builds.build_if_due(sim, threading.Event())))
    thread.start()
    # While the child builds: searches answer and writes land (new points, moved points, deleted points).
    searched_while_building, seen_building = 0, False
    added, moved = vectors(rng, 300), vectors(rng, 200)
    while not building() and thread.is_alive():
        time.sleep(0.01)
    for i in range(300):
        with sim.index_lock:
            index.upsert(items([i], "new"), added[i : i + 1])
            if i < 200:
                index.upsert(items([i]), moved[i : i + 1])
                x[i] = moved[i]
            if 200 <= i < 250:
                index.delete([f"e:{i}"])
            hits = index.search(x[1000].tolist(), limit=5)
        searched_while_building += building() and len(hits) == 5
        seen_building = seen_building or stats(sim)["index_graph"]["building"]
    thread.join(120)
    assert searched_while_building > 0  # the build ran in a child: this process went on answering
    built = result[0]
    assert isinstance(built, index_builds.Built) and built.points == N + 300 - 50
    assert index.count() == N + 300 - 50 and index.built_points == N + 300 - 50
    assert index.path.name.endswith(".g1") and not (tmp_path / index.path.name.removesuffix(".g1")).exists()
    for i in (0, 199, 5_000):  # moved ones have their new vectors, others kept theirs
        found = index.lookup(f"e:{i}")
        assert found is not None and float(np.dot(found[1], x[i])) > 0.99
    assert index.lookup("e:210") is None and index.lookup("new:299") is not None
    # Search through the graph against exact float32 search over the same points.
    every = np.concatenate([np.delete(x, range(200, 250), axis=0), added])
    names = [f"e:{i}" for i in range(N) if not 200 <= i < 250] + [f"new:{i}" for i in range(300)]
    queries = vectors(rng, 50)
    truth = np.argsort(-(queries @ every.T), axis=1)[:, :10]
    recall = np.mean([len({h.entity.id for h in index.search(q.tolist(), limit=10)} & {names[j] for j in t}) / 10
                      for q, t in zip(queries, truth, strict=True)])  # fmt: skip
    assert recall >= 0.95
    assert not index.build_due(N // 2, 0.2)  # just built
    assert index._shard.info().payload_schema["type"].points == N + 300 - 50  # the built shard has it too
    assert seen_building and stats(sim)["index_graph"] == {"points": N + 300 - 50, "since": 0, "building": False}
    sim.close()
    # A restart opens the built shard.
    reopened = EdgeIndex(tmp_path, sim.model.key, sim.model.dimension)
    try:
        assert reopened.path == index.path and reopened.count() == N + 300 - 50 and reopened.built_points > 0
        assert reopened.search(x[5_000].tolist(), limit=1)[0].entity.id == "e:5000"
    finally:
        reopened.close()


def test_a_build_whose_child_dies_changes_nothing(env: dict[str, str], tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    sim = similarity(tmp_path, env)
    index = sim.index
    assert isinstance(index, EdgeIndex)
    before = index.path
    index.upsert(items(range(N // 2)), vectors(rng, N // 2))
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(index_builds.build_if_due(sim, threading.Event())))
    thread.start()
    while not building() and thread.is_alive():
        time.sleep(0.01)
    for child in multiprocessing.active_children():
        if child.name == "index-build":
            child.kill()
    thread.join(60)
    assert result == [None]
    assert index.path == before and index.count() == N // 2 and index.built_points == 0
    assert [p.name for p in tmp_path.iterdir() if ".g" in p.name] == []  # what the child wrote is gone
    index.upsert(items([0]), vectors(rng, 1))  # writes are no longer tracked for a build
    assert index.search(vectors(rng, 1)[0].tolist(), limit=3)
    sim.close()


def test_a_tail_left_when_writes_go_quiet_is_built_into_the_graph(env: dict[str, str], tmp_path: Path) -> None:
    # Growth alone would wait for ten times the corpus: only the quiet rule can build the tail.
    quiet = {"index_build_growth": 10.0, "index_build_quiet_points": 500, "index_build_quiet_s": 0.5}
    rng = np.random.default_rng(9)
    sim = similarity(tmp_path, env, **quiet)
    index = sim.index
    assert isinstance(index, EdgeIndex)
    index.upsert(items(range(N // 2)), vectors(rng, N // 2))
    first = index_builds.build_if_due(sim, threading.Event())
    assert first is not None and first.points == N // 2
    index.upsert(items(range(N // 2, N // 2 + 400)), vectors(rng, 400))
    time.sleep(0.6)
    assert index_builds.build_if_due(sim, threading.Event()) is None  # quiet, but a tail too small to matter
    index.upsert(items(range(N // 2 + 400, N // 2 + 600)), vectors(rng, 200))
    assert stats(sim)["index_graph"] == {"points": N // 2, "since": 600, "building": False}
    assert index_builds.build_if_due(sim, threading.Event()) is None  # a write just came: not quiet yet
    time.sleep(0.6)
    built = index_builds.build_if_due(sim, threading.Event())
    assert built is not None and built.points == N // 2 + 600 == index.built_points
    assert stats(sim)["index_graph"] == {"points": N // 2 + 600, "since": 0, "building": False}
    # A restart counts the points outside the last graph as its tail (at least those it did not hold).
    index.upsert(items(range(N, N + 700)), vectors(rng, 700))
    sim.close()
    reopened = similarity(tmp_path, env, **quiet)
    try:
        assert isinstance(reopened.index, EdgeIndex) and reopened.index.unbuilt_points == 700
        assert index_builds.build_if_due(reopened, threading.Event()) is None  # quiet counts from the opening
        time.sleep(0.6)
        again = index_builds.build_if_due(reopened, threading.Event())
        assert again is not None and again.points == N // 2 + 1_300
    finally:
        reopened.close()
