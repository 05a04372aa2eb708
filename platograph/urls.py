"""Building the URLs one service calls on another."""

from __future__ import annotations

from urllib.parse import quote


def segment(value: str) -> str:
    """A path parameter as one escaped URL path segment. Interpolated as it came, an id holding `?`, `#`,
    `/`, `..` or a control character would address another resource, or make no URL at all (a 500)."""
    quoted = quote(value, safe=":@!$&'()*+,;=")
    return quoted.replace(".", "%2E") if quoted in (".", "..") else quoted
