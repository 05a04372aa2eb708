"""Schemathesis hooks for `test_api_fuzz`: NDJSON imports are sent as the bytes generated for them."""

from __future__ import annotations

from typing import Any

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(_ctx: Any, value: Any) -> bytes:
    # The import's body is declared as binary (NDJSON lines cannot be described per line in OpenAPI), so
    # it arrives as raw bytes: undecodable lines, NULs, empty bodies. Ingest must answer each with a 4xx.
    data = getattr(value, "data", value)
    return data if isinstance(data, bytes) else str(data).encode()
