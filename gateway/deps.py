"""FastAPI dependencies of the gateway (async: a plain function would cost a thread hop per request).

FastAPI solves every dependency on every request, a cached one included (its own parameters are solved
before the cache is looked in): the code that runs on every request (the
scope check) and the hottest route (the neighborhood view) read `request.app.state` instead."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gateway.adapters.clients import Services
from gateway.adapters.decision_log import DecisionLog
from gateway.settings import GatewaySettings


async def get_services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


async def get_settings(request: Request) -> GatewaySettings:
    return request.app.state.settings  # type: ignore[no-any-return]


ServicesDep = Annotated[Services, Depends(get_services)]
SettingsDep = Annotated[GatewaySettings, Depends(get_settings)]


async def get_decision_log(request: Request) -> DecisionLog:
    return request.app.state.decisions  # type: ignore[no-any-return]


DecisionLogDep = Annotated[DecisionLog, Depends(get_decision_log)]
