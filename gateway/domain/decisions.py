"""The rules of review decisions and merges, as pure functions: the first decision on a pair wins, an
accepted candidate becomes a typed edge the ontology allows, and merges do not chain (an entity merged into
another cannot take members, and one with members cannot be merged away), so every merged id redirects to
one live entity in one step. The adapter (gateway.adapters.decision_log) checks the stored state and
appends the events in one step; these functions say what to append and why a refusal is refused."""

from __future__ import annotations

from typing import Any

from gateway.domain.refusals import Conflict, Invalid
from platograph import ontology
from platograph.api.review import Accept
from platograph.contracts import CandidateAccepted, EdgeAdded, Frozen

PRODUCER = "gateway"
ON_PAIR = ["path", "b"]


def ordered(a: str, b: str) -> tuple[str, str]:
    """A pair has one name: its ids in order."""
    return (a, b) if a < b else (b, a)


def acceptance(
    onto: ontology.Ontology, a: str, b: str, body: Accept, candidate: dict[str, Any], by: str
) -> list[Frozen]:
    """The events that accept a proposed candidate as a typed edge; refused unless it is proposed and the
    ontology allows the edge (the refusal lists the edge types it does allow)."""
    if candidate["status"] != "proposed":
        raise Conflict(ON_PAIR, f"the candidate is {candidate['status']}, not proposed", "not_proposed")
    source, target = (a, b) if body.direction == "a_to_b" else (b, a)
    try:
        onto.check_edge(source, target, body.edge_type)
    except ontology.OntologyError as exc:
        allowed = onto.allowed_edge_types(source.partition(":")[0], target.partition(":")[0])
        msg = f"{exc.message}; allowed from {source} to {target}: {', '.join(allowed)}"
        raise Invalid(["body", "edge_type"], msg, "ontology") from exc
    return [
        CandidateAccepted(a=a, b=b, edge_type=body.edge_type, source=source, target=target, by=by,
                          note=body.by),
        EdgeAdded(source=source, target=target, type=body.edge_type,
                  description=f"accepted candidate (cosine {candidate['score']:.3f})"),
    ]  # fmt: skip


def already_decided(earlier: dict[str, str]) -> Conflict:
    """The refusal of a second decision on a pair, naming the first."""
    msg = f"this pair was already {earlier['decision']}" + (f" by {earlier['by']}" if earlier["by"] else "")
    return Conflict(ON_PAIR, msg, "already_decided")


def not_rejected(current: dict[str, str] | None) -> Conflict:
    """The refusal to take back a rejection the pair does not have."""
    msg = "this pair is not rejected" + (f" (it was {current['decision']})" if current else "")
    return Conflict(ON_PAIR, msg, "not_rejected")


def check_not_itself(entity_id: str, into: str) -> None:
    if entity_id == into:
        raise Invalid(["body", "into"], "an entity cannot be merged into itself", "value_error")


def check_mergeable(entity: dict[str, Any], survivor: dict[str, Any]) -> None:
    """Neither the duplicate nor the survivor may be retracted."""
    for found, loc in ((entity, ["path", "id"]), (survivor, ["body", "into"])):
        if found["status"] == "retracted":
            raise Conflict(loc, f"{found['id']} is retracted", "retracted")


def merge_refused(why: str, entity_id: str, into: str, value: str) -> Conflict:
    """Why the stored merge state refused a merge: `already` merged, `into_merged` (a chain), `has_members`."""
    reasons = {
        "already": (["path", "id"], f"{entity_id} is already merged into {value}"),
        "into_merged": (["body", "into"], f"{into} was itself merged into {value}; merge into {value}"),
        "has_members": (["path", "id"], f"{value} are merged into {entity_id}; unmerge them first or merge them here"),
    }
    loc, msg = reasons[why]
    return Conflict(loc, msg, why)


def merged_into(entity: dict[str, Any]) -> str:
    """The survivor an entity was merged into; refused when it is not merged."""
    into = entity.get("merged_into")
    if not into:
        raise Conflict(["path", "id"], f"{entity['id']} is not merged", "not_merged")
    return str(into)


def no_longer_merged(entity_id: str) -> Conflict:
    return Conflict(["path", "id"], f"{entity_id} is not merged (any more)", "not_merged")
