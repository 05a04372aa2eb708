"""Announcements of changed neighborhood views, on a capped Redis stream beside the event stream.

The graph announces after each commit which entities' views it changed (services/graph/adapters/
view_changes.py); every gateway follows the stream and drops the views it keeps for them
(gateway/adapters/view_cache.py). A stream rather than pub/sub: a follower reads on from the last entry it
saw, so a reconnect loses nothing that is still kept, and one that fell further behind than the cap knows
it (its batch comes back full) and starts over empty. The key derives from the event stream's name, so on
a cluster it shares its hash tag.
"""

from __future__ import annotations

from typing import Any

import redis

from platograph.contracts import ViewsChanged

FIELD = b"m"
#: Announcements kept (approximately; each names at most 1,000 views, the graph says everything beyond): a
#: follower this far behind starts over.
KEEP = 2_000


def key(stream: str) -> str:
    return f"{stream}:views"


def announce(client: redis.Redis, stream: str, message: ViewsChanged) -> None:
    client.xadd(key(stream), {FIELD: message.model_dump_json()}, maxlen=KEEP, approximate=True)


def read(fields: dict[Any, Any]) -> ViewsChanged:
    """An announcement from a stream entry's fields (bytes or str keys, as the client decodes them)."""
    raw = fields.get(FIELD, fields.get(FIELD.decode()))
    return ViewsChanged.model_validate_json(raw) if raw is not None else ViewsChanged(everything=True)
