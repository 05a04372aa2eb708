"""Nearest neighbours in sublinear time for the embedded index: an HNSW graph built in the background.

A shard starts as one plain segment that every search scans (O(n): 4.4 ms at 100,000 points here). Once
it holds `index_build_min_points` points, and again each time a share (`index_build_growth`) of the
points it had at the last build has been written (or, once writes have gone quiet, when at least
`index_build_quiet_points` have: a corpus at rest would otherwise keep scanning its tail), a child
process builds an HNSW copy (adapters/edge_build.py) while this one goes on answering and writing:
writes start being tracked, the shard is copied out a page at a time (qdrant-edge's shard reads beside
searches and writes), the child builds, the built shard is opened without the lock, what was written
meanwhile is replayed into it in pages, and one short hold of the lock replays the last writes and swaps
it in. Points written after a build sit in a small plain segment beside the graph.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from services.similarity.adapters.edge_index import EdgeIndex
from services.similarity.bootstrap import Similarity

log = logging.getLogger(__name__)
REPLAY_PAGE = 500  # writes replayed a hold of the lock before the swap


@dataclass(frozen=True)
class Built:
    points: int
    seconds: float
    longest_hold_s: float  # the longest the build held the index lock (replays and the swap)


def run(sim: Similarity, stop: threading.Event, every_s: float) -> None:
    """The background loop: build when due (checked every `every_s`, PLATOGRAPH_INDEX_BUILD_CHECK_S), until `stop`."""
    while not stop.wait(every_s):
        try:
            build_if_due(sim, stop)
        except Exception:  # a failed build leaves the shard as it was; the next check tries again
            log.exception("index build failed")


def build_if_due(sim: Similarity, stop: threading.Event, force: bool = False) -> Built | None:
    """Build and swap in the answering index's HNSW if it is due (or `force`); what was built, or None."""
    index = sim.served().index
    if not isinstance(index, EdgeIndex) or not sim.settings.index_hnsw:
        return None  # a Qdrant server builds its own graphs
    settings = sim.settings
    with sim.index_lock:
        due = index.build_due(settings.index_build_min_points, settings.index_build_growth,
                              settings.index_build_quiet_points, settings.index_build_quiet_s)  # fmt: skip
        if not force and not due:
            return None
    return build(index, sim.index_lock, stop, answering=lambda: sim.served().index is index)


def build(
    index: EdgeIndex, lock: AbstractContextManager[object], stop: threading.Event, answering: Callable[[], bool]
) -> Built | None:
    """Build `index`'s graph and swap it in, taking `lock` for each step that touches the open shard;
    None if the build failed, `stop` was set, or `answering()` turned false (the model was switched)."""
    started = time.monotonic()
    child = index.start_build()
    swapped, replaced, holds = False, None, [0.0]
    try:
        with lock:
            index.track_writes()
        page, offset = index.export(None)  # without the lock: the pages are read beside searches and writes
        while True:
            if stop.is_set() or not child.send(page):
                return None
            if offset is None:
                break
            page, offset = index.export(offset)
        if not child.finish(stop):
            return None
        built = index.open_built(child)  # not under the lock: it reads the whole shard
        try:
            while not stop.is_set():
                with lock:
                    held = time.monotonic()
                    if not answering():
                        return None  # a re-embed switched models meanwhile: this shard no longer answers
                    if index.replay(built, REPLAY_PAGE) <= REPLAY_PAGE:
                        replaced = index.swap(built, child)
                        swapped = True
                    holds.append(time.monotonic() - held)
                    if swapped:
                        break
        finally:
            if not swapped:
                built.close()
    finally:
        if not swapped:
            with lock:
                index.abandon_build()
        child.close(keep=swapped)
    if replaced is None:
        return None
    replaced()  # close the old shard and remove its directory
    done = Built(index.built_points, time.monotonic() - started, max(holds))
    log.info("index graph built: %d points in %.1f s (lock held at most %.3f s)", done.points, done.seconds,
             done.longest_hold_s)  # fmt: skip
    return done
