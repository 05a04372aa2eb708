"""The gateway's clients of the services keep no cookies: one client carries every user's requests."""

from __future__ import annotations

import asyncio

import httpx

from gateway.adapters.clients import ServiceClient


def test_a_cookie_a_service_sets_is_not_sent_again() -> None:
    seen: list[str | None] = []

    def service(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("cookie"))
        return httpx.Response(200, headers={"set-cookie": "session=someone-else; Path=/"}, json={})

    async def main() -> None:
        async with ServiceClient(base_url="http://graph", transport=httpx.MockTransport(service)) as client:
            await client.get("/v1/one")
            await client.get("/v1/two")
            assert not client.cookies

    asyncio.run(main())
    assert seen == [None, None]
