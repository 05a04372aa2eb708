"""A similarity process that is SIGKILLed at one step of a re-embed's switch (the crash tests in
tests/integration/test_reembed_race.py run it as a child process): it opens a job with one batch done,
then switches, and the step named on the command line kills the process instead of running.

Usage: python -m tests.crash_switch {before-alias|before-finish|before-follow} INDEX_DIR
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import httpx

from services.similarity.adapters.edge_index import EdgeIndex
from services.similarity.adapters.embedder import MiniLMOnnx
from services.similarity.adapters.index import Indexed
from services.similarity.bootstrap import Served, bootstrap
from services.similarity.domain.models import E5_SMALL, MINILM
from services.similarity.service_layer import follow, reembed
from services.similarity.settings import SimilaritySettings


def die(*_: Any, **__: Any) -> None:
    os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no flush: what a kill -9 leaves


def main(step: str, index_dir: Path) -> None:
    embedder = MiniLMOnnx()  # stands in for the new model's encoder: the point is the bookkeeping
    sim = bootstrap(SimilaritySettings(index_dir=index_dir), embedder=embedder,
                    graph=httpx.Client(base_url="http://127.0.0.1:9"))  # fmt: skip
    sim.target = Served(E5_SMALL, embedder, EdgeIndex(index_dir, E5_SMALL.key, E5_SMALL.dimension))
    job = sim.store.create(E5_SMALL.name, MINILM.name, False, [{"after": "", "last": "claim:1", "count": 1}])
    item = Indexed(id="claim:1", type="claim", name="One", text="One entity, re-embedded.")
    assert reembed.accept_batch(sim, job, 0, [item], embedder.embed([item.text]))
    print(job, flush=True)
    if step == "before-alias":
        reembed.set_alias = die  # type: ignore[assignment]
    elif step == "before-finish":
        sim.store.finish = die  # type: ignore[method-assign]
    elif step == "before-follow":
        follow.start = die  # type: ignore[assignment]
    reembed.flip(sim, job)
    raise SystemExit(f"not killed at {step}")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
