"""Which errors a consumer group waits out (a server away) and which count towards setting an entry aside."""

from __future__ import annotations

import httpx
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from platograph.consuming import server_away


def status_error(code: int) -> httpx.HTTPStatusError:
    request = httpx.Request("POST", "http://graph/v1/linked")
    return httpx.HTTPStatusError(str(code), request=request, response=httpx.Response(code, request=request))


@pytest.mark.parametrize("code, away", [(502, True), (503, True), (504, True), (500, False), (400, False),
                                        (404, False), (422, False)])  # fmt: skip
def test_a_service_answering_that_it_is_away_is_waited_out_and_a_bug_is_not(code: int, away: bool) -> None:
    assert server_away(status_error(code)) is away


def test_unreachable_servers_are_away_and_other_errors_are_not() -> None:
    assert server_away(RedisConnectionError("refused"))
    assert server_away(httpx.ConnectError("refused"))
    assert server_away(httpx.ReadTimeout("slow"))
    assert not server_away(ValueError("a bug"))
    assert not server_away(KeyError("id"))
