"""Domain errors of the gateway's own decisions; the HTTP layer maps each to its status (gateway.app)."""

from __future__ import annotations


class Refused(Exception):
    """A decision the rules refuse: `status` is the HTTP answer, `loc` the field it is about."""

    status = 409

    def __init__(self, loc: list[str], msg: str, kind: str) -> None:
        super().__init__(msg)
        self.loc, self.msg, self.kind = loc, msg, kind

    def detail(self) -> list[dict[str, object]]:
        return [{"loc": self.loc, "msg": self.msg, "type": self.kind}]


class Conflict(Refused):
    """The state forbids it now (already decided, merged, retracted, ...)."""


class Invalid(Refused):
    """The request can never be right (an edge type the ontology forbids, a merge into itself)."""

    status = 422


class NotFound(Refused):
    status = 404
