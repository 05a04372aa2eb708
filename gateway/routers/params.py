"""Parameters several routers declare the same way."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from platograph import cursors
from platograph.positions import POSITION_PATTERN

After = Annotated[
    str | None,
    Query(description="A `position` token from a write: wait until the view includes that write.",
          pattern=POSITION_PATTERN),
]  # fmt: skip
Position = Annotated[str, Query(description="A `position` token from a write", pattern=POSITION_PATTERN)]
Types = Annotated[list[str] | None, Query(description="Only these entity types (repeatable)")]
EntityId = Annotated[str, Path(min_length=3, max_length=512)]
#: A page's `next_cursor`; an empty or malformed one is an error, not the first page.
Cursor = Annotated[str | None, Query(min_length=1, pattern=cursors.PATTERN, description="A page's `next_cursor`")]
