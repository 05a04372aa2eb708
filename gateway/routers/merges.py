"""Merging duplicates, and undoing it. The gateway owns these decisions, like review decisions.

The merge state lives in Redis beside the stream, so that a Lua script checks it and appends the event
in one step: two people merging at once cannot both win, and no chain of merges can form (an entity
merged into another cannot take members, and one with members cannot be merged away), so every merged
id redirects to one live entity in one step.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field

from gateway.deps import ServicesDep, SettingsDep
from gateway.routers.reads import After, wait_for
from gateway.routers.review import EntityId, get_redis
from gateway.upstream import call, raise_for_client_error
from platograph.contracts import ENTRY_FIELD, EntityMerged, EntityUnmerged, encode_entry, new_envelopes
from platograph.stream import reply_text
from platograph.urls import segment

router = APIRouter(prefix="/v1/entities", tags=["review"])
PRODUCER = "gateway"
MERGE = """
local current = redis.call('GET', KEYS[1])
if current then return {0, 'already', current} end
local target = redis.call('GET', KEYS[2])
if target then return {0, 'into_merged', target} end
if redis.call('SCARD', KEYS[3]) > 0 then
  return {0, 'has_members', table.concat(redis.call('SMEMBERS', KEYS[3]), ', ')}
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[4], ARGV[2])
return {1, redis.call('XADD', KEYS[5], '*', ARGV[3], ARGV[4])}
"""
UNMERGE = """
local current = redis.call('GET', KEYS[1])
if not current then return {0, 'not_merged', ''} end
if current ~= ARGV[1] then return {0, 'moved', current} end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[2])
return {1, redis.call('XADD', KEYS[3], '*', ARGV[3], ARGV[4])}
"""


class Merge(BaseModel):
    into: str = Field(min_length=3, max_length=512, description="The entity that stays (the survivor)")
    by: str = Field("", max_length=200, description="Who decided")


class Unmerge(BaseModel):
    by: str = Field("", max_length=200)


def _conflict(loc: list[str], msg: str, kind: str) -> HTTPException:
    return HTTPException(409, detail=[{"loc": loc, "msg": msg, "type": kind}])


async def _entity(services: ServicesDep, entity_id: str, loc: list[str]) -> dict[str, Any]:
    response = await call(services.graph, "graph", "GET", f"/v1/entities/{segment(entity_id)}")
    if response.status_code == 404:
        raise HTTPException(404, detail=[{"loc": loc, "msg": f"no entity {entity_id!r}", "type": "not_found"}])
    raise_for_client_error(response)
    return dict(response.json())


def _keys(settings: SettingsDep, entity_id: str) -> tuple[str, str]:
    return f"{settings.stream}:merged:{entity_id}", f"{settings.stream}:absorbed:{entity_id}"


@router.post("/{id:path}/merge", status_code=202, responses={404: {}, 409: {}, 422: {}})
async def merge(
    id: EntityId,
    body: Merge,
    services: ServicesDep,
    settings: SettingsDep,
    redis: Annotated[Any, Depends(get_redis)],
    dry_run: bool = Query(False, description="Only show what would move"),
    after: After = None,
) -> dict[str, Any]:
    """Merge a duplicate into the entity that stays: its edges show on the survivor (no duplicate edges,
    no self-loops), its candidates are withdrawn, and its id redirects (301) to the survivor."""
    await wait_for(services, settings, after)
    if id == body.into:
        raise HTTPException(422, detail=[{"loc": ["body", "into"], "msg": "an entity cannot be merged into itself",
                                          "type": "value_error"}])  # fmt: skip
    entity = await _entity(services, id, ["path", "id"])
    survivor = await _entity(services, body.into, ["body", "into"])
    for found, loc in ((entity, ["path", "id"]), (survivor, ["body", "into"])):
        if found["status"] == "retracted":
            raise _conflict(loc, f"{found['id']} is retracted", "retracted")
    preview = await call(services.graph, "graph", "GET", "/v1/merge-preview", params={"id": id, "into": body.into})
    raise_for_client_error(preview)
    if dry_run:
        return {"dry_run": True, "id": id, "into": body.into} | dict(preview.json())
    envelopes = new_envelopes([EntityMerged(id=id, into=body.into, by=body.by)], producer=PRODUCER)
    merged_key, members_key = _keys(settings, id)
    into_key, into_members = _keys(settings, body.into)
    fields = encode_entry(envelopes)
    won, *rest = await redis.eval(MERGE, 5, merged_key, into_key, members_key, into_members, settings.stream,
                                  body.into, id, ENTRY_FIELD, fields[ENTRY_FIELD])  # fmt: skip
    if not won:
        why, value = reply_text(rest[0]), reply_text(rest[1])
        messages = {
            "already": (["path", "id"], f"{id} is already merged into {value}"),
            "into_merged": (["body", "into"], f"{body.into} was itself merged into {value}; merge into {value}"),
            "has_members": (["path", "id"], f"{value} are merged into {id}; unmerge them first or merge them here"),
        }
        loc, msg = messages[why]
        raise _conflict(loc, msg, why)
    return {"status": "merged", "id": id, "into": body.into, "position": reply_text(rest[0]),
            "event_ids": [str(e.event_id) for e in envelopes]} | dict(preview.json())  # fmt: skip


@router.post("/{id:path}/unmerge", status_code=202, responses={404: {}, 409: {}})
async def unmerge(
    id: EntityId,
    body: Unmerge,
    services: ServicesDep,
    settings: SettingsDep,
    redis: Annotated[Any, Depends(get_redis)],
    after: After = None,
) -> dict[str, Any]:
    """Undo a merge: both entities and their own edges come back exactly (a compensating event)."""
    await wait_for(services, settings, after)
    entity = await _entity(services, id, ["path", "id"])
    into = entity.get("merged_into")
    if not into:
        raise _conflict(["path", "id"], f"{id} is not merged", "not_merged")
    envelopes = new_envelopes([EntityUnmerged(id=id, into=into, by=body.by)], producer=PRODUCER)
    merged_key, _ = _keys(settings, id)
    _, into_members = _keys(settings, into)
    fields = encode_entry(envelopes)
    won, *rest = await redis.eval(UNMERGE, 3, merged_key, into_members, settings.stream, into, id, ENTRY_FIELD,
                                  fields[ENTRY_FIELD])  # fmt: skip
    if not won:
        raise _conflict(["path", "id"], f"{id} is not merged (any more)", "not_merged")
    return {"status": "unmerged", "id": id, "into": into, "position": reply_text(rest[0]),
            "event_ids": [str(e.event_id) for e in envelopes]}  # fmt: skip
