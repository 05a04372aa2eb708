"""Which Redis URLs the settings take, and what a cluster requires of the rest (checked at start-up)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from platograph.redis_clients import is_cluster
from platograph.settings import CoreSettings

CLUSTER = "redis+cluster://10.0.0.5:7000"


def settings(**values: str) -> CoreSettings:
    return CoreSettings.model_validate(values)


def test_a_standalone_url_needs_nothing_else_and_rq_shares_it() -> None:
    s = settings(REDIS_URL="redis://127.0.0.1:6379/0")
    assert s.rq_url == "redis://127.0.0.1:6379/0" and not is_cluster(s.redis_url)


def test_a_cluster_url_needs_a_hash_tagged_stream_and_a_standalone_rq_server() -> None:
    with pytest.raises(ValidationError, match="PLATOGRAPH_STREAM 'platograph:events' needs a hash tag"):
        settings(REDIS_URL=CLUSTER, RQ_REDIS_URL="redis://10.0.0.9:6379/0")
    with pytest.raises(ValidationError, match="set RQ_REDIS_URL to a standalone server"):
        settings(REDIS_URL=CLUSTER, stream="{platograph}:events")
    with pytest.raises(ValidationError, match="RQ does not support Redis Cluster"):
        settings(REDIS_URL=CLUSTER, stream="{platograph}:events", RQ_REDIS_URL=CLUSTER)
    s = settings(REDIS_URL=CLUSTER, stream="{platograph}:events", RQ_REDIS_URL="redis://10.0.0.9:6379/0")
    assert is_cluster(s.redis_url) and s.rq_url == "redis://10.0.0.9:6379/0"


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379", "127.0.0.1:6379", "cluster://x:1"])
def test_other_schemes_are_refused_naming_the_variable(url: str) -> None:
    with pytest.raises(ValidationError, match="REDIS_URL must start with"):
        settings(REDIS_URL=url)
