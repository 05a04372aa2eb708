"""`platograph rebuild --background` gives its job a time limit that fits the journal (RQ's default of
180 s ended long rebuilds)."""

from __future__ import annotations

from typing import Any

import pytest
from rq import Queue
from rq.serializers import JSONSerializer
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from ops.cli import app
from ops.workers import QUEUE
from platograph.redis_clients import sync_redis
from services.graph.entrypoints.jobs import LEAST_TIMEOUT_S, SECONDS_PER_EVENT, rebuild_timeout_s

pytestmark = pytest.mark.integration


def test_the_time_limit_grows_with_the_journal() -> None:
    assert rebuild_timeout_s(0) == LEAST_TIMEOUT_S
    assert rebuild_timeout_s(100_000_000) == int(100_000_000 * SECONDS_PER_EVENT) > 180 * 1000


def test_a_background_rebuild_is_queued_with_the_journals_time_limit(env: dict[str, str], engine: Engine) -> None:
    with engine.begin() as conn:  # a journal of 2,000,000 events, as the maintained counter says
        conn.execute(text("INSERT INTO stat_deltas (key, delta) VALUES ('journal', 2000000)"))
    result = CliRunner().invoke(app, ["rebuild", "--background"], env=env)
    assert result.exit_code == 0, result.output
    job_id = result.output.split()[1]
    connection = sync_redis(env.get("RQ_REDIS_URL", env["REDIS_URL"]))
    try:
        job: Any = Queue(QUEUE, connection=connection, serializer=JSONSerializer).fetch_job(job_id)
        assert job is not None and job.timeout == rebuild_timeout_s(2_000_000) == 4000
        job.delete()
    finally:
        connection.close()
