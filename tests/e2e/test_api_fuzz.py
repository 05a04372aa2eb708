"""Every operation of every service's OpenAPI, fed generated inputs (valid and invalid) by Schemathesis
against `platograph up`: no input may make a service answer 5xx, and the gateway answers only as its
OpenAPI documents.

The seed and the example count are fixed, so a run is repeatable; what it found when first run (a NUL in
any text reaching Postgres, ids breaking the gateway's upstream URLs, an untyped batch body) is pinned by
targeted tests next to each fix.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from platograph.internal import HEADER
from tests.e2e.up import platograph_up
from tests.ports import free_port

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
CONFIG = Path(__file__).with_name("schemathesis.toml")  # half the ids are the seeds' own
PORTS = {"gateway": "PLATOGRAPH_PORT", "ingest": "PLATOGRAPH_INGEST_PORT", "graph": "PLATOGRAPH_GRAPH_PORT",
         "similarity": "PLATOGRAPH_SIMILARITY_PORT", "webhooks": "PLATOGRAPH_WEBHOOKS_PORT",
         "access": "PLATOGRAPH_ACCESS_PORT"}  # fmt: skip

GATEWAY_CHECKS = "all"  # every check, conformance included (schemathesis.toml lists what it cannot know)


def schemathesis(base: str, examples: int, phases: str, checks: str, header: str, out: Path) -> subprocess.Popen[str]:
    env = os.environ | {"PYTHONPATH": str(ROOT), "SCHEMATHESIS_HOOKS": "tests.e2e.fuzz_hooks", "NO_COLOR": "1"}
    command = [str(Path(sys.executable).parent / "schemathesis"), "--config-file", str(CONFIG),
               "run", f"{base}/openapi.json",
               "--checks", checks, "--max-examples", str(examples), "--phases", phases,
               "--seed", "20261128", "--generation-database", "none", "--workers", "1",
               "--request-timeout", "30", "--no-color", "--header", header]  # fmt: skip
    with out.open("w") as sink:  # a file, not a pipe: nobody reads the pipes while the others run
        return subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT, text=True, cwd=ROOT)


def test_no_generated_input_makes_any_service_answer_5xx(tmp_path: Path) -> None:
    ports = {name: free_port() for name in PORTS}
    extra = {variable: str(ports[name]) for name, variable in PORTS.items()}
    with platograph_up(tmp_path / "data", "fuzz", extra) as up:
        token = (tmp_path / "data" / "internal.token").read_text().strip()
        runs: dict[str, subprocess.Popen[str]] = {}
        for name, port in ports.items():  # all at once: each run mostly waits on the services
            out = tmp_path / f"{name}.out"
            # The gateway, the public API, also gets chains of calls that follow links (the stateful phase),
            # and its answers must be the ones its OpenAPI documents: status codes, content types, bodies.
            if name == "gateway":
                runs[name] = schemathesis(f"http://127.0.0.1:{port}", 25, "coverage,fuzzing,stateful",
                                          GATEWAY_CHECKS, f"Authorization: Bearer {up.key}", out)  # fmt: skip
            else:
                runs[name] = schemathesis(f"http://127.0.0.1:{port}", 15, "coverage,fuzzing", "not_a_server_error",
                                          f"{HEADER}: {token}", out)  # fmt: skip
        failed: list[str] = []
        for name, run in runs.items():
            try:
                run.wait(timeout=600)
            except subprocess.TimeoutExpired:
                run.kill()
                run.wait()
            if run.returncode != 0:
                failed.append(f"--- {name} (exit {run.returncode})\n{(tmp_path / f'{name}.out').read_text()[-8000:]}")
        assert not failed, "\n".join(failed)
