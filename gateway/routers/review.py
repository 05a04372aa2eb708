"""Review decisions on candidates: accept as a typed edge, or reject. The gateway owns these events.

A decision is claimed and its events appended by one Lua script (SET NX + XADD), so the first decision
on a pair wins, the second gets a 409, and a crash cannot leave a claim without its events.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, HTTPException, Path, Request
from pydantic import BaseModel, Field

from gateway.deps import ServicesDep, SettingsDep
from gateway.upstream import call, raise_for_client_error
from platograph import ontology
from platograph.contracts import (
    ENTRY_FIELD,
    CandidateAccepted,
    CandidateRejected,
    CandidateUnrejected,
    EdgeAdded,
    Frozen,
    encode_entry,
    new_envelopes,
)
from platograph.stream import reply_text

router = APIRouter(prefix="/v1/candidates", tags=["review"])
PRODUCER = "gateway"
CLAIM_AND_APPEND = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  return {1, redis.call('XADD', KEYS[2], '*', ARGV[3], ARGV[2])}
end
return {0, redis.call('GET', KEYS[1])}
"""
RELEASE_REJECTION = """
local current = redis.call('GET', KEYS[1])
if not current then return {0, ''} end
if cjson.decode(current)['decision'] ~= 'rejected' then return {0, current} end
redis.call('DEL', KEYS[1])
return {1, redis.call('XADD', KEYS[2], '*', ARGV[2], ARGV[1])}
"""
EntityId = Annotated[str, Path(min_length=3, max_length=512)]


class Accept(BaseModel):
    edge_type: str = Field(description="An edge type the ontology allows between the two entities")
    direction: Literal["a_to_b", "b_to_a"] = "a_to_b"
    by: str = Field("", max_length=200, description="Who decided")


class Reject(BaseModel):
    by: str = Field("", max_length=200)
    reason: str = Field("", max_length=2000)


def get_redis(request: Request) -> Any:
    return request.app.state.redis


async def _candidate(services: ServicesDep, a: str, b: str) -> dict[str, Any]:
    response = await call(services.graph, "graph", "GET", "/v1/candidates/pair", params={"a": a, "b": b})
    if response.status_code == 404:
        raise HTTPException(404, detail=[{"loc": ["path", "b"], "msg": f"no candidate for {a} and {b}",
                                           "type": "not_found"}])  # fmt: skip
    raise_for_client_error(response)
    return dict(response.json())


def decision_key(settings: SettingsDep, a: str, b: str) -> str:
    """Where the first decision on a pair is claimed (the Lua scripts check and set it)."""
    return f"{settings.stream}:decision:{a}|{b}"


async def _decide(
    redis: Any, settings: SettingsDep, a: str, b: str, decision: str, by: str, payloads: list[Frozen]
) -> dict[str, Any]:
    envelopes = new_envelopes(payloads, producer=PRODUCER)
    claim = orjson.dumps({"decision": decision, "by": by})
    fields = encode_entry(envelopes)
    won, value = await redis.eval(
        CLAIM_AND_APPEND, 2, decision_key(settings, a, b), settings.stream, claim, fields[ENTRY_FIELD], ENTRY_FIELD
    )
    if not won:
        earlier = orjson.loads(value)
        msg = f"this pair was already {earlier['decision']}" + (f" by {earlier['by']}" if earlier["by"] else "")
        raise HTTPException(409, detail=[{"loc": ["path", "b"], "msg": msg, "type": "already_decided"}])
    return {"status": decision, "position": reply_text(value), "event_ids": [str(e.event_id) for e in envelopes]}


@router.post("/{a}/{b}/accept", status_code=202, responses={404: {}, 409: {}, 422: {}})
async def accept(
    a: EntityId,
    b: EntityId,
    body: Accept,
    services: ServicesDep,
    settings: SettingsDep,
    redis: Annotated[Any, Depends(get_redis)],
) -> dict[str, Any]:
    """Turn a proposed candidate into a typed edge; the pair then leaves "related by similarity"."""
    a, b = (a, b) if a < b else (b, a)
    candidate = await _candidate(services, a, b)
    if candidate["status"] != "proposed":
        msg = f"the candidate is {candidate['status']}, not proposed"
        raise HTTPException(409, detail=[{"loc": ["path", "b"], "msg": msg, "type": "not_proposed"}])
    source, target = (a, b) if body.direction == "a_to_b" else (b, a)
    onto = ontology.load(settings.ontology)
    try:
        onto.check_edge(source, target, body.edge_type)
    except ontology.OntologyError as exc:
        allowed = onto.allowed_edge_types(source.partition(":")[0], target.partition(":")[0])
        msg = f"{exc.message}; allowed from {source} to {target}: {', '.join(allowed)}"
        raise HTTPException(422, detail=[{"loc": ["body", "edge_type"], "msg": msg, "type": "ontology"}]) from exc
    payloads: list[Frozen] = [
        CandidateAccepted(a=a, b=b, edge_type=body.edge_type, source=source, target=target, by=body.by),
        EdgeAdded(source=source, target=target, type=body.edge_type,
                  description=f"accepted candidate (cosine {candidate['score']:.3f})"),
    ]  # fmt: skip
    reply = await _decide(redis, settings, a, b, "accepted", body.by, payloads)
    return reply | {"edge": {"source": source, "type": body.edge_type, "target": target}}


@router.post("/{a}/{b}/reject", status_code=202, responses={404: {}, 409: {}})
async def reject(
    a: EntityId,
    b: EntityId,
    body: Reject,
    services: ServicesDep,
    settings: SettingsDep,
    redis: Annotated[Any, Depends(get_redis)],
) -> dict[str, Any]:
    """Reject a candidate: the pair is never proposed again, whatever the model."""
    a, b = (a, b) if a < b else (b, a)
    await _candidate(services, a, b)
    return await _decide(redis, settings, a, b, "rejected", body.by,
                         [CandidateRejected(a=a, b=b, by=body.by, reason=body.reason)])  # fmt: skip


@router.post("/{a}/{b}/unreject", status_code=202, responses={404: {}, 409: {}})
async def unreject(
    a: EntityId,
    b: EntityId,
    body: Reject,
    services: ServicesDep,
    settings: SettingsDep,
    redis: Annotated[Any, Depends(get_redis)],
) -> dict[str, Any]:
    """Take a rejection back: the pair may be proposed again (and decided again)."""
    a, b = (a, b) if a < b else (b, a)
    await _candidate(services, a, b)
    envelopes = new_envelopes([CandidateUnrejected(a=a, b=b, by=body.by)], producer=PRODUCER)
    entry = encode_entry(envelopes)[ENTRY_FIELD]
    won, value = await redis.eval(RELEASE_REJECTION, 2, decision_key(settings, a, b), settings.stream, entry,
                                  ENTRY_FIELD)  # fmt: skip
    if not won:
        msg = "this pair is not rejected" + (f" (it was {orjson.loads(value)['decision']})" if value else "")
        raise HTTPException(409, detail=[{"loc": ["path", "b"], "msg": msg, "type": "not_rejected"}])
    return {"status": "unrejected", "position": reply_text(value), "event_ids": [str(e.event_id) for e in envelopes]}
