"""FastAPI dependencies of the similarity service."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.similarity.bootstrap import Similarity


def get_sim(request: Request) -> Similarity:
    return request.app.state.sim  # type: ignore[no-any-return]


SimDep = Annotated[Similarity, Depends(get_sim)]
