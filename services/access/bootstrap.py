"""The one place that wires the access service's dependencies."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from platograph.database import make_engine
from services.access.settings import AccessSettings


@dataclass
class Access:
    settings: AccessSettings
    engine: Engine

    def close(self) -> None:
        self.engine.dispose()


def bootstrap(settings: AccessSettings | None = None) -> Access:
    settings = settings or AccessSettings()
    engine = make_engine(settings.database_url, prepared_statements=settings.db_prepared_statements, pool_size=5,
                         max_overflow=10, pool_recycle=1800)  # fmt: skip
    return Access(settings=settings, engine=engine)
