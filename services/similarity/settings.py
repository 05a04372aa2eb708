"""Similarity service settings."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, model_validator

from platograph.settings import CoreSettings


class SimilaritySettings(CoreSettings):
    graph_url: str = "http://127.0.0.1:8002"
    qdrant_url: str | None = Field(None, validation_alias=AliasChoices("QDRANT_URL", "PLATOGRAPH_QDRANT_URL"))
    # A Qdrant server's API key (from PLATOGRAPH_SECRETS_DIR like the other secrets).
    qdrant_api_key: str | None = Field(
        None, validation_alias=AliasChoices("QDRANT_API_KEY", "PLATOGRAPH_QDRANT_API_KEY")
    )
    # How a new collection is laid out on a Qdrant cluster (services/similarity/adapters/qdrant_client_index.py).
    qdrant_shards: int = Field(1, ge=1, le=1000)
    qdrant_replication_factor: int = Field(1, ge=1, le=10)
    qdrant_write_consistency: int = Field(1, ge=1, le=10)
    qdrant_on_disk: bool = False  # vectors and payloads on disk (memory-mapped) instead of in RAM
    qdrant_quantization: Literal["none", "int8"] = "none"  # int8: scalar quantization kept in RAM
    qdrant_hnsw_m: int = Field(16, ge=4, le=128)
    qdrant_hnsw_ef_construct: int = Field(100, ge=4, le=1000)
    index_dir: Path = Path(".platograph/index")
    # How the embedded index stores dense vectors: turbo8 scans ~4.8x faster, scores within 0.0013 of cosine.
    index_storage: Literal["turbo8", "float32"] = "turbo8"
    # The embedded index's HNSW graph, built in a child process once the shard holds index_build_min_points
    # and again after index_build_growth times as many writes (service_layer/index_builds.py); m and
    # ef_construct are the PLATOGRAPH_QDRANT_HNSW_* ones. Off: every search scans every vector.
    index_hnsw: bool = True
    index_build_min_points: int = Field(50_000, ge=1)
    index_build_growth: float = Field(0.2, gt=0)
    # A corpus that stops growing short of the next index_build_growth would keep its tail (the points written
    # since the last build, which every search scans) for good: once no write has come for index_build_quiet_s
    # and the tail holds index_build_quiet_points, a graph is built anyway. 10,000 points scan in ~0.4 ms.
    index_build_quiet_s: float = Field(300.0, gt=0)
    index_build_quiet_points: int = Field(10_000, ge=1)
    index_build_threads: int = Field(1, ge=0, le=64)  # 0: every core
    index_hnsw_ef: int = Field(256, ge=1, le=4096)
    index_build_check_s: float = Field(30.0, gt=0)  # how often the similarity process checks whether one is due
    model: str = "all-minilm-l6-v2-int8"
    # None: the model's own default (thresholds are per model; see docs/similarity.md).
    similarity_threshold: float | None = Field(None, ge=-1, le=1)
    # Per type pair, e.g. PLATOGRAPH_THRESHOLDS='{"claim|paper": 0.55}' (either order).
    thresholds: dict[str, float] = Field(default_factory=dict)
    # Thresholds learned from people's decisions, per type pair (services/similarity/domain/thresholds.py):
    # the lowest cosine at which this share of the decisions at or above it were right, once a type pair
    # has this many decisions; a pair in PLATOGRAPH_THRESHOLDS keeps its configured threshold.
    learn_thresholds: bool = True
    threshold_target_precision: float = Field(0.8, gt=0, le=1)
    threshold_min_decisions: int = Field(30, ge=1)
    duplicate_threshold: float = Field(0.93, ge=-1, le=1)
    candidates_per_entity: int = Field(10, ge=1, le=200)
    similarity_group: str = "similarity"
    similarity_consumer: str = Field(default_factory=lambda: f"similarity-{socket.gethostname()}-{os.getpid()}")
    similarity_batch_size: int = Field(20, ge=1)
    # Entities per re-embedding batch job; None: the target model's own size (ModelSpec.reembed_batch).
    reembed_batch_size: int | None = Field(None, ge=1, le=500)
    consume: bool = True  # run the stream consumer in this process (the one that owns an embedded index)

    @model_validator(mode="after")
    def _consistency(self) -> SimilaritySettings:
        if self.qdrant_write_consistency > self.qdrant_replication_factor:
            raise ValueError("PLATOGRAPH_QDRANT_WRITE_CONSISTENCY cannot exceed PLATOGRAPH_QDRANT_REPLICATION_FACTOR")
        return self
