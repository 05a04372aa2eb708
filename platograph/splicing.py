"""Adding members to a JSON object the database or a service already wrote, without parsing it: the
neighborhood view is the hottest read, and its parts come in our own view shapes (tests validate the
result against the view models)."""

from __future__ import annotations


def splice(view: bytes, members: dict[str, bytes]) -> bytes:
    """`view` (a JSON object) with `members` (name → JSON value) added at its end."""
    view = view.rstrip()
    if not view.endswith(b"}"):
        raise ValueError("not a JSON object")
    extra = b"".join(b',"' + name.encode() + b'":' + value for name, value in members.items())
    return view[:-1] + extra + b"}"
