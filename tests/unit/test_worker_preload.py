"""A worker loads its jobs modules before its first job (`platograph worker --preload`)."""

from __future__ import annotations

import sys
import types

import pytest

from ops import workers


def test_preloaded_modules_are_imported_and_warmed(monkeypatch: pytest.MonkeyPatch) -> None:
    warmed: list[str] = []
    jobs = types.ModuleType("fake_jobs")
    jobs.warm = lambda: warmed.append("fake_jobs")  # type: ignore[attr-defined]
    plain = types.ModuleType("fake_plain_jobs")  # no warm(): imported only
    monkeypatch.setitem(sys.modules, "fake_jobs", jobs)
    monkeypatch.setitem(sys.modules, "fake_plain_jobs", plain)
    workers.load(["fake_plain_jobs", "fake_jobs"])
    assert warmed == ["fake_jobs"]


def test_a_module_that_does_not_exist_stops_the_worker_at_start() -> None:
    with pytest.raises(ModuleNotFoundError):
        workers.load(["services.webhooks.entrypoints.no_such_jobs"])


def test_the_webhook_workers_are_started_with_their_jobs_preloaded() -> None:
    from ops.supervisor import System, UpSettings

    system = System(UpSettings())
    system.plan()
    argvs = [c.argv for c in system.children if c.name.startswith("webhook-worker")]
    assert argvs and all(a[a.index("--preload") + 1] == "services.webhooks.entrypoints.jobs" for a in argvs)
