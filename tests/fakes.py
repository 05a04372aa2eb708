"""In-memory twins of adapters; each passes the same contract test as the real one."""

from __future__ import annotations

from typing import Any

from platograph.contracts import Envelope


class FakeEventLog:
    def __init__(self) -> None:
        self.entries: list[tuple[str, list[Envelope]]] = []
        self.replies: dict[str, dict[str, Any]] = {}
        self._clock = 1_700_000_000_000

    async def append(self, entries: list[list[Envelope]]) -> list[str]:
        ids = []
        for envelopes in entries:
            self._clock += 1
            ids.append(f"{self._clock}-0")
            self.entries.append((ids[-1], envelopes))
        return ids

    async def recall(self, key: str) -> dict[str, Any] | None:
        return self.replies.get(key)

    async def remember(self, key: str, reply: dict[str, Any], ttl_s: int) -> None:
        self.replies[key] = reply

    async def ping(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    def events(self) -> list[Envelope]:
        return [e for _, envelopes in self.entries for e in envelopes]
