"""Two similarity replicas consuming one group over one index (two instances in this process over one
qdrant-client index in local mode, which no second process may open; no Qdrant server runs on these
machines): every entity indexed once, candidates equal to those computed from scratch, an edge added
while both run withdraws its candidate, a re-embed's batches reach either replica and its switch is
followed by the other within a second, and the start-up rewind runs once."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient
from qdrant_client import QdrantClient

from platograph.contracts import EdgeAdded, EntityUpserted
from platograph.graph_api import pages
from services.graph.bootstrap import bootstrap as graph_bootstrap
from services.graph.entrypoints import http as graph_http
from services.graph.entrypoints import projector
from services.graph.settings import GraphSettings
from services.similarity.adapters.index import Indexed, VectorIndex
from services.similarity.adapters.qdrant_client_index import QdrantClientIndex
from services.similarity.bootstrap import Similarity
from services.similarity.bootstrap import bootstrap as similarity_bootstrap
from services.similarity.domain.candidates import pair, threshold_for
from services.similarity.domain.models import E5_SMALL, MINILM, ModelSpec
from services.similarity.entrypoints import consumer
from services.similarity.entrypoints.reembed_jobs import _entities
from services.similarity.service_layer import candidates, reembed, replicas
from services.similarity.settings import SimilaritySettings
from tests.helpers import append, eventually
from tests.integration.test_gateway import EMBEDDER

pytestmark = pytest.mark.integration

TOPICS = {
    "sleep": ["Sleep consolidates newly learned memories.", "Memories are strengthened during deep sleep.",
              "Students who slept after studying recalled more.", "Sleep deprivation impairs memory formation.",
              "Naps after learning improve later recall."],
    "vision": ["Larger vision models learn more similar representations.",
               "Image encoders converge to a shared representation as they scale.",
               "Vision networks trained on different data align their features.",
               "Representations of big image models become alike.",
               "Scaling vision models makes their features agree."],
    "climate": ["Rising carbon dioxide warms the planet.", "Greenhouse gases trap heat in the atmosphere.",
                "Global temperatures climb as emissions grow.", "Burning fossil fuels drives climate warming.",
                "More CO2 in the air raises average temperature."],
    "coffee": ["Caffeine improves alertness in tired people.", "Coffee makes sleepy drivers more attentive.",
               "A cup of coffee reduces reaction times.", "Caffeine intake raises vigilance.",
               "Drinking coffee helps people stay awake."],
    "bees": ["Bees pollinate most flowering crops.", "Honeybees carry pollen between flowers.",
             "Crop yields depend on pollinating insects.", "Without bees many fruits would not form.",
             "Pollinators such as bees sustain agriculture."],
    "proteins": ["Protein structure can be predicted from sequence.", "Deep networks fold proteins accurately.",
                 "Amino acid sequences determine a protein's shape.", "AlphaFold predicts protein folds.",
                 "Machine learning solves protein structure prediction."],
}  # fmt: skip
ENTITIES = [
    EntityUpserted(id=f"claim:{topic}-{i}", type="claim", name=f"{topic} {i}", text=text)
    for topic, texts in TOPICS.items()
    for i, text in enumerate(texts)
]


class Shared:
    """One qdrant-client client for both replicas: a replica letting go of a collection does not close it."""

    def __init__(self, client: QdrantClient) -> None:
        self.client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def close(self) -> None:
        pass


@contextmanager
def two_replicas(tmp_path: Path, **settings: Any) -> Iterator[tuple[Similarity, Similarity, TestClient]]:
    """The graph (projector on a thread) and two similarity replicas, each with its consumer and its
    follower of the shared model state on threads."""
    graph = graph_bootstrap(GraphSettings(consumer="it-projector", block_ms=50))
    graph_api = TestClient(graph_http.create_app(graph), base_url="http://graph")
    client = Shared(QdrantClient(path=str(tmp_path / "qdrant")))
    lock = threading.RLock()  # local mode is not thread-safe: the two replicas share its lock

    def opener(spec: ModelSpec) -> VectorIndex:
        return QdrantClientIndex(client, spec.key, spec.dimension, server=False)

    sims = [
        similarity_bootstrap(
            SimilaritySettings(
                similarity_consumer=f"replica-{n}",
                similarity_batch_size=1,
                candidates_per_entity=50,
                index_dir=tmp_path / f"unused-{n}",
                **settings,
            ),
            embedder=EMBEDDER,
            graph=graph_api,
            opener=opener,
            index_lock=lock,
        )  # fmt: skip
        for n in (1, 2)
    ]
    stop = threading.Event()
    threads = [threading.Thread(target=projector.run, args=(graph, stop), daemon=True)]
    for sim in sims:
        threads += [threading.Thread(target=consumer.run, args=(sim, stop), daemon=True),
                    threading.Thread(target=replicas.run, args=(sim, stop), daemon=True)]  # fmt: skip
    for thread in threads:
        thread.start()
    try:
        yield sims[0], sims[1], graph_api
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
        for thread in threading.enumerate():
            if thread.name == "candidates-follow":
                thread.join(30)
        for sim in sims:
            sim.graph = httpx.Client()  # the graph's client is closed once, below
            sim.close()
        graph.close()
        client.client.close()


def settled(sim: Similarity, graph: TestClient) -> bool:
    """Both replicas read and acked everything, and the graph projected what they appended."""
    backlog = sim.consumer.backlog()
    last = sim.consumer.last_issued()
    if backlog["pending"] != 0 or backlog["lag"] != 0 or last is None:
        return False
    answer = graph.get("/v1/projection", params={"position": last}).json()
    return bool(answer["reached"])


def proposed(graph: TestClient) -> set[tuple[str, str]]:
    return {
        (c["a"]["id"], c["b"]["id"])
        for page in pages(graph, "/v1/candidates", {"status": "proposed", "limit": 500})
        for c in page
    }


def from_scratch(model: ModelSpec, linked: set[tuple[str, str]]) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """The pairs above the model's threshold without a typed edge, from one numpy cosine matrix; and the
    pairs too close to the threshold to judge (index scores differ from numpy's in the last digits)."""
    vectors = EMBEDDER.embed([model.text_of(e.model_dump()) for e in ENTITIES])
    scores = vectors @ vectors.T
    above, close = set(), set()
    for i, a in enumerate(ENTITIES):
        for j in range(i + 1, len(ENTITIES)):
            b, score = ENTITIES[j], float(scores[i, j])
            key = pair(a.id, b.id)
            threshold = threshold_for(a.type, b.type, model.default_threshold, {})
            if abs(score - threshold) < 1e-4:
                close.add(key)
            elif score >= threshold and key not in linked:
                above.add(key)
    return above, close


def test_two_replicas_share_the_work_the_candidates_a_withdrawal_and_a_switch(
    env: dict[str, str], engine: Any, tmp_path: Path, redis_client: redis.Redis, stream: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    indexed_by: Counter[tuple[int, str]] = Counter()
    index_entities = candidates.index_entities

    def recording(sim: Similarity, entities: Sequence[EntityUpserted], known: Any = None) -> Any:
        indexed_by.update((id(sim), e.id) for e in entities)
        return index_entities(sim, entities, known)

    monkeypatch.setattr(candidates, "index_entities", recording)
    monkeypatch.setattr(replicas, "load_embedder", lambda *_args, **_kw: EMBEDDER)  # no second model to load
    with two_replicas(tmp_path) as (one, two, graph):
        for start in range(0, len(ENTITIES), 3):  # entries of three: the two members take turns
            append(redis_client, stream, *ENTITIES[start : start + 3])
        eventually(lambda: settled(one, graph), timeout=90)

        # Every entity indexed once, by one replica or the other, and both did some of the work.
        assert sorted(e for _, e in indexed_by) == sorted(e.id for e in ENTITIES)
        assert set(indexed_by.values()) == {1} and {who for who, _ in indexed_by} == {id(one), id(two)}
        assert one.served().index.count() == len(ENTITIES)
        expected, close = from_scratch(MINILM, set())
        assert len(expected) > 30
        found = proposed(graph)
        assert found - close == expected - close

        # An edge added while both run withdraws its pair, whichever replica reads it.
        a, b = sorted(expected - close)[0]
        append(redis_client, stream, EdgeAdded(source=a, target=b, type="supports"))
        eventually(lambda: settled(one, graph) and (a, b) not in proposed(graph), timeout=60)
        withdrawn = graph.get("/v1/candidates", params={"status": "withdrawn", "entity": a}).json()["items"]
        assert any((c["a"]["id"], c["b"]["id"]) == (a, b) for c in withdrawn)
        assert proposed(graph) - close == expected - close - {(a, b)}

        # A re-embed started on one replica: the other opens its collection within a second.
        job = reembed.start(one, E5_SMALL.name, review=False)
        began = time.monotonic()
        eventually(lambda: two.target is not None and two.target.model.name == E5_SMALL.name, timeout=5)
        assert time.monotonic() - began <= 1.0
        # Its batches reach either replica.
        spec = one.store.job(job)
        assert spec is not None
        for n in range(spec["batches"]):
            batch = one.store.batch(job, n)
            entities = _entities(graph, batch["after"], batch["last"])
            items = [Indexed(e["id"], e["type"], e["name"], e["description"], E5_SMALL.text_of(e)) for e in entities]
            vectors = EMBEDDER.embed([i.text for i in items])
            assert reembed.accept_batch((one, two)[n % 2], job, n, items, np.asarray(vectors, dtype=np.float32))
        # The other replica finishes it and switches: the first follows within a second.
        reembed.finish(two, job)
        switched = time.monotonic()
        eventually(lambda: one.model.name == E5_SMALL.name, timeout=5)
        assert time.monotonic() - switched <= 1.0
        assert one.target is None and one.previous is not None and one.previous.model.name == MINILM.name
        for sim in (one, two):  # both answer from the new collection
            index = sim.served().index
            assert isinstance(index, QdrantClientIndex) and index.collection.startswith(f"entities__{E5_SMALL.key}")
            assert index.count() == len(ENTITIES)
        # An entity written now reaches the new collection through whichever replica reads it.
        late = EntityUpserted(id="claim:sleep-late", type="claim", name="late", text="Sleep strengthens memory.")
        append(redis_client, stream, late)
        eventually(lambda: two.served().index.lookup(late.id) is not None, timeout=60)
        assert one.store.job(job)["status"] == "done"  # type: ignore[index]


def test_replicas_starting_together_rewind_the_group_once(
    env: dict[str, str], tmp_path: Path, redis_client: redis.Redis, stream: str
) -> None:
    """An index found empty after the group wrote to one was lost: one replica rewinds, the other, starting
    at the same moment or a little later, does not rewind again; once the index fills, the mark goes.
    Before any write, an empty index behind a group that has read is another replica's first batch."""
    client = Shared(QdrantClient(path=str(tmp_path / "qdrant")))
    lock = threading.RLock()

    def graph_answer(request: httpx.Request) -> httpx.Response:  # the graph, as far as a start asks it
        if request.url.path == "/v1/stats":
            return httpx.Response(200, json={"active_entities": 3})
        return httpx.Response(404, json={"detail": "no model switch recorded"})

    stats = httpx.Client(base_url="http://graph", transport=httpx.MockTransport(graph_answer))

    def replica(n: int) -> Similarity:
        return similarity_bootstrap(
            SimilaritySettings(similarity_consumer=f"replica-{n}", index_dir=tmp_path / f"unused-{n}"),
            embedder=EMBEDDER, graph=stats, index_lock=lock,
            opener=lambda spec: QdrantClientIndex(client, spec.key, spec.dimension, server=False),
        )  # fmt: skip

    one, two = replica(1), replica(2)
    try:
        append(redis_client, stream, *ENTITIES[:3])
        one.consumer.ensure_group()
        assert one.consumer.read_new(10, block_ms=10)  # read, not yet written: another replica's first batch
        assert not consumer.rebuild_if_lost(two) and one.consumer.has_read()
        one.consumer.ack([entry for entry, _ in one.consumer.client.xrange(stream)])  # type: ignore[union-attr]
        one.store.mark_indexed()  # the entries were written; then the index was lost
        results: list[bool] = []
        barrier = threading.Barrier(2)

        def start(sim: Similarity) -> None:
            barrier.wait()
            results.append(consumer.rebuild_if_lost(sim))

        threads = [threading.Thread(target=start, args=(sim,)) for sim in (one, two)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(results) == [False, True]
        assert not one.consumer.has_read()  # rewound: the entries are read again
        assert one.store.rewound(MINILM.key)
        # A replica starting a little later finds the group reading again and the index not yet filled:
        # the mark, not the group's position, tells it the loss is being rebuilt.
        assert one.consumer.read_new(1, block_ms=10) and one.consumer.has_read()
        assert not consumer.rebuild_if_lost(two) and one.consumer.has_read()
        # The index fills; the next start takes the mark away, so a later loss is rebuilt too.
        vector = EMBEDDER.embed(["x"])
        one.served().index.upsert([Indexed("claim:x", "claim", "x", text="x")], vector)
        assert not consumer.rebuild_if_lost(two) and not two.store.rewound(MINILM.key)
    finally:
        for sim in (one, two):
            sim.graph = httpx.Client()
            sim.close()
        client.client.close()


def test_with_a_qdrant_server_index_calls_take_no_process_wide_lock(env: dict[str, str], tmp_path: Path) -> None:
    index = QdrantClientIndex(Shared(QdrantClient(":memory:")), MINILM.key, MINILM.dimension, server=False)
    served = similarity_bootstrap(SimilaritySettings(qdrant_url="http://qdrant:6333", index_dir=tmp_path),
                                  embedder=EMBEDDER, index=index, graph=httpx.Client())  # fmt: skip
    embedded = similarity_bootstrap(SimilaritySettings(index_dir=tmp_path), embedder=EMBEDDER, index=index,
                                    graph=httpx.Client())  # fmt: skip
    try:
        # Two threads inside the index at once: only possible where no lock is held across index calls.
        inside = threading.Barrier(2, timeout=1)

        def enter(sim: Similarity) -> bool:
            with sim.index_lock:
                try:
                    inside.wait()
                    return True
                except threading.BrokenBarrierError:
                    return False

        def both(sim: Similarity) -> list[bool]:
            inside.reset()
            out: list[bool] = []
            threads = [threading.Thread(target=lambda: out.append(enter(sim))) for _ in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(10)
            return out

        assert both(served) == [True, True]
        assert not any(both(embedded))
    finally:
        served.close()
        embedded.close()
