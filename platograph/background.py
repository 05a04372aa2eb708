"""A FastAPI lifespan that runs a loop (a stream consumer) on a thread beside the app."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

Lifespan = Callable[[Any], AbstractAsyncContextManager[None]]


def thread_lifespan(
    run: Callable[[threading.Event], None], *, name: str, enabled: bool, close: Callable[[], None] | None
) -> Lifespan:
    """Start `run(stop)` on a daemon thread (when enabled), set `stop` and join it at shutdown, then `close`."""

    @asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        stop = threading.Event()
        thread = threading.Thread(target=run, args=(stop,), name=name, daemon=True)
        if enabled:
            thread.start()
        yield
        stop.set()
        if enabled:
            thread.join(30)
        if close is not None:
            close()

    return lifespan
