"""Stream positions: Redis entry ids ("ms-seq") and the integers the read model orders by.

An event's position is ``ms * 10**12 + seq * 10**5 + index`` where index is its place inside the
entry; it totally orders events by stream order so last-writer-wins is the same live and on rebuild.
"""

from __future__ import annotations

import re

#: What a position token (a stream entry id) looks like: the OpenAPI documents say so, so clients do too.
POSITION_PATTERN = r"^\d{1,15}-\d{1,7}$"
_ENTRY_ID = re.compile(r"^(\d{1,15})-(\d{1,7})$")
MAX_EVENTS_PER_ENTRY = 100_000


def parse_entry_id(entry_id: str) -> tuple[int, int]:
    """(ms, seq) of a stream entry id; ValueError if it is not one."""
    match = _ENTRY_ID.match(entry_id)
    if match is None:
        raise ValueError(f"not a stream position: {entry_id!r}")
    return int(match.group(1)), int(match.group(2))


def event_position(entry_id: str, index: int) -> int:
    """Total-order position of the index-th event in a stream entry."""
    if not 0 <= index < MAX_EVENTS_PER_ENTRY:
        raise ValueError("event index out of range")
    ms, seq = parse_entry_id(entry_id)
    return ms * 10**12 + seq * 10**5 + index


def entry_id_of(position: int) -> str:
    """The stream entry id a position came from."""
    ms, rest = divmod(position, 10**12)
    return f"{ms}-{rest // 10**5}"
