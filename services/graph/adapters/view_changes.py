"""Announcing, after each commit, whose neighborhood views changed (platograph.view_changes), for the
gateways that keep finished views.

The events name the views they change directly (domain/view_changes.py); the views that show a changed
entity are its rows' mirror images in `adjacency` (its neighbours, the entities whose source paper it is,
those its evidence meter counts), its candidates' partners, and the neighbours of entities merged into it.
The view of an entity merged into another is its survivor's too. A batch whose views are more than
VIEWS_AT_MOST announces that everything changed: gateways then drop all they keep.

Announced after the commit, and before the projector acks: a projector that dies between the two leaves its
entries unacknowledged, and their redelivery, whose events the journal already holds, announces again.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis
from sqlalchemy import Engine, text

from platograph import view_changes
from platograph.contracts import ViewsChanged
from services.graph.domain.projection import PositionedEvent
from services.graph.domain.view_changes import Touched, touched

VIEWS_AT_MOST = 1000

SHOWING = text("""
WITH shown AS (SELECT unnest(CAST(:shown AS text[])) AS id),
near AS (
    SELECT unnest(CAST(:views AS text[])) AS id
    UNION SELECT id FROM shown
    UNION SELECT a.n FROM adjacency a JOIN shown s ON a.x = s.id
    UNION SELECT c.b FROM candidates c JOIN shown s ON c.a = s.id
    UNION SELECT c.a FROM candidates c JOIN shown s ON c.b = s.id
    UNION SELECT a.n FROM entities m JOIN shown s ON m.merged_into = s.id JOIN adjacency a ON a.x = m.id
)
SELECT id FROM near
UNION SELECT e.merged_into FROM entities e JOIN near ON e.id = near.id WHERE e.merged_into IS NOT NULL
LIMIT :at_most
""")


def views_changed(engine: Engine, changes: Touched) -> ViewsChanged:
    if changes.everything:
        return ViewsChanged(everything=True)
    if not changes.views and not changes.shown:
        return ViewsChanged()
    with engine.connect() as conn:
        ids = conn.execute(
            SHOWING, {"views": sorted(changes.views), "shown": sorted(changes.shown), "at_most": VIEWS_AT_MOST + 1}
        ).scalars().all()  # fmt: skip
    if len(ids) > VIEWS_AT_MOST:
        return ViewsChanged(everything=True)
    return ViewsChanged(ids=tuple(sorted(ids)))


class Announcer:
    """Announces the views a batch of projected events changed (nothing when it changed none)."""

    def __init__(self, engine: Engine, client: redis.Redis, stream: str) -> None:
        self.engine, self.client, self.stream = engine, client, stream

    def __call__(self, events: Sequence[PositionedEvent]) -> None:
        message = views_changed(self.engine, touched(events))
        if message.everything or message.ids:
            view_changes.announce(self.client, self.stream, message)

    def everything(self) -> None:
        """After the read model was replaced (a rebuild): every view kept is stale."""
        view_changes.announce(self.client, self.stream, ViewsChanged(everything=True))
