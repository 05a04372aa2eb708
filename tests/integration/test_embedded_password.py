"""The embedded Valkey `platograph up` starts answers only clients that give its password (in REDIS_URL)."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from ops.embedded import EmbeddedRedis

pytestmark = pytest.mark.integration


def test_the_embedded_valkey_wants_its_password(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "valkey")
    url = server.start()
    try:
        password, _, address = url.removeprefix("redis://:").partition("@")
        assert len(password) >= 24
        with pytest.raises(redis.AuthenticationError):
            redis.Redis.from_url(f"redis://{address}").ping()
        assert redis.Redis.from_url(url).ping()
    finally:
        server.stop()
