"""The probe Docker and Kubernetes run: it sends the internal token and fails on anything but a 2xx."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
TOKEN = "probe-token-" + "z" * 32


class Service(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802  # the standard library's name
        allowed = self.headers.get("X-Platograph-Internal") == TOKEN
        status = 401 if not allowed else 503 if self.path == "/down" else 200
        self.send_response(status)
        self.end_headers()
        self.wfile.write(b'{"failing": ["redis"]}' if status == 503 else b"{}")

    def log_message(self, *_: object) -> None:
        return None


@pytest.fixture
def base() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Service)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _probe(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "platograph.probe", *args], env={"PATH": "/usr/bin", **env},
                          capture_output=True, text=True, timeout=30, check=False)  # fmt: skip


def test_the_probe_passes_only_on_a_2xx_with_the_token(base: str, tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "PLATOGRAPH_INTERNAL_TOKEN").write_text(TOKEN + "\n")
    from_file = {"PLATOGRAPH_SECRETS_DIR": str(secrets)}

    assert _probe(f"{base}/readyz", env=from_file).returncode == 0
    assert _probe(env={**from_file, "PLATOGRAPH_HEALTH_URL": f"{base}/readyz"}).returncode == 0
    assert _probe(f"{base}/readyz", env={"PLATOGRAPH_INTERNAL_TOKEN": TOKEN}).returncode == 0
    refused = _probe(f"{base}/readyz", env={})
    assert refused.returncode == 1 and "401" in refused.stderr
    down = _probe(f"{base}/down", env=from_file)
    assert down.returncode == 1 and "redis" in down.stderr
    closed = _probe("http://127.0.0.1:9/readyz", env=from_file)
    assert closed.returncode == 1
    assert _probe(env={}).returncode == 2
