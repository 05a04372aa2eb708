"""Webhook benchmark: candidate.proposed events appended to the log, delivered to 4 local endpoints.

Prints, from one run on one machine:
- deliveries/s for a burst (first event appended → last delivery received), against a raw baseline:
  one process POSTing the same signed bodies to the same receiver, one after another (ratio);
- p50/p99 from `candidate.proposed` appended to delivery received, at a paced rate of events.

Usage: python bench/webhooks.py [--burst N] [--rate EVENTS_PER_S] [--seconds S] [--workers W]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import redis
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ops.supervisor import System, UpSettings  # noqa: E402
from platograph.contracts import CandidateProposed, encode_entry, new_envelope  # noqa: E402
from services.webhooks.adapters.sender import signature_headers  # noqa: E402
from services.webhooks.domain.messages import new_secret  # noqa: E402

console = Console()
ENDPOINTS = 4


class Log:
    """When each (endpoint, webhook-id) first arrived, and how many times each webhook-id arrived."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: dict[tuple[str, str], float] = {}
        self.receipts: dict[str, int] = {}

    def count(self) -> int:
        with self.lock:
            return len(self.received)


@contextmanager
def receiver(log: Log) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("content-length", 0)))
            at = time.time()
            key = self.headers.get("webhook-id", "")
            with log.lock:
                log.received.setdefault((self.path, key), at)
                log.receipts[key] = log.receipts.get(key, 0) + 1
            self.send_response(204)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def append(client: redis.Redis, stream: str, i: int) -> tuple[str, float]:
    proposed = CandidateProposed(a=f"claim:b{i % 50}", b=f"paper:b{i % 50}", score=0.8, kind="link", model="bench")
    envelope = new_envelope(proposed, producer="similarity")
    client.xadd(stream, encode_entry([envelope]))  # type: ignore[arg-type]
    return str(envelope.event_id), time.time()


def wait_for(log: Log, total: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while log.count() < total and time.monotonic() < deadline:
        time.sleep(0.02)


def raw_baseline(base: str, n: int) -> float:
    """Deliveries/s from one process POSTing signed bodies straight to the receiver, one at a time."""
    secret, body = new_secret(), '{"type":"candidate.proposed","data":{}}'
    with httpx.Client() as client:
        started = time.perf_counter()
        for i in range(n):
            client.post(
                f"{base}/raw{i % ENDPOINTS}", content=body, headers=signature_headers(f"raw-{i}", body, [secret])
            )
        return n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--burst", type=int, default=500, help="events appended at once (×4 deliveries)")
    parser.add_argument("--rate", type=float, default=50.0, help="events/s in the paced phase (×4 deliveries)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the paced phase")
    parser.add_argument("--workers", type=int, default=4, help="webhook worker processes")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="platograph-bench-webhooks-"))
    os.environ.setdefault("PLATOGRAPH_DATA_DIR", str(work / "data"))
    os.environ["PLATOGRAPH_CONSUME"] = "false"  # no embedding: the events are appended directly
    os.environ["PLATOGRAPH_WEBHOOK_ALLOWLIST"] = "127.0.0.0/8"
    os.environ["PLATOGRAPH_WEBHOOK_WORKERS"] = str(args.workers)
    os.environ["PLATOGRAPH_WEBHOOK_ENDPOINT_CONCURRENCY"] = str(args.workers)
    log = Log()
    system = System(UpSettings())
    try:
        system.start_infrastructure()
        system.plan()
        system.start_children()
        gateway = httpx.Client(base_url=system.gateway_url, timeout=30, headers=system.api_headers())
        entities = [{"id": f"{t}:b{i}", "name": f"{t} {i}"} for i in range(50) for t in ("claim", "paper")]
        gateway.post("/v1/entities", json=entities).raise_for_status()
        client = redis.Redis.from_url(system.env["REDIS_URL"])
        stream = os.environ.get("PLATOGRAPH_STREAM", "platograph:events")
        with receiver(log) as base:
            for n in range(ENDPOINTS):
                gateway.post("/v1/webhooks", json={"url": f"{base}/e{n}"}).raise_for_status()
            raw = raw_baseline(base, 2000)
            time.sleep(2)  # workers up
            # Burst: throughput.
            before = log.count()
            started = time.time()
            burst = {append(client, stream, i)[0] for i in range(args.burst)}
            with console.status(f"burst: {args.burst * ENDPOINTS} deliveries"):
                wait_for(log, before + args.burst * ENDPOINTS, 600)
            burst_times = [t for (_, i), t in log.received.items() if i in burst]
            burst_rate = len(burst_times) / (max(burst_times) - started)
            # Paced: latency from append to receipt.
            before = log.count()
            appended: dict[str, float] = {}
            interval = 1 / args.rate
            next_at = time.monotonic()
            with console.status(f"paced: {args.rate:g} events/s for {args.seconds:g}s"):
                for i in range(int(args.rate * args.seconds)):
                    next_at += interval
                    time.sleep(max(0.0, next_at - time.monotonic()))
                    event_id, at = append(client, stream, args.burst + i)
                    appended[event_id] = at
                wait_for(log, before + len(appended) * ENDPOINTS, 600)
            latencies = sorted((t - appended[i]) * 1000 for (_, i), t in log.received.items() if i in appended)
        report(args, burst_rate, raw, latencies)
    finally:
        system.stop()
        shutil.rmtree(work, ignore_errors=True)


def report(args: argparse.Namespace, burst_rate: float, raw: float, latencies: list[float]) -> None:
    q = statistics.quantiles(latencies, n=100)
    table = Table("measure", "Platograph", "raw baseline", "ratio", title=f"webhooks, {ENDPOINTS} endpoints, "
                  f"{args.workers} workers (cores: {os.cpu_count()})")  # fmt: skip
    table.add_row(f"deliveries/s, burst of {args.burst * ENDPOINTS}", f"{burst_rate:,.0f}", f"{raw:,.0f} direct POSTs",
                  f"{burst_rate / raw:.2f}")  # fmt: skip
    table.add_row(f"append → received p50 (ms), {args.rate * ENDPOINTS:g} deliveries/s", f"{q[49]:.0f}", "", "")
    table.add_row(f"append → received p99 (ms), {args.rate * ENDPOINTS:g} deliveries/s", f"{q[98]:.0f}", "", "")
    table.add_row("deliveries measured", f"{len(latencies):,}", "", "")
    console.print(table)


if __name__ == "__main__":
    main()
