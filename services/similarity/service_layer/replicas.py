"""Several similarity replicas over one Qdrant server: what they share, and how each follows the others.

Which model answers (the alias: `active`, and `previous` kept for a rollback) and which one a running
re-embed builds (its job's `model`) live in Redis (ReembedStore), where any replica may change them: the
one that got the HTTP call starting, finishing, cancelling or rolling back a job. Every replica reads them
each SYNC_S (`run`) and opens, switches to or lets go of collections to match, so a switch made by one is
followed by all within a second, and a re-embed batch can reach any replica (`target_of` syncs at once when
a batch names a job this replica has not seen yet).

A replica's own changes and its following of others' hold `Similarity.changing`, so neither sees the other
half done (a job recorded in Redis but its collection not yet open here, say).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

from services.similarity.adapters.embedder import load_embedder
from services.similarity.bootstrap import Served, Similarity
from services.similarity.domain.models import REGISTRY, ModelSpec
from services.similarity.service_layer import learning

log = logging.getLogger(__name__)
SYNC_S = 0.5
BUILDING = ("running", "ready")
P = ParamSpec("P")
R = TypeVar("R")


def changing(step: Callable[Concatenate[Similarity, P], R]) -> Callable[Concatenate[Similarity, P], R]:
    """A step that changes which models this replica serves: it holds `Similarity.changing` throughout."""

    def held(sim: Similarity, *args: P.args, **kwargs: P.kwargs) -> R:
        with sim.changing:
            return step(sim, *args, **kwargs)

    return functools.update_wrapper(held, step)  # type: ignore[return-value]


def serve_model(sim: Similarity, model: ModelSpec) -> Served:
    """The model with its collection: the one this replica already holds for a rollback or a build if it
    is that model (taken from there), else opened."""
    with sim.lock:
        if sim.previous is not None and sim.previous.model.name == model.name:
            found, sim.previous = sim.previous, None
            return found
        if sim.target is not None and sim.target.model.name == model.name:
            found, sim.target = sim.target, None
            return found
    return Served(model, load_embedder(model.runtime, model.max_tokens), sim.opener(model))


def building(sim: Similarity) -> str | None:
    """The model a running (or review-waiting) re-embed builds, as Redis says; None when none runs."""
    job_id = sim.store.current()
    job = sim.store.job(job_id) if job_id else None
    if job is None or job["status"] not in BUILDING or job["model"] not in REGISTRY:
        return None
    return str(job["model"])


def sync(sim: Similarity) -> bool:
    """Match this replica's models to what Redis says; returns whether anything changed here."""
    with sim.changing:
        alias = sim.store.alias()
        changed = False
        active = alias.get("active")
        if active and active != sim.model.name and active in REGISTRY:
            _switch(sim, REGISTRY[active])
            changed = True
        with sim.lock:
            previous = sim.previous
        if previous is not None and alias.get("previous") != previous.model.name:
            with sim.lock:
                sim.previous = None  # dropped, or replaced, by another replica: its collection is not ours
            changed = True
        model = building(sim)
        with sim.lock:
            target = sim.target
        if model is not None and (target is None or target.model.name != model):
            opened = serve_model(sim, REGISTRY[model])
            with sim.lock:
                sim.target = opened
            log.info("following another replica: re-embed towards %s, its collection opened here", model)
            changed = True
        elif model is None and target is not None:
            with sim.lock:
                sim.target = None  # finished, cancelled or failed elsewhere
            changed = True
        learning.refresh(sim)  # thresholds another replica learned
        return changed


def _switch(sim: Similarity, model: ModelSpec) -> None:
    to = serve_model(sim, model)
    with sim.index_lock, sim.lock:
        old = sim.switch(to)
        sim.previous = old
    log.info("following another replica: %s answers now (was %s)", model.name, old.model.name)


def target_of(sim: Similarity, model: str) -> Served | None:
    """This replica's collection for a re-embed building `model`, following Redis at once if another
    replica started that job since the last sync."""
    with sim.lock:
        target = sim.target
    if target is None or target.model.name != model:
        sync(sim)
        with sim.lock:
            target = sim.target
    return target if target is not None and target.model.name == model else None


def run(sim: Similarity, stop: threading.Event) -> None:
    """Follow the other replicas until stopped; an error (Redis away) is logged and tried again."""
    while not stop.wait(SYNC_S):
        try:
            sync(sim)
        except Exception as exc:  # the next turn tries again; nothing here is lost by waiting
            log.warning("could not follow the shared model state: %s", exc)
