"""Internal routes for a re-embed's candidate diff and follow-up: staged pairs (the diff shards write them,
the diff is counted here) and lean candidate pair lists, so that neither the similarity service nor a
worker holds a corpus's pairs (services/graph/adapters/staged_pairs.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field, model_validator

from services.graph.adapters import staged_pairs
from services.graph.bootstrap import Graph

router = APIRouter(prefix="/v1", tags=["graph"])
Tag = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[\w.-]+$")]


def _graph(request: Request) -> Graph:
    return request.app.state.graph  # type: ignore[no-any-return]


class StagedPairs(BaseModel):
    pairs: list[tuple[str, str, float]] = Field(max_length=20_000, description="(a, b, score) with a < b")

    @model_validator(mode="after")
    def _ordered(self) -> StagedPairs:
        for n, (a, b, _) in enumerate(self.pairs):
            if not a < b:
                raise ValueError(f"pairs[{n}]: a must sort before b ({a!r}, {b!r})")
        return self


@router.post("/staged-pairs/{tag}")
def stage(tag: Tag, body: StagedPairs, request: Request) -> dict[str, int]:
    """Stage pairs a new model proposes (one already staged under the tag is kept)."""
    with _graph(request).engine.begin() as conn:
        return {"staged": staged_pairs.stage(conn, tag, body.pairs)}


@router.get("/staged-pairs/{tag}/diff")
def diff(tag: Tag, request: Request) -> dict[str, Any]:
    """The staged pairs against the candidates proposed now: gained, lost, re-scored, by type pair."""
    with _graph(request).engine.connect() as conn:
        return staged_pairs.diff(conn, tag)


@router.delete("/staged-pairs/{tag}")
def drop(tag: Tag, request: Request) -> dict[str, int]:
    with _graph(request).engine.begin() as conn:
        return {"dropped": staged_pairs.drop(conn, tag)}


Status = Annotated[str, Query(pattern="^(proposed|withdrawn|accepted|rejected)$")]
Model = Annotated[str | None, Query(min_length=1, max_length=200)]


@router.get("/candidate-pairs")
def candidate_pairs(
    request: Request,
    status: Status = "proposed",
    model: Model = None,
    model_not: Model = None,
    after: Annotated[str | None, Query(max_length=2000, description="The last pair seen, as `a|b`")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 5000,
) -> dict[str, Any]:
    """Candidate pairs in (a, b) order, filtered by status and by (or other than) the model that proposed
    them; `next_after` pages on."""
    last: tuple[str, str] | None = None
    if after is not None:
        a, sep, b = after.partition("|")
        if not sep:
            raise HTTPException(422, detail=[{"loc": ["query", "after"], "msg": "after must be `a|b`",
                                              "type": "value_error"}])  # fmt: skip
        last = (a, b)
    with _graph(request).engine.connect() as conn:
        items = staged_pairs.candidate_pairs(conn, status=status, model=model, model_not=model_not, after=last,
                                             limit=limit)  # fmt: skip
    return {"items": items, "next_after": "|".join(items[-1]) if len(items) == limit else None}


@router.get("/candidate-pairs/count")
def count(request: Request, status: Status = "proposed", model: Model = None) -> dict[str, int]:
    with _graph(request).engine.connect() as conn:
        return {"count": staged_pairs.count_candidates(conn, status=status, model=model)}
