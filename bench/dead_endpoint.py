"""What a dead endpoint costs: a subscription whose endpoint refuses connections, with tens of thousands of
deliveries waiting, beside a healthy one.

Prints, from one run on one machine: the webhook workers' CPU (per-process accounting, % of one core)
while the dead endpoint's backlog waits behind its circuit breaker, measured over a window after the
breaker has opened a few times; the same with the healthy endpoint alone, measured first in the same run
(the difference is what the dead endpoint costs); and the healthy endpoint's latency from append to
receipt meanwhile.

Usage: python bench/dead_endpoint.py [--events N] [--window S] [--warmup S]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
import redis
from rich.console import Console

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.receiver import Log, receiver, wait_for  # noqa: E402
from bench.webhooks import append  # noqa: E402
from ops.supervisor import System, UpSettings  # noqa: E402

console = Console()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once it is closed: connections are refused


def workers_cpu(system: System) -> float:
    total = 0.0
    for child in system.children:
        if child.name.startswith("webhook-worker") and child.process is not None:
            times = psutil.Process(child.process.pid).cpu_times()
            total += times.user + times.system
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000, help="deliveries waiting on the dead endpoint")
    parser.add_argument("--window", type=float, default=60.0, help="seconds of CPU measured")
    parser.add_argument("--warmup", type=float, default=90.0, help="seconds before the window")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="platograph-bench-dead-"))
    os.environ.setdefault("PLATOGRAPH_DATA_DIR", str(work / "data"))
    os.environ.update({"PLATOGRAPH_CONSUME": "false", "PLATOGRAPH_WEBHOOK_ALLOWLIST": "127.0.0.0/8"})
    log = Log()
    system = System(UpSettings())
    try:
        system.start_infrastructure()
        system.plan()
        system.start_children()
        gateway = httpx.Client(base_url=system.gateway_url, timeout=60, headers=system.api_headers())
        entities = [{"id": f"{t}:b{i}", "name": f"{t} {i}"} for i in range(50) for t in ("claim", "paper")]
        gateway.post("/v1/entities", json=entities).raise_for_status()
        client = redis.Redis.from_url(system.env["REDIS_URL"])
        stream = os.environ.get("PLATOGRAPH_STREAM", "platograph:events")
        with receiver(log) as base:

            def window(first: int) -> tuple[float, float, dict[str, float]]:
                """Events every 0.5 s for args.window s: the workers' CPU used, the time, what was appended."""
                cpu, started = workers_cpu(system), time.monotonic()
                appended: dict[str, float] = {}
                with console.status(f"measuring {args.window:g} s"):
                    while time.monotonic() - started < args.window:
                        event_id, at = append(client, stream, first + len(appended))
                        appended[event_id] = at
                        time.sleep(0.5)
                    used, elapsed = workers_cpu(system) - cpu, time.monotonic() - started
                return used, elapsed, appended

            # The baseline, in the same run: the healthy endpoint alone at the same rate.
            alone = gateway.post("/v1/webhooks", json={"url": f"{base}/alone"}).raise_for_status().json()["id"]
            time.sleep(2)
            base_used, base_elapsed, base_appended = window(10 * args.events)
            wait_for(log, len(base_appended), 60)
            gateway.delete(f"/v1/webhooks/{alone}").raise_for_status()

            gateway.post("/v1/webhooks", json={"url": f"http://127.0.0.1:{closed_port()}/dead"}).raise_for_status()
            with console.status(f"{args.events:,} events for the dead endpoint"):
                pipe = client.pipeline(transaction=False)
                for i in range(args.events):
                    append(pipe, stream, i)  # type: ignore[arg-type]
                pipe.execute()
            time.sleep(args.warmup)  # recorded, first attempts failed, the breaker open and doubling
            gateway.post("/v1/webhooks", json={"url": f"{base}/healthy"}).raise_for_status()
            time.sleep(2)
            used, elapsed, appended = window(args.events)
            wait_for(log, len(base_appended) + len(appended), 60)
        latencies = sorted((t - appended[i]) * 1000 for (_, i), t in log.received.items() if i in appended)
        counts = gateway.get("/v1/status").json()["webhooks"]
        console.print(f"deliveries: {counts.get('deliveries')}")
        console.print(f"healthy endpoint beside it: {len(latencies)} of {len(appended)} received, append → "
                      f"received p50 {statistics.median(latencies):.0f} ms")  # fmt: skip
        base_share, share = 100 * base_used / base_elapsed, 100 * used / elapsed
        console.print(f"webhook workers' CPU, the healthy endpoint alone: {base_share:.1f}% of a core "
                      f"(over {base_elapsed:.0f} s)")  # fmt: skip
        console.print(f"with {args.events:,} deliveries waiting on a dead endpoint beside it: {share:.1f}% "
                      f"(over {elapsed:.0f} s, after {args.warmup:g} s)")  # fmt: skip
        console.print(f"the dead endpoint's cost: {share - base_share:.1f}% of a core")
    finally:
        system.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
