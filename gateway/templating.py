"""The Jinja2 templates of the pages (one environment, its helpers registered once)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates

from gateway import picture


def signed_in(request: Request) -> dict[str, Any]:
    """What every page knows of its visitor: the key's principal (None for an open read) and, in a page
    session, the CSRF token its script sends back."""
    return {"principal": getattr(request.state, "principal", None), "csrf": getattr(request.state, "csrf", None)}


templates = Jinja2Templates(directory=Path(__file__).resolve().parent / "templates", context_processors=[signed_in])
templates.env.globals |= {"color": picture.color, "colors": picture.COLORS}
