"""One contract for the vector-index port, passed by the qdrant-client adapter (local mode, the same
code path as a server) and by the embedded qdrant-edge adapter."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient

from services.similarity.adapters import edge_index as edge_module
from services.similarity.adapters.edge_index import EdgeIndex
from services.similarity.adapters.index import Indexed, VectorIndex
from services.similarity.adapters.qdrant_client_index import QdrantClientIndex

pytestmark = pytest.mark.integration
DIM = 16


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(params=["qdrant-client", "qdrant-edge"])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorIndex]:
    if request.param == "qdrant-client":
        idx: VectorIndex = QdrantClientIndex(QdrantClient(":memory:"), "test-v1", DIM, server=False)
    else:
        idx = EdgeIndex(tmp_path, "test-v1", DIM)
    yield idx
    idx.close()


def items(n: int) -> list[Indexed]:
    return [Indexed(id=f"{'claim' if i % 2 else 'concept'}:e{i}", type="claim" if i % 2 else "concept",
                    name=f"E{i}", text=f"text {i}") for i in range(n)]  # fmt: skip


#: Scores are cosine up to how the index stores vectors: the embedded shard keeps them as Turbo8 (measured:
#: within 0.0013 of float32 cosine at 384 dimensions).
SCORE_TOLERANCE = 2e-3


def cosine_of(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_nearest_first_with_cosine_scores(index: VectorIndex) -> None:
    vectors = unit(np.random.default_rng(1).normal(size=(30, DIM)))
    index.upsert(items(30), vectors)
    hits = index.search(vectors[4].tolist(), limit=5)
    assert hits[0].entity.id == "concept:e4" and hits[0].score == pytest.approx(1.0, abs=SCORE_TOLERANCE)
    expected = sorted(range(30), key=lambda i: -float(vectors[i] @ vectors[4]))[:5]
    assert [h.entity.id for h in hits] == [items(30)[i].id for i in expected]
    for hit, i in zip(hits, expected, strict=True):
        assert hit.score == pytest.approx(float(vectors[i] @ vectors[4]), abs=SCORE_TOLERANCE)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert hits[0].entity.text == "text 4"


def test_exclude_types_and_threshold(index: VectorIndex) -> None:
    vectors = unit(np.random.default_rng(2).normal(size=(30, DIM)))
    index.upsert(items(30), vectors)
    hits = index.search(vectors[3].tolist(), limit=10, exclude=["claim:e3"], types=["claim"])
    assert hits and all(h.entity.type == "claim" and h.entity.id != "claim:e3" for h in hits)
    assert all(h.score >= 0.2 for h in index.search(vectors[3].tolist(), limit=30, min_score=0.2))


def test_upsert_is_idempotent_and_delete_removes(index: VectorIndex) -> None:
    vectors = unit(np.random.default_rng(3).normal(size=(5, DIM)))
    index.upsert(items(5), vectors)
    index.upsert(items(5), vectors)
    assert index.count() == 5
    stored = index.lookup("concept:e0")
    assert stored is not None and stored[0].name == "E0"
    assert cosine_of(np.array(stored[1]), vectors[0]) > 1 - SCORE_TOLERANCE / 10  # stored, up to quantization
    index.delete(["concept:e0", "never:seen"])
    assert index.count() == 4 and index.lookup("concept:e0") is None
    index.delete(["concept:e0"])  # again: the count is the points there are, not the deletes seen
    index.upsert(items(2), vectors[:2])  # e0 back, e1 replaced
    assert index.count() == 5


def test_hybrid_lets_words_rank_and_reports_cosine(index: VectorIndex) -> None:
    vectors = unit(np.random.default_rng(5).normal(size=(3, DIM)))
    docs = [Indexed(id="claim:a", type="claim", name="a", text="aspirin lowers stroke risk"),
            Indexed(id="claim:b", type="claim", name="b", text="cats sleep most of the day"),
            Indexed(id="claim:c", type="claim", name="c", text="markets fell sharply")]  # fmt: skip
    index.upsert(docs, vectors)
    query = unit((vectors[1] + 0.9 * vectors[0])[None, :])[0]  # a little closer to b by cosine
    assert index.search(query.tolist(), limit=1)[0].entity.id == "claim:b"
    hybrid = index.search(query.tolist(), limit=3, text="aspirin stroke")
    assert hybrid[0].entity.id == "claim:a"  # the words outweigh a small cosine gap
    ranks = [h.fused for h in hybrid]  # the fusion score is reported, and it is what orders the list
    assert None not in ranks and ranks == sorted(ranks, reverse=True) and ranks[0] > ranks[-1]  # type: ignore[type-var]
    assert index.search(query.tolist(), limit=1)[0].fused is None  # a dense search has no fusion score
    cosine = {h.entity.id: h.score for h in hybrid}
    assert cosine["claim:a"] == pytest.approx(float(query @ vectors[0]), abs=SCORE_TOLERANCE)
    assert all(h.score >= 0.0 for h in index.search(query.tolist(), limit=3, text="aspirin", min_score=0.0))


def test_hybrid_lets_a_matching_sentence_lift_its_text(index: VectorIndex) -> None:
    rng = np.random.default_rng(6)
    basis = unit(rng.normal(size=(3, DIM)))
    query, other, third = basis
    # a's whole text is a little further from the query than b's, but one of a's sentences is the query.
    a_text, b_text = unit((0.55 * query + 0.85 * other)[None, :]), unit((0.65 * query + 0.75 * third)[None, :])
    fillers = unit(rng.normal(size=(40, DIM)))
    docs = [Indexed(id=f"paper:{name}", type="paper", name=name, text="alpha") for name in ["a", "b"] + [
        f"f{i}" for i in range(40)]]  # fmt: skip
    parts = [np.stack([query, other]), np.zeros((0, DIM), np.float32)] + [np.zeros((0, DIM), np.float32)] * 40
    index.upsert(docs, np.concatenate([a_text, b_text, fillers]), parts)
    assert [h.entity.id for h in index.search(query.tolist(), limit=2)] == ["paper:b", "paper:a"]
    assert index.search(query.tolist(), limit=1, text="words nobody used")[0].entity.id == "paper:a"


def test_edge_index_survives_a_reopen(tmp_path: Path) -> None:
    vectors = unit(np.random.default_rng(4).normal(size=(5, DIM)))
    first = EdgeIndex(tmp_path, "test-v1", DIM)
    first.upsert(items(5), vectors)
    first.close()
    again = EdgeIndex(tmp_path, "test-v1", DIM)  # a second opener would fail: this one is alone
    assert again.count() == 5 and again.search(vectors[2].tolist(), limit=1)[0].entity.id == "concept:e2"
    again.close()


def test_edge_index_keeps_a_keyword_index_on_type_for_filtered_searches(tmp_path: Path) -> None:
    import qdrant_edge as q

    vectors = unit(np.random.default_rng(8).normal(size=(6, DIM)))
    first = EdgeIndex(tmp_path, "test-v1", DIM)
    assert "type" in first._shard.info().payload_schema
    first.upsert(items(6), vectors)
    first._shard.update(q.UpdateOperation.delete_field_index("type"))  # as a shard made before it was kept
    first.close()
    again = EdgeIndex(tmp_path, "test-v1", DIM)
    try:
        assert again._shard.info().payload_schema["type"].points == 6
        hits = again.search(vectors[1].tolist(), limit=6, types=["claim"])
        assert [h.entity.id for h in hits][0] == "claim:e1" and {h.entity.type for h in hits} == {"claim"}
        assert len(hits) == 3
    finally:
        again.close()


def test_a_shard_made_with_float32_vectors_still_opens(tmp_path: Path) -> None:
    """Shards made before dense vectors were stored as Turbo8 keep working (qdrant-edge refuses to load a
    shard with a config whose datatype differs)."""
    vectors = unit(np.random.default_rng(6).normal(size=(5, DIM)))
    old = EdgeIndex(tmp_path, "test-v1", DIM, dense_storage=None)
    old.upsert(items(5), vectors)
    old.close()
    assert edge_module.DENSE_STORAGE == "Turbo8"
    again = EdgeIndex(tmp_path, "test-v1", DIM)
    hit = again.search(vectors[3].tolist(), limit=1)[0]
    assert hit.entity.id == "claim:e3" and hit.score == pytest.approx(1.0, abs=1e-6)  # float32: exact
    again.upsert(items(6)[5:], unit(np.random.default_rng(7).normal(size=(1, DIM))))
    assert again.count() == 6
    again.close()


@pytest.mark.parametrize("kind", ["qdrant-client", "qdrant-edge"])
def test_a_dropped_collection_comes_back_empty_and_the_alias_follows_activate(kind: str, tmp_path: Path) -> None:
    client = QdrantClient(":memory:")

    def open_index(key: str) -> VectorIndex:
        if kind == "qdrant-client":
            return QdrantClientIndex(client, key, DIM, server=False)
        return EdgeIndex(tmp_path, key, DIM)

    vectors = unit(np.random.default_rng(5).normal(size=(4, DIM)))
    old, new = open_index("test-v1"), open_index("test-v2")
    new.upsert(items(4), vectors)
    new.activate()
    if kind == "qdrant-client":
        (alias,) = [a for a in client.get_aliases().aliases if a.alias_name == "entities"]
        assert alias.collection_name.startswith("entities__test-v2")
    new.drop()
    again = open_index("test-v2")
    assert again.count() == 0 and old.count() == 0
    again.close()
    old.close()


def test_search_many_answers_what_search_answers_row_by_row(index: VectorIndex) -> None:
    from services.similarity.adapters.index import OVERFETCH

    vectors = unit(np.random.default_rng(5).normal(size=(120, DIM)))
    index.upsert(items(120), vectors)
    ids = [item.id for item in items(120)]
    # Excludes of every size: none, the row itself, a few of its nearest, and more than the batch overfetches.
    nearest = [sorted(range(120), key=lambda j: -float(vectors[j] @ vectors[i])) for i in range(120)]
    exclude = [[], [ids[1]], [ids[j] for j in nearest[2][:4]], [ids[j] for j in nearest[3][: OVERFETCH + 5]]]
    rows = vectors[:4]
    for min_score in (None, 0.3):
        batch = index.search_many(rows, limit=7, min_score=min_score, exclude=exclude)
        single = [index.search(rows[i].tolist(), limit=7, min_score=min_score, exclude=exclude[i]) for i in range(4)]
        assert [[h.entity.id for h in hits] for hits in batch] == [[h.entity.id for h in hits] for hits in single]
        assert all(not set(exclude[i]) & {h.entity.id for h in batch[i]} for i in range(4))
        assert [len(hits) for hits in batch] == ([7, 7, 7, 7] if min_score is None else [len(x) for x in single])
        for got, want in zip(batch, single, strict=True):
            assert [h.score for h in got] == pytest.approx([h.score for h in want], abs=1e-5)


def test_edge_index_wal_stays_bounded_and_a_crash_loses_nothing(tmp_path: Path) -> None:
    """qdrant-edge keeps writes in its WAL (32 MiB segments) until a flush: the index flushes every
    `flush_every` points, so a long-running process does not pile up WAL to replay after a crash.
    Unflushed, these 30,000 384-d points leave 5 WAL segments; flushed, at most 3 (the WAL keeps a few)."""
    dim, n = 384, 30_000
    rng = np.random.default_rng(9)
    index = EdgeIndex(tmp_path, "test-v1", dim, flush_every=2_000)
    for start in range(0, n, 500):
        batch = [
            Indexed(id=f"claim:w{i}", type="claim", name=f"W{i}", text=f"text {i}") for i in range(start, start + 500)
        ]
        index.upsert(batch, unit(rng.normal(size=(500, dim))))
    segments = [f for f in (index.path / "wal").iterdir() if f.name.startswith(("open-", "closed-"))]
    assert len(segments) <= 3
    crashed = tmp_path / "crashed"  # what a killed process leaves: the files as they are, never closed
    shutil.copytree(tmp_path / "test-v1.l2", crashed / "test-v1.l2", ignore=shutil.ignore_patterns(".lock"))
    index.close()
    again = EdgeIndex(crashed, "test-v1", dim)
    assert again.count() == n and again.lookup("claim:w29999") is not None
    again.close()
