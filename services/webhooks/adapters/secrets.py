"""Signing secrets at rest: encrypted with the operator's Fernet keys (MultiFernet lets them rotate)."""

from __future__ import annotations

from cryptography.fernet import Fernet, MultiFernet


class SecretBox:
    def __init__(self, keys: str) -> None:
        self._fernet = MultiFernet([Fernet(key.strip()) for key in keys.split(",") if key.strip()])

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def open(self, token: str) -> str:
        return self._fernet.decrypt(token.encode()).decode()
