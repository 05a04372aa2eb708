"""The webhook sender's long-lived event loop: a job cut short by its time limit leaves nothing running."""

from __future__ import annotations

import asyncio
import signal
from types import FrameType

import pytest

from services.webhooks.adapters import sender


class TimeLimit(Exception):
    """What RQ raises from SIGALRM when a job runs past its time limit."""


def test_a_batch_interrupted_by_a_signal_does_not_resume_in_the_next_job() -> None:
    resumed: list[str] = []

    async def long_batch(kept: sender.Kept) -> None:
        await asyncio.sleep(0.3)
        resumed.append("the interrupted batch went on sending")

    async def next_job(kept: sender.Kept) -> str:
        await asyncio.sleep(0.6)  # long enough for the interrupted batch's sleep to end, were it alive
        return "done"

    def alarm(signum: int, frame: FrameType | None) -> None:
        raise TimeLimit

    previous = signal.signal(signal.SIGALRM, alarm)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        with pytest.raises(TimeLimit):
            sender.run(long_batch)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert sender.run(next_job) == "done"
    assert resumed == []


def test_the_loop_and_its_sessions_are_kept_between_jobs() -> None:
    async def session(kept: sender.Kept) -> tuple[object, bool]:
        return await kept.session(("wh_x", "127.0.0.1"))

    first, _ = sender.run(session)
    second, warm = sender.run(session)
    assert first is second and warm  # the same session, used within its keep-alive
