"""A server a service depends on being away is an outage, not a bug: the service answers 503 with
Retry-After (which the gateway passes on) instead of a 500 from an unhandled exception."""

from __future__ import annotations

import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import OperationalError


def answer_outages(app: FastAPI) -> None:
    """Redis or PostgreSQL unreachable (or too slow to answer) while a request is served: 503, Retry-After: 1."""
    app.add_exception_handler(RedisConnectionError, _event_log_down)
    app.add_exception_handler(RedisTimeoutError, _event_log_down)
    app.add_exception_handler(OperationalError, _database_down)
    app.add_exception_handler(psycopg.OperationalError, _database_down)  # an async pool's, a PoolTimeout too


def _unavailable(msg: str) -> JSONResponse:
    detail = [{"loc": ["server"], "msg": msg, "type": "unavailable"}]
    return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": "1"})


async def _event_log_down(_: Request, exc: Exception) -> JSONResponse:
    return _unavailable(f"event log unavailable: {exc}")


async def _database_down(_: Request, exc: Exception) -> JSONResponse:
    reason = exc.orig if isinstance(exc, OperationalError) else exc
    return _unavailable(f"database unavailable: {reason}")
