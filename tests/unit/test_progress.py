"""The embedding rate: entities gained a second over the last minute of samples."""

from __future__ import annotations

from services.similarity.domain.progress import WINDOW_S, Progress


def test_the_rate_is_measured_over_the_recent_samples_only() -> None:
    progress = Progress()
    assert progress.observe(0, now=100.0) is None  # one sample tells no rate
    assert progress.observe(5, now=100.5) is None  # nor samples closer than a second
    assert progress.observe(200, now=102.0) == 100.0
    assert progress.observe(200, now=103.0 + WINDOW_S) is None  # the old ones left the window
    assert progress.observe(500, now=104.0 + WINDOW_S) == 300.0  # 300 more in the second since
    assert progress.observe(100, now=106.0 + WINDOW_S) == 0.0  # a shrinking index (deletes) is no progress
