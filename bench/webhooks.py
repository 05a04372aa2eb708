"""Webhook benchmark: candidate.proposed events appended to the log, delivered to 10 local endpoints.

Prints, from one run on one machine:
- deliveries/s for a burst (first event appended → last delivery received), against a raw baseline:
  one asyncio process POSTing the same signed bodies to the same receiver over one connection an endpoint
  with the client the workers use (aiohttp)
  (ratio), and the CPU each process spent per delivery (per-process accounting);
- p50/p99 from `candidate.proposed` appended to delivery received, at a paced rate of events.
The receiver is a process of its own (bench/receiver.py: uvicorn, httptools), so it is not the limit.

Usage: python bench/webhooks.py [--burst N] [--rate EVENTS_PER_S] [--seconds S] [--workers W]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx
import psycopg
import redis
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import procs  # noqa: E402
from bench.receiver import Remote, started  # noqa: E402
from ops.supervisor import System, UpSettings  # noqa: E402
from platograph.contracts import CandidateProposed, encode_entry, new_envelope  # noqa: E402
from services.webhooks.adapters.sender import signature_headers  # noqa: E402
from services.webhooks.domain.messages import new_secret  # noqa: E402

console = Console()
ENDPOINTS = 10


def append(client: redis.Redis, stream: str, i: int) -> tuple[str, float]:
    proposed = CandidateProposed(a=f"claim:b{i % 50}", b=f"paper:b{i % 50}", score=0.8, kind="link", model="bench")
    envelope = new_envelope(proposed, producer="similarity")
    client.xadd(stream, encode_entry([envelope]))  # type: ignore[arg-type]
    return str(envelope.event_id), time.time()


def raw_baseline(base: str, n: int) -> float:
    """Deliveries/s from one asyncio process POSTing signed bodies straight to the receiver: one connection
    and one delivery at a time per endpoint, as the workers send a batch."""
    secret, body = new_secret(), '{"type":"candidate.proposed","data":{}}'

    async def endpoint(e: int) -> None:
        async with aiohttp.ClientSession() as client:  # the client the workers send with
            for i in range(e, n, ENDPOINTS):
                headers = signature_headers(f"raw-{i}", body, [secret])
                async with client.post(f"{base}/raw{e}", data=body.encode(), headers=headers) as response:
                    response.raise_for_status()
                    await response.read()

    async def run() -> float:
        started_at = time.perf_counter()
        await asyncio.gather(*(endpoint(e) for e in range(ENDPOINTS)))
        return n / (time.perf_counter() - started_at)

    return asyncio.run(run())


def received(remote: Remote, after: int, wanted: set[str]) -> list[float]:
    return [at for _, key, at in remote.records(after) if key in wanted]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--burst", type=int, default=1000, help=f"events appended at once (×{ENDPOINTS} deliveries)")
    parser.add_argument("--rate", type=float, default=20.0, help=f"events/s in the paced phase (×{ENDPOINTS})")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the paced phase")
    parser.add_argument("--workers", type=int, default=4, help="webhook worker processes")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="platograph-bench-webhooks-"))
    os.environ.setdefault("PLATOGRAPH_DATA_DIR", str(work / "data"))
    os.environ["PLATOGRAPH_CONSUME"] = "false"  # no embedding: the events are appended directly
    os.environ["PLATOGRAPH_WEBHOOK_ALLOWLIST"] = "127.0.0.0/8"
    os.environ["PLATOGRAPH_WEBHOOK_WORKERS"] = str(args.workers)
    os.environ["PLATOGRAPH_WEBHOOK_ENDPOINT_CONCURRENCY"] = str(args.workers)
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
        with started() as remote:
            for n in range(ENDPOINTS):
                gateway.post("/v1/webhooks", json={"url": f"{remote.base}/e{n}"}).raise_for_status()
            raw_cpu = procs.cpu_seconds(system)
            raw = raw_baseline(remote.base, 5000)
            raw_spent = procs.ms_per_item(raw_cpu, procs.cpu_seconds(system), 5000)
            time.sleep(2)  # workers up
            # Burst: throughput.
            before, cpu = remote.count(), procs.cpu_seconds(system)
            started_at = time.time()
            burst = {append(client, stream, i)[0] for i in range(args.burst)}
            with console.status(f"burst: {args.burst * ENDPOINTS} deliveries"):
                remote.wait_for(before + args.burst * ENDPOINTS, 600)
            burst_times = received(remote, before, burst)
            if not burst_times:
                sys.exit("no delivery of the burst arrived in 600 s: see the workers' logs")
            burst_rate = len(burst_times) / (max(burst_times) - started_at)
            spent = procs.ms_per_item(cpu, procs.cpu_seconds(system), len(burst_times))
            # Paced: latency from append to receipt.
            before = remote.count()
            appended: dict[str, float] = {}
            interval = 1 / args.rate
            next_at = time.monotonic()
            with console.status(f"paced: {args.rate:g} events/s for {args.seconds:g}s"):
                for i in range(int(args.rate * args.seconds)):
                    next_at += interval
                    time.sleep(max(0.0, next_at - time.monotonic()))
                    event_id, at = append(client, stream, args.burst + i)
                    appended[event_id] = at
                remote.wait_for(before + len(appended) * ENDPOINTS, 600)
            latencies = sorted((at - appended[key]) * 1000 for _, key, at in remote.records(before)
                               if key in appended)  # fmt: skip
            stages = where_the_time_went(system.env["DATABASE_URL"], appended)
        report(args, burst_rate, raw, latencies)
        console.print("paced, p50 ms: " + ", ".join(f"{name} {ms:.0f}" for name, ms in stages.items()))
        console.print(procs.cpu_line(raw_spent, "raw delivery"))
        console.print(procs.cpu_line(spent, "delivery in the burst"))
    finally:
        system.stop()
        shutil.rmtree(work, ignore_errors=True)


def where_the_time_went(database_url: str, appended: dict[str, float]) -> dict[str, float]:
    """p50 of each stage of the paced deliveries: appended → recorded by the dispatcher → first attempt."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            """SELECT d.event_id::text, extract(epoch FROM d.created_at),
                                      extract(epoch FROM min(a.attempted_at))
                                 FROM webhook_deliveries d JOIN webhook_attempts a ON a.delivery_id = d.id
                                WHERE d.event_id = ANY(%s::uuid[]) GROUP BY d.id""",
            [list(appended)],
        ).fetchall()
    recorded = [(float(r[1]) - appended[r[0]]) * 1000 for r in rows]
    attempted = [(float(r[2]) - float(r[1])) * 1000 for r in rows]
    return {"append → recorded": statistics.median(recorded), "recorded → sent": statistics.median(attempted)}


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
