"""While a re-embed runs, a change the consumer wrote to the new collection wins over a batch that read the
entity earlier (real Redis; the embedded index; no graph needed)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from platograph.contracts import EntityUpserted
from services.similarity import reembed, service
from services.similarity.adapters.index import EdgeIndex, Indexed
from services.similarity.bootstrap import Served
from services.similarity.bootstrap import bootstrap as similarity_bootstrap
from services.similarity.domain.models import E5_SMALL, MINILM
from services.similarity.settings import SimilaritySettings
from tests.integration.test_gateway import EMBEDDER

pytestmark = pytest.mark.integration


def test_a_batch_read_before_a_change_does_not_overwrite_it(env: dict[str, str], tmp_path: Path) -> None:
    sim = similarity_bootstrap(SimilaritySettings(index_dir=tmp_path), embedder=EMBEDDER,
                               graph=httpx.Client(base_url="http://127.0.0.1:9"))  # fmt: skip
    try:
        # A job towards another collection (run with the same encoder here: the point is the bookkeeping).
        sim.target = Served(E5_SMALL, EMBEDDER, EdgeIndex(tmp_path, E5_SMALL.key, E5_SMALL.dimension))
        job = sim.store.create(E5_SMALL.name, MINILM.name, False, [{"after": "", "last": "claim:x", "count": 1}])
        old = Indexed(id="claim:x", type="claim", name="X", text="The old text.")
        new = EntityUpserted(id="claim:x", type="claim", name="X", text="The new text, written meanwhile.")
        service.index_entities(sim, [new])  # the consumer: both collections get the change
        assert reembed.accept_batch(sim, job, 0, [old], EMBEDDER.embed([old.text]).tolist())  # counted once…
        found = sim.target.index.lookup("claim:x")
        assert found is not None and found[0].text == E5_SMALL.text_of(new.model_dump())  # …but not written
        assert not reembed.accept_batch(
            sim, job, 0, [old], EMBEDDER.embed([old.text]).tolist()
        )  # redone: not recounted
        assert sim.store.job(job)["done"] == 1  # type: ignore[index]
    finally:
        sim.close()
