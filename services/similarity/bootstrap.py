"""The one place that wires the similarity service's dependencies."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_fixed

from platograph import internal, ontology
from platograph.background import LoopState
from platograph.redis_clients import sync_redis
from platograph.stream import StreamConsumer
from services.similarity.adapters.edge_build import Hnsw
from services.similarity.adapters.edge_index import EdgeIndex
from services.similarity.adapters.embedder import Embedder, load_embedder
from services.similarity.adapters.index import VectorIndex
from services.similarity.adapters.qdrant_client_index import Layout, QdrantClientIndex
from services.similarity.adapters.reembed_store import ReembedStore
from services.similarity.adapters.threshold_store import ThresholdStore
from services.similarity.domain.models import REGISTRY, ModelSpec
from services.similarity.domain.progress import Progress
from services.similarity.domain.thresholds import pair_key
from services.similarity.settings import SimilaritySettings

log = logging.getLogger(__name__)


@dataclass
class Served:
    """A model with its embedder and its collection."""

    model: ModelSpec
    embedder: Embedder
    index: VectorIndex


@dataclass
class Similarity:
    settings: SimilaritySettings
    model: ModelSpec
    embedder: Embedder
    index: VectorIndex
    consumer: StreamConsumer
    graph: httpx.Client
    ontology: ontology.Ontology
    store: ReembedStore
    thresholds: ThresholdStore
    # Opens a model's collection: open_index over these settings, unless a test shares one client.
    opener: Callable[[ModelSpec], VectorIndex]
    # Held while the answering model changes (model, embedder, index, target, previous), never across an
    # index call: readers take a snapshot (`served`) and see the old model and index, or the new ones.
    lock: threading.RLock = field(default_factory=threading.RLock)
    # Held by whatever changes which models this replica serves: a re-embed step taken here, or following
    # one another replica took (service_layer/replicas.py). Taken before the other two.
    changing: threading.RLock = field(default_factory=threading.RLock)
    # Held across index calls where the index is not thread-safe (qdrant-edge, qdrant-client's local
    # mode): HTTP threads and the consumer share it. A Qdrant server takes concurrent calls: no lock then.
    # Taken before `lock` where both are.
    index_lock: AbstractContextManager[object] = field(default_factory=threading.RLock)
    target: Served | None = None  # while a re-embed runs: the new model, written beside the active one
    previous: Served | None = None  # after a switch: the old model, kept for a rollback
    # The active model's learned thresholds by type pair (`a|b`), as Redis had them at the last sync.
    learned: dict[str, float] = field(default_factory=dict)
    # Runs the passes that make candidates follow a learned threshold, one at a time (service_layer/learning).
    follower: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="threshold-follow")
    )
    indexed_once: bool = False  # this process has marked that the group wrote to an index (consumer.rebuild_if_lost)
    loop: LoopState = field(default_factory=lambda: LoopState("similarity-consumer"))
    progress: Progress = field(default_factory=Progress)

    def served(self) -> Served:
        with self.lock:
            return Served(self.model, self.embedder, self.index)

    def switch(self, to: Served) -> Served:
        """Make another model the one that answers; returns the one that did."""
        with self.lock:
            before = Served(self.model, self.embedder, self.index)
            self.model, self.embedder, self.index = to.model, to.embedder, to.index
            return before

    def pair_thresholds(self) -> dict[str, float]:
        """Per type pair: learned from decisions, unless configured (PLATOGRAPH_THRESHOLDS wins)."""
        configured = {pair_key(*key.split("|", 1)): value for key, value in self.settings.thresholds.items()}
        return self.learned | configured

    @property
    def threshold(self) -> float:
        """The default threshold: configured, else the model's own."""
        configured = self.settings.similarity_threshold
        return self.model.default_threshold if configured is None else configured

    def close(self) -> None:
        self.follower.shutdown(wait=False, cancel_futures=True)
        self.index.close()
        for other in (self.target, self.previous):
            if other is not None:
                other.index.close()
        self.graph.close()
        self.consumer.client.close()


def open_index(settings: SimilaritySettings, model: ModelSpec) -> VectorIndex:
    """A Qdrant server when QDRANT_URL is set, else the embedded qdrant-edge shard in index_dir."""
    if settings.qdrant_url:
        from qdrant_client import QdrantClient

        layout = Layout(
            shards=settings.qdrant_shards,
            replication_factor=settings.qdrant_replication_factor,
            write_consistency=settings.qdrant_write_consistency,
            on_disk=settings.qdrant_on_disk,
            quantization=settings.qdrant_quantization,
            hnsw_m=settings.qdrant_hnsw_m,
            hnsw_ef_construct=settings.qdrant_hnsw_ef_construct,
        )
        client = QdrantClient(url=settings.qdrant_url, api_key=settings.qdrant_api_key)
        return QdrantClientIndex(client, model.key, model.dimension, layout=layout)
    storage = {"turbo8": "Turbo8", "float32": None}[settings.index_storage]
    hnsw = Hnsw(m=settings.qdrant_hnsw_m, ef_construct=settings.qdrant_hnsw_ef_construct, ef=settings.index_hnsw_ef,
                threads=settings.index_build_threads)  # fmt: skip
    return EdgeIndex(settings.index_dir, model.key, model.dimension, dense_storage=storage, hnsw=hnsw)


def active_model(store: ReembedStore, graph: httpx.Client, configured: str) -> str:
    """The model readers use: the alias a finished re-embed set (Redis); when Redis lost it, the journal's
    last model.switched, put back into Redis; the configured model when no switch ever happened."""
    alias = store.alias()
    if "active" in alias:
        return alias["active"]
    try:
        for attempt in Retrying(stop=stop_after_attempt(3), wait=wait_fixed(0.1), reraise=True,
                                retry=retry_if_exception_type(httpx.TransportError)):  # fmt: skip
            with attempt:
                response = graph.get("/v1/model-alias")
    except httpx.TransportError as exc:
        log.error("no model alias in Redis and the graph is away (%s): answering with the configured %s until "
                  "a restart finds it", exc, configured)  # fmt: skip
        return configured
    if response.status_code != 200:  # 404: no switch was ever recorded
        return configured
    found = response.json()
    store.set_alias(found["active"], found.get("previous"))
    log.warning("model alias restored from the journal: %s (previous %s)", found["active"], found.get("previous"))
    return str(found["active"])


def bootstrap(
    settings: SimilaritySettings | None = None,
    index: VectorIndex | None = None,
    embedder: Embedder | None = None,
    graph: httpx.Client | None = None,
    opener: Callable[[ModelSpec], VectorIndex] | None = None,
    index_lock: AbstractContextManager[object] | None = None,
) -> Similarity:
    """Real adapters unless others are passed in (tests share one loaded model, call graph in-process, or
    run two replicas over one qdrant-client index with its `opener` and one `index_lock`)."""
    settings = settings or SimilaritySettings()
    opener = opener or (lambda spec: open_index(settings, spec))
    if index_lock is None:
        index_lock = nullcontext() if settings.qdrant_url else threading.RLock()
    client = sync_redis(settings.redis_url)
    store = ReembedStore(client, settings.stream)
    graph = graph or httpx.Client(base_url=settings.graph_url, timeout=30,
                                  headers=internal.headers(settings.internal_token))  # fmt: skip
    name = active_model(store, graph, settings.model)
    model = REGISTRY.get(name)
    if model is None:
        raise ValueError(f"PLATOGRAPH_MODEL: unknown model {name!r}; known: {', '.join(REGISTRY)}")
    consumer = StreamConsumer.member(
        client, settings, group=settings.similarity_group, consumer=settings.similarity_consumer
    )
    return Similarity(
        settings=settings,
        model=model,
        embedder=embedder or load_embedder(model.runtime, model.max_tokens),
        index=index or opener(model),
        consumer=consumer,
        graph=graph,
        ontology=ontology.load(settings.ontology),
        store=store,
        thresholds=ThresholdStore(client, settings.stream),
        opener=opener,
        index_lock=index_lock,
    )
