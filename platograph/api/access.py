"""API keys and their scopes: what the gateway asks of the access service, and what admins send."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from platograph.contracts import Actor

Scope = Literal["read", "write", "review", "webhooks", "admin"]
#: A request budget in the `limits` notation: a count per second, minute, hour or day.
Rate = Annotated[str, Field(pattern=r"^\d{1,9} ?(/|per) ?(\d{1,6} )?(second|minute|hour|day)s?$",
                            examples=["600/minute"])]  # fmt: skip
#: What each scope allows (admin allows everything).
SCOPES: dict[str, str] = {
    "read": "views, lists, search, similar, status",
    "write": "entities, edges, import",
    "review": "accept, reject, unreject, merge, unmerge",
    "webhooks": "the caller's own webhook subscriptions",
    "admin": "re-embedding, dead letters, keys, every owner's subscriptions, the audit log",
}


def key_digest(key: str) -> str:
    """What is stored of a key and what it is looked up by: its SHA-256 (a key has 256 random bits, so
    there is nothing a slow hash would protect)."""
    return hashlib.sha256(key.encode()).hexdigest()


class KeyIn(BaseModel):
    """A key to make: who it is for and what it may do."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, pattern=r"^[\w.@+-][\w .@+-]*$", description="Who holds it")
    scopes: list[Scope] = Field(min_length=1, description="read, write, review, webhooks, admin")
    owner: str | None = Field(None, min_length=1, max_length=200, description="Whose subscriptions it manages "
                              "(default: the name)")  # fmt: skip
    read_rate: Rate | None = Field(None, description="Budget of reads (default: the gateway's)")
    write_rate: Rate | None = Field(None, description="Budget of every other request (default: the gateway's)")


class Principal(BaseModel):
    """Who a key speaks for: its id, name, owner and scopes."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    owner: str
    scopes: tuple[Scope, ...]
    read_rate: str | None = None
    write_rate: str | None = None

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or self.allows_all()

    def allows_all(self) -> bool:
        """An admin's key: every scope, every owner's subscriptions."""
        return "admin" in self.scopes

    def actor(self) -> Actor:
        """Who this key is, as events record it."""
        return Actor(id=self.id, name=self.name)


class KeyView(Principal):
    created_at: datetime
    revoked_at: datetime | None = None


class KeyMade(KeyView):
    key: str = Field(description="The key itself: shown this once, only its hash is kept")


class KeyPage(BaseModel):
    items: list[KeyView]
    next_cursor: str | None
