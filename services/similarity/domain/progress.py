"""How fast the index grows: samples of its size, and the rate over the last minute."""

from __future__ import annotations

import threading
import time
from collections import deque

WINDOW_S = 60.0  # the rate is measured over this much of the recent past
LEAST_SPAN_S = 1.0  # samples closer together than this tell no rate


class Progress:
    """Samples of the index's size (taken on each status read), thread-safe."""

    def __init__(self) -> None:
        self._samples: deque[tuple[float, int]] = deque(maxlen=1000)
        self._lock = threading.Lock()

    def observe(self, indexed: int, now: float | None = None) -> float | None:
        """Record the index's size; the entities indexed a second over the samples of the last WINDOW_S
        (None until they span LEAST_SPAN_S)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._samples.append((now, indexed))
            while now - self._samples[0][0] > WINDOW_S:
                self._samples.popleft()
            first_at, first = self._samples[0]
        span = now - first_at
        return None if span < LEAST_SPAN_S else round(max(0, indexed - first) / span, 1)
