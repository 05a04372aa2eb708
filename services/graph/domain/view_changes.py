"""Which neighborhood views a batch of events changes, as far as the events themselves say (no I/O).

A view shows its entity, its edges and the neighbours at their ends, its source paper, its candidates and
their partners, and (hypotheses and claims) an evidence meter over the same edges and candidates. So an
edge or a candidate changes the views of its two ends; an entity's own row changes its view and every view
that shows it, which only the read model can list (adapters/view_changes.py). Merges move edges between
views and are rare: they change everything, as does a batch touching more rows than are worth looking up.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from platograph.contracts import (
    CandidateAccepted,
    CandidateProposed,
    CandidateRejected,
    CandidateUnrejected,
    CandidateWithdrawn,
    EdgeAdded,
    EdgeRemoved,
    EntityMerged,
    EntityRetracted,
    EntityUnmerged,
    EntityUpserted,
)
from services.graph.domain.projection import PositionedEvent

#: Entities whose rows changed that are looked up for the views showing them; more in one batch (a bulk
#: import) changes everything: one lookup of thousands of rows would cost more than the views kept save.
SHOWN_AT_MOST = 256

_PAIRS = (CandidateProposed, CandidateWithdrawn, CandidateAccepted, CandidateRejected, CandidateUnrejected)


@dataclass(frozen=True)
class Touched:
    views: frozenset[str] = frozenset()  # entities whose own view changed: their edges, their candidates
    shown: frozenset[str] = frozenset()  # entities whose row changed: every view showing them changed too
    everything: bool = False


EVERYTHING = Touched(everything=True)


def touched(events: Iterable[PositionedEvent]) -> Touched:
    views: set[str] = set()
    shown: set[str] = set()
    for event in events:
        payload = event.typed()
        if isinstance(payload, EntityUpserted | EntityRetracted):
            shown.add(payload.id)
        elif isinstance(payload, EdgeAdded | EdgeRemoved):
            views.update((payload.source, payload.target))
        elif isinstance(payload, _PAIRS):
            views.update((payload.a, payload.b))
        elif isinstance(payload, EntityMerged | EntityUnmerged):
            return EVERYTHING
    if len(shown) > SHOWN_AT_MOST:
        return EVERYTHING
    return Touched(frozenset(views), frozenset(shown))
