"""Replaying a dead letter: the group that set an entry aside handles it again, once its cause is fixed.

Each service serves `POST /v1/dead-letters/{record_id}/replay` for the records of its own group (the route
comes from `replay_router`); the gateway asks each in turn. A replay hands the record's entry (or its
one event) to the group's replay function with the entry's own stream id, so that it takes its original
place: the graph projects it at its original position (a replay cannot win over later writes), the
similarity service reads upserted entities from the graph as they are now, and webhook deliveries are
keyed by event. The record is deleted only once the replay has passed; if it fails again, the answer is
a 409 with the error and the record stays.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path
from fastapi.concurrency import run_in_threadpool

from platograph.contracts import ENTRY_FIELD, decode_entry
from platograph.stream import StreamConsumer

log = logging.getLogger(__name__)

Replay = Callable[[str, list[tuple[int, Any]]], Any]
"""(stream entry id, [(index in the entry, raw event)]) -> what the replay did (JSON)."""

RecordId = Annotated[str, Path(pattern=r"^\d{1,15}-\d{1,7}$", description="A dead letter's `id`")]
OTHER_GROUP = "other_group"  # the type of a 409 that says: ask the service of another group


@dataclass(frozen=True)
class Owner:
    """A service's consumer group and how it replays an entry."""

    consumer: StreamConsumer
    replay: Replay


def events_of(item: dict[str, Any]) -> list[tuple[int, Any]]:
    """The (index, raw event) pairs a record holds: one event, or every event of a whole stream entry.
    ValueError when a whole entry's raw fields cannot be decoded."""
    raw = item["raw"]
    if item["index"] is not None:
        return [(int(item["index"]), raw)]
    text = raw.get(ENTRY_FIELD.decode()) if isinstance(raw, dict) else None
    if not isinstance(text, str):
        raise ValueError(f"the record holds no {ENTRY_FIELD.decode()!r} field to decode")
    return list(enumerate(decode_entry({ENTRY_FIELD: text.encode()})))


def replay(owner: Owner, record_id: str) -> dict[str, Any]:
    """Replay one record of the owner's group and delete it; HTTPException 404 (no such record), 409 (another
    group's record, or it failed again: the record stays)."""
    consumer = owner.consumer
    item = consumer.dead_letter_record(record_id)
    if item is None:
        raise HTTPException(404, detail=[{"loc": ["path", "record_id"], "msg": f"no dead letter {record_id!r}",
                                           "type": "not_found"}])  # fmt: skip
    if item["group"] != consumer.group:
        msg = f"set aside by group {item['group']!r}, not {consumer.group!r}"
        raise HTTPException(409, detail=[{"loc": ["path", "record_id"], "type": OTHER_GROUP, "msg": msg}])
    try:
        done = owner.replay(item["entry_id"], events_of(item))
    except Exception as exc:
        log.warning("replaying dead letter %s of group %s failed again: %s", record_id, consumer.group, exc)
        raise HTTPException(409, detail=[{"loc": ["path", "record_id"], "type": "failed_again",
                                           "msg": f"{type(exc).__name__}: {exc}"[:2000]}]) from exc  # fmt: skip
    consumer.client.xdel(consumer.dead_letter_stream, record_id)
    log.info("replayed dead letter %s of group %s (entry %s)", record_id, consumer.group, item["entry_id"])
    return {"replayed": item, "group": consumer.group, "result": done}


def replay_router(owner: Owner) -> APIRouter:
    """The replay route of the service whose group and replay function `owner` holds."""
    router = APIRouter(prefix="/v1", tags=["operations"])

    @router.post("/dead-letters/{record_id}/replay")
    async def replay_dead_letter(
        record_id: RecordId,
    ) -> dict[str, Any]:
        """Handle a dead-lettered entry again in this service's group, at its own stream position, and delete
        the record; 409 when the record is another group's, or when it fails again (the record stays)."""
        return await run_in_threadpool(replay, owner, record_id)

    return router
