"""Sent marks written without waiting for Redis's reply to each.

A worker marks each delivery in Redis as soon as its endpoint accepted it, so a batch cut short before its
rows were recorded is not sent again. Waiting for each SET's reply put a Redis round trip between every two
sends of a batch: on 2 cores, with Valkey sharing them, that wait was most of a worker's time in a burst
(py-spy: 39% of its samples in the reply's read, against 27% waiting for the endpoints). Here each SET goes
out on one connection of the client's pool the moment the send succeeds (on loopback it is at Redis before
the next send starts) and the replies are read together when the batch ends; an error in any of them is
raised then, before the batch is recorded, as a failed SET was before.
"""

from __future__ import annotations

from types import TracebackType

import redis


class SentMarks:
    """Pipelined `SET key 1 EX ttl` for one batch; use as a context manager (the replies are read on exit)."""

    def __init__(self, client: redis.Redis, ttl_s: int) -> None:
        self._pool = client.connection_pool
        self._ttl = ttl_s
        self._conn = self._pool.get_connection()
        self._unread = 0

    def mark(self, key: str) -> None:
        self._conn.send_command("SET", key, "1", "EX", self._ttl)  # type: ignore[no-untyped-call]
        self._unread += 1

    def __enter__(self) -> SentMarks:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            for _ in range(self._unread):
                self._conn.read_response()  # raises an error reply
        except BaseException:
            self._conn.disconnect()  # type: ignore[no-untyped-call]  # replies may be left unread on it: never hand it to another caller
            raise
        finally:
            self._unread = 0
            self._pool.release(self._conn)
