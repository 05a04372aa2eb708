"""What `platograph reembed` shows while a job runs: the entities embedded, then the diff's id ranges."""

from __future__ import annotations

import io
from typing import Any

import httpx
import pytest
from rich.console import Console

from ops import reembed_cli


def test_the_progress_shows_the_diff_ranges_once_every_entity_is_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    base = {"id": "j1", "model": "e5-small", "total": 10, "rate": 5.0, "batches": 4, "error": ""}
    states: list[dict[str, Any]] = [
        base | {"status": "running", "done": 6, "diffed_batches": 0},
        base | {"status": "running", "done": 10, "diffed_batches": 1},
        base | {"status": "running", "done": 10, "diffed_batches": 3},
        base | {"status": "done", "done": 10, "diffed_batches": 4,
                "diff": {"from_model": "minilm", "to_model": "e5-small", "gained": 2, "lost": 1, "rescored": 0,
                         "by_type_pair": {}}},
    ]  # fmt: skip
    client = httpx.Client(base_url="http://gateway", transport=httpx.MockTransport(
        lambda request: httpx.Response(200, json=states.pop(0))))  # fmt: skip
    monkeypatch.setattr(reembed_cli, "POLL_S", 0.0)
    out = io.StringIO()
    console = Console(file=out, width=150, force_terminal=False)
    reembed_cli.follow(console, client, base | {"status": "running", "done": 0})
    shown = out.getvalue()
    assert "re-embedding with e5-small" in shown and "10/10" in shown
    assert "comparing candidates (id ranges)" in shown and "4/4" in shown
    assert "e5-small now answers" in shown
