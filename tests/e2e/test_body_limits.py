"""A gigabyte sent to `platograph up` is refused with 413 once it passes the limit, through the gateway and
on to ingest, and neither process grows by more than 50 MiB for it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.e2e.up import Up, platograph_up

pytestmark = pytest.mark.e2e
MIB = 1 << 20


def rss_mib(up: Up, marker: str) -> float:
    (process,) = [p for p in psutil.Process(up.proc.pid).children(recursive=True) if marker in " ".join(p.cmdline())]
    return float(process.memory_info().rss) / MIB


def gigabyte() -> Iterator[bytes]:  # chunked: no Content-Length to refuse it by
    chunk = b"x" * MIB
    for _ in range(1024):
        yield chunk


def test_a_chunked_gigabyte_is_413_and_costs_no_process_more_than_50_mib(tmp_path: Path) -> None:
    with platograph_up(tmp_path / "data", "limits") as up, httpx.Client(base_url=up.url, headers=up.auth,
                                                                        timeout=120) as client:  # fmt: skip
        for path, media in (("/v1/entities", "application/json"), ("/v1/import", "application/x-ndjson")):
            before = {m: rss_mib(up, m) for m in ("gateway.app", "services.ingest")}
            answer = client.post(path, content=gigabyte(), headers={"content-type": media})
            assert answer.status_code == 413, (path, answer.text)
            assert answer.json()["detail"][0]["type"] == "too_long"
            grown = {m: rss_mib(up, m) - mib for m, mib in before.items()}
            assert all(g < 50 for g in grown.values()), (path, grown)
