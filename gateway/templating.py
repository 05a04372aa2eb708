"""The Jinja2 templates of the pages (one environment, its helpers registered once)."""

from __future__ import annotations

from pathlib import Path

from fastapi.templating import Jinja2Templates

from gateway import picture

templates = Jinja2Templates(directory=Path(__file__).resolve().parent / "templates")
templates.env.globals |= {"color": picture.color, "colors": picture.COLORS}
