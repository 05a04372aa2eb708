"""Logging set-up for every process (its own module: the worker and scheduler processes import it without
the HTTP stack that platograph.observability brings)."""

from __future__ import annotations

import logging


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
