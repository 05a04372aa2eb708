"""A small picture of a neighborhood as SVG, drawn on the server (no script, no library to ship)."""

from __future__ import annotations

import math
from html import escape
from typing import Any

# One color per entity type (colorblind-safe Okabe-Ito palette); unknown types are grey.
COLORS = {
    "paper": "#0072B2", "concept": "#E69F00", "hypothesis": "#009E73", "claim": "#D55E00",
    "finding": "#CC79A7", "question": "#56B4E9", "quote": "#7f6a00",
}  # fmt: skip
SIZE, RADIUS, MAX_NODES = 420, 150, 18


def color(entity_type: str) -> str:
    return COLORS.get(entity_type, "#777")


def _short(text: str, n: int = 22) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def neighborhood_svg(view: dict[str, Any]) -> str:
    """The entity in the middle, typed neighbors on a circle (edges labelled), similar ones dashed."""
    center = view["entity"]
    typed = [(n, ", ".join(n["edges"])) for g in view["neighborhood"] for n in g["neighbors"]]
    similar = [(i, f"{i['score']:.2f}") for i in view["related_by_similarity"]["items"]]
    nodes = (typed + similar)[:MAX_NODES]
    cx = cy = SIZE / 2
    parts = [f'<svg viewBox="0 0 {SIZE} {SIZE}" role="img" aria-label="neighborhood graph" class="picture">']
    for k, (item, label) in enumerate(nodes):
        angle = 2 * math.pi * k / max(1, len(nodes)) - math.pi / 2
        x, y = cx + RADIUS * math.cos(angle), cy + RADIUS * math.sin(angle)
        entity = item["entity"]
        dashed = ' stroke-dasharray="4 3"' if k >= len(typed) else ""
        parts.append(f'<line x1="{cx:.0f}" y1="{cy:.0f}" x2="{x:.0f}" y2="{y:.0f}" stroke="#bbb"{dashed}/>')
        mx, my = (cx + x) / 2, (cy + y) / 2
        parts.append(f'<text x="{mx:.0f}" y="{my:.0f}" class="edge-label">{escape(_short(label, 18))}</text>')
        name, kind = escape(entity["name"]), escape(entity["type"])
        parts.append(
            f'<a href="/entities/{escape(entity["id"])}"><circle cx="{x:.0f}" cy="{y:.0f}" r="9" '
            f'fill="{color(entity["type"])}"><title>{name} ({kind})</title></circle>'
            f'<text x="{x:.0f}" y="{y + 21:.0f}" class="node-label">{escape(_short(entity["name"]))}</text></a>'
        )
    parts.append(f'<circle cx="{cx:.0f}" cy="{cy:.0f}" r="14" fill="{color(center["type"])}" stroke="#222"/>')
    parts.append(
        f'<text x="{cx:.0f}" y="{cy + 30:.0f}" class="node-label center">{escape(_short(center["name"], 30))}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)
