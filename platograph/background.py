"""Loops (stream consumers) on a thread beside an app: kept running, and reported.

A consumer thread that ends on an unexpected error leaves its HTTP server up and looking healthy while
nothing is consumed. So an unexpected error is logged, counted (in `/v1/stats` and in the metric
`platograph_background_failures_total`) and the loop starts again after a pause: the entries it had read
and not acked are read again first, so nothing is lost. An entry that fails every time is dead-lettered
once it has been delivered PLATOGRAPH_MAX_DELIVERIES times (platograph.consuming), where an operator sees
it (`platograph dead-letters`), so it does not hold its group back for good.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter, Gauge

log = logging.getLogger(__name__)
Lifespan = Callable[[Any], AbstractAsyncContextManager[None]]
Body = Callable[[threading.Event], None]

FAILURES = Counter("platograph_background_failures_total", "Unexpected errors that restarted a loop", ["loop"])
RUNNING = Gauge("platograph_background_running", "1 while a loop runs, 0 while it pauses after an error", ["loop"])


@dataclass
class LoopState:
    """How one background loop is doing."""

    name: str
    running: bool = False
    failures: int = 0
    last_error: str | None = None
    last_failure_at: datetime | None = None

    def report(self) -> dict[str, Any]:
        when = self.last_failure_at.isoformat() if self.last_failure_at else None
        return {"running": self.running, "failures": self.failures, "last_error": self.last_error,
                "last_failure_at": when}  # fmt: skip

    def set_running(self, running: bool) -> None:
        self.running = running
        RUNNING.labels(self.name).set(int(running))

    def failed(self, exc: Exception) -> None:
        self.failures += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        self.last_failure_at = datetime.now(UTC)
        FAILURES.labels(self.name).inc()


def keep_running(state: LoopState, body: Body, stop: threading.Event, pause_s: float) -> None:
    """Run `body(stop)` until it returns (a consumer does once `stop` is set), starting it again `pause_s`
    after an unexpected error."""
    while True:
        state.set_running(True)
        try:
            body(stop)
            break
        except Exception as exc:
            state.failed(exc)
            log.exception("%s failed (%d so far); starting it again in %.1f s", state.name, state.failures, pause_s)
            state.set_running(False)
            if stop.wait(pause_s):
                break
    state.set_running(False)


def thread_lifespan(run: Body, *, name: str, enabled: bool, close: Callable[[], None] | None) -> Lifespan:
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
