"""Trimming the event stream: entries every group is done with go, and past `maxlen` entries the oldest go
even if a group other than the journal's writer (`keep`, the graph projector's group) still needs them.
A group that falls behind the cap reads what it missed back from the journal
(platograph.consuming.read_back_trimmed), so a lagging consumer no longer holds the whole stream in
Redis's memory. Nothing the journal's writer has not yet projected is ever trimmed.
"""

from __future__ import annotations

import redis
from redis.exceptions import ResponseError

from platograph.stream import _id_tuple, reply_text

# The id of the oldest entry among the newest ARGV[1] (false when there are no more): in Redis, so only
# the id crosses the network; it reads what is over the cap, which grows only between two trims.
FIRST_KEPT = """
local excess = redis.call('XLEN', KEYS[1]) - tonumber(ARGV[1])
if excess <= 0 then return false end
local rows = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', excess + 1)
return rows[#rows][1]
"""


def _group_points(client: redis.Redis, stream: str) -> dict[str, tuple[int, int]]:
    """Per group, the oldest entry it may still need: its oldest pending entry, or what follows its last
    delivered one."""
    try:
        groups = client.xinfo_groups(stream)
    except ResponseError:
        return {}
    points: dict[str, tuple[int, int]] = {}
    for group in groups:
        name = reply_text(group["name"])
        summary = client.xpending(stream, name)
        if summary["pending"]:
            points[name] = _id_tuple(reply_text(summary["min"]))
        else:
            ms, seq = _id_tuple(reply_text(group["last-delivered-id"]))
            points[name] = (ms, seq + 1)
    return points


def trim_point(client: redis.Redis, stream: str, keep: str | None = None, maxlen: int | None = None) -> str | None:
    """The id before which entries can go; None when nothing may be trimmed (no group yet, or `keep`'s
    group missing: the journal's writer decides what is safe)."""
    points = _group_points(client, stream)
    if not points or (keep is not None and keep not in points):
        return None
    point = min(points.values())
    if maxlen is not None:
        first_kept = client.eval(FIRST_KEPT, 1, stream, maxlen)  # the oldest of the newest maxlen entries
        if first_kept:
            point = max(point, _id_tuple(reply_text(first_kept)))
    if keep is not None:
        point = min(point, points[keep])
    return f"{point[0]}-{point[1]}"


def trim(client: redis.Redis, stream: str, keep: str | None = None, maxlen: int | None = None) -> int:
    """Drop what `trim_point` allows; returns how many entries were removed."""
    point = trim_point(client, stream, keep, maxlen)
    return 0 if point is None else int(client.xtrim(stream, minid=point, approximate=False))
