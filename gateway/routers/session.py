"""Signing in to the pages with an API key, and out. The form posts the key once; the browser keeps only a
session cookie (HttpOnly, SameSite=Strict, Secure under https)."""

from __future__ import annotations

from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gateway.authorization import COOKIE, page_scope
from gateway.deps import ServicesDep
from gateway.templating import templates
from platograph.api.access import key_digest

router = APIRouter(include_in_schema=False)
signed_in = APIRouter(include_in_schema=False, dependencies=page_scope("read"))
MAX_FORM = 4096


def _next(value: str | None) -> str:
    """Where to go after signing in: a path on this site only (never another host)."""
    return value if value and value.startswith("/") and not value.startswith("//") and "\\" not in value else "/"


@router.get("/sign-in", response_class=HTMLResponse)
async def sign_in_page(request: Request, next: str | None = None) -> Response:
    return templates.TemplateResponse(request, "sign-in.html", {"next": _next(next), "error": None})


@router.post("/sign-in", response_class=HTMLResponse)
async def sign_in(request: Request, services: ServicesDep) -> Response:
    """Check the key, then keep a session for it (the key itself is not kept)."""
    body = await request.body()
    form = {k: v[0] for k, v in parse_qs(body[:MAX_FORM].decode("utf-8", "replace")).items()}
    key, target = form.get("key", "").strip(), _next(form.get("next"))
    principal = await services.principals.get(services.access, key) if key else None
    if principal is None:
        page = templates.TemplateResponse(request, "sign-in.html", {"next": target, "error": "unknown or revoked key"})
        page.status_code = 401
        return page
    session_id, _ = await request.app.state.sessions.open(key_digest(key))
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(COOKIE, session_id, max_age=request.app.state.sessions.ttl_s, httponly=True,
                        samesite="strict", secure=request.url.scheme == "https", path="/")  # fmt: skip
    return response


@signed_in.post("/sign-out")
async def sign_out(request: Request) -> Response:
    session_id = request.cookies.get(COOKIE)
    if session_id:
        await request.app.state.sessions.close(session_id)
    response = RedirectResponse("/sign-in", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response
