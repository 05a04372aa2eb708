"""A Qdrant collection is made with the configured layout, and replicas starting together do not trip over
each other's collection or alias (qdrant-client's local mode: no Qdrant server runs on these machines)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from qdrant_client import QdrantClient

from services.similarity.adapters.index import ALIAS
from services.similarity.adapters.qdrant_client_index import Layout, QdrantClientIndex
from services.similarity.settings import SimilaritySettings

pytestmark = pytest.mark.integration


class Late:
    """A client that saw neither the collection nor the alias: another replica made both in between."""

    def __init__(self, client: QdrantClient) -> None:
        self.client = client
        self.created: list[dict[str, Any]] = []
        self.alias_checks = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def collection_exists(self, name: str) -> bool:
        return False if not self.created else bool(self.client.collection_exists(name))

    def create_collection(self, name: str, **options: Any) -> bool:
        self.created.append(options)
        return bool(self.client.create_collection(name, **options))  # raises: it exists already

    def get_aliases(self) -> Any:
        self.alias_checks += 1
        if self.alias_checks == 1:
            return type("Answer", (), {"aliases": []})()
        return self.client.get_aliases()


def test_the_collection_gets_the_configured_layout() -> None:
    client = QdrantClient(":memory:")
    late = Late(QdrantClient(":memory:"))
    layout = Layout(shards=6, replication_factor=2, write_consistency=2, on_disk=True, quantization="int8",
                    hnsw_m=32, hnsw_ef_construct=200)  # fmt: skip
    index = QdrantClientIndex(late, "m-v1", 8, server=False, layout=layout)
    (options,) = late.created
    assert (options["shard_number"], options["replication_factor"], options["write_consistency_factor"]) == (6, 2, 2)
    assert options["on_disk_payload"] is True and options["quantization_config"].scalar.type == "int8"
    assert (options["hnsw_config"].m, options["hnsw_config"].ef_construct) == (32, 200)
    stored = late.client.get_collection(index.collection).config.params.vectors
    assert stored["dense"].on_disk is True  # local mode keeps this one
    client.close()


def test_replicas_starting_together_each_find_the_collection_and_the_alias() -> None:
    client = QdrantClient(":memory:")
    first = QdrantClientIndex(client, "m-v1", 8, server=False)
    late = Late(client)
    second = QdrantClientIndex(late, "m-v1", 8, server=False)  # its creation fails: the collection exists
    assert len(late.created) == 1
    assert second.collection == first.collection
    assert [a.alias_name for a in client.get_aliases().aliases] == [ALIAS]


def test_write_consistency_cannot_exceed_the_replication_factor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("PLATOGRAPH_QDRANT_REPLICATION_FACTOR", "2")
    monkeypatch.setenv("PLATOGRAPH_QDRANT_WRITE_CONSISTENCY", "3")
    with pytest.raises(ValidationError, match="PLATOGRAPH_QDRANT_WRITE_CONSISTENCY"):
        SimilaritySettings()
