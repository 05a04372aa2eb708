"""Core benchmark: a skewed graph pushed through ingest, then the neighborhood view under load.

Prints, from one run on one machine:
- events/s from the first POST to the last projected event, against COPYing the same rows straight into
  the same Postgres (ratio);
- neighborhood view p50/p99 and views/s under 50 concurrent clients (wrk), against the raw SQL for the
  same view (ratio of p50s), in YCSB's workload B by default: entities drawn from a Zipfian distribution
  (theta 0.99, scrambled over the ids), 5% of the requests rewriting the entity drawn (`--mix uniform`,
  `--writes 0` for the plain read load); the CPU of every process per request, and how many views the
  gateway served from the views it keeps;
- peak memory of each process.

Usage: python bench/core.py [--entities N] [--edges M] [--duration S]   (see bench/README.md)
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import orjson
import psutil
import psycopg
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import procs  # noqa: E402
from ops import loader  # noqa: E402
from ops.supervisor import System, UpSettings  # noqa: E402
from platograph.ontology import load as load_ontology  # noqa: E402
from services.graph.adapters import neighborhood_sql  # noqa: E402

console = Console()
WRK_THREADS = 2
TYPES = ["paper", "concept", "hypothesis", "claim", "finding", "question", "quote"]


def generate(path: Path, entities: int, edges: int, rng: random.Random) -> list[str]:
    """Entities of every type and edges with a heavy-tailed degree (a few hubs, a long tail)."""
    ids = [f"{TYPES[i % len(TYPES)]}:e{i}" for i in range(entities)]
    with path.open("wb") as f:
        for i, entity_id in enumerate(ids):
            f.write(
                orjson.dumps(
                    {
                        "kind": "entity",
                        "id": entity_id,
                        "name": f"Entity {i}",
                        "text": f"Text of entity {i}",
                        "description": "generated",
                    }
                )
                + b"\n"
            )
        for _ in range(edges):
            a = min(int(rng.paretovariate(1.1)) - 1, entities - 1)
            a = (a * 7919) % entities  # spread the hubs over the id space
            b = rng.randrange(entities)
            if a == b:
                b = (b + 1) % entities
            f.write(orjson.dumps({"kind": "edge", "source": ids[a], "target": ids[b], "type": "mentions"}) + b"\n")
    return ids


class MemorySampler(threading.Thread):
    """Peak RSS of every process of the system, sampled twice a second."""

    def __init__(self, processes: dict[str, int]) -> None:
        super().__init__(daemon=True)
        self.processes = {name: psutil.Process(pid) for name, pid in processes.items()}
        self.peak: dict[str, int] = dict.fromkeys(processes, 0)
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.5):
            for name, proc in self.processes.items():
                try:
                    rss = proc.memory_info().rss
                    rss += sum(c.memory_info().rss for c in proc.children(recursive=True))
                except psutil.Error:
                    continue
                self.peak[name] = max(self.peak[name], rss)


def processes_of(system: System) -> dict[str, int]:
    found = {c.name: c.process.pid for c in system.children if c.process is not None}
    if system.redis is not None:
        found["valkey (embedded)"] = system.redis._server._process.pid
    if system.postgres is not None:
        found["postgres (embedded)"] = system.postgres._server.get_pid()
    return found


def copy_baseline(database_url: str, path: Path) -> tuple[int, float]:
    """COPY the same entity and edge rows into fresh tables shaped like the read model."""
    entities, edges = [], []
    with path.open("rb") as f:
        for line in f:
            item = orjson.loads(line)
            if item["kind"] == "entity":
                entities.append(
                    (item["id"], item["id"].partition(":")[0], item["name"], item["text"], item["description"])
                )
            else:
                edges.append((item["source"], item["type"], item["target"]))
    edges = list(dict.fromkeys(edges))
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_entities, bench_edges")
        conn.execute(
            "CREATE TABLE bench_entities (id text PRIMARY KEY, type text, name text, text text, description text)"
        )
        conn.execute(
            "CREATE TABLE bench_edges (source text, type text, target text, PRIMARY KEY (source, type, target))"
        )
        started = time.perf_counter()
        with conn.cursor() as cur:
            with cur.copy("COPY bench_entities FROM STDIN") as copy:
                for row in entities:
                    copy.write_row(row)
            with cur.copy("COPY bench_edges FROM STDIN") as copy:
                for row in edges:
                    copy.write_row(row)
        seconds = time.perf_counter() - started
        conn.execute("DROP TABLE bench_entities, bench_edges")
    return len(entities) + len(edges), seconds


def raw_view_latency(
    database_url: str, ids: list[str], n: int, rng: random.Random, *, related: bool = True, exact: bool = False
) -> list[float]:
    """Milliseconds of the view's own SQL (related-by-similarity part included unless `related` is False)
    run straight on psycopg, one client, for random entities: the statement the graph tries first, or with
    `exact` the one that computes the view from the edges (the only one before migration 0008)."""
    ontology = load_ontology()
    wanted = neighborhood_sql.Related(limit=20, min_score=0.5, threshold=0.5) if related else None
    out = []
    with psycopg.connect(database_url) as conn:
        for _ in range(n):
            fast, fallback, params = neighborhood_sql.statement_and_params(
                ontology, rng.choice(ids), limit=50, group=None, cursor=None, related=wanted
            )
            started = time.perf_counter()
            row = conn.execute(fallback if exact else fast, params).fetchone()  # type: ignore[arg-type]
            if not exact and row is not None and not row[0]:
                conn.execute(fallback, params).fetchone()  # type: ignore[arg-type]
            out.append((time.perf_counter() - started) * 1000)
    return out


def hub_pages(database_url: str, hub: str, n: int) -> dict[str, float]:
    """p50 (ms) of the hub's first page and of the tenth page of its biggest group (50 neighbours a page),
    read from `adjacency` and, as every view was read before it, computed from the edges."""
    ontology = load_ontology()
    out: dict[str, float] = {}
    with psycopg.connect(database_url) as conn:
        out["degree"] = conn.execute("SELECT count(*) FROM adjacency WHERE x = %s", [hub]).fetchone()[0]  # type: ignore[index]
        group = conn.execute(
            "SELECT n_type FROM adjacency_groups WHERE x = %s ORDER BY count DESC LIMIT 1", [hub]
        ).fetchone()[0]  # type: ignore[index]
        cursor = None
        for _ in range(9):  # walk to the tenth page's cursor
            fast, _, params = neighborhood_sql.statement_and_params(ontology, hub, limit=50, group=group, cursor=cursor)
            document = orjson.loads(conn.execute(fast, params).fetchone()[1])  # type: ignore[arg-type, index]
            cursor = document["neighborhood"][0]["next_cursor"]
        for name, first, tenth, which in (
            ("adjacency", None, cursor, 0),
            ("from the edges", None, "r450", 1),  # the rank cursor the exact statement paged with
        ):
            for page, page_cursor in (("first", first), ("tenth", tenth)):
                times = []
                for _ in range(n):
                    statements = neighborhood_sql.statement_and_params(
                        ontology, hub, limit=50, group=None if page == "first" else group, cursor=page_cursor
                    )
                    sql = statements[1] if which and statements[1] else statements[0]
                    started = time.perf_counter()
                    conn.execute(sql, statements[2]).fetchone()
                    times.append((time.perf_counter() - started) * 1000)
                out[f"{name} {page}"] = statistics.median(times)
    return out


def draws(ids: list[str], mix: str, theta: float, n: int, rng: random.Random) -> list[str]:
    """The entities the view load asks for, in the order drawn: uniform, or Zipfian with YCSB's skew over
    the ids in a random order (YCSB scrambles its ranks likewise, so the popular ones are not neighbours)."""
    if mix == "uniform":
        return [rng.choice(ids) for _ in range(n)]
    order = ids[:]
    rng.shuffle(order)
    weights = 1.0 / np.arange(1, len(order) + 1) ** theta
    picked = np.random.default_rng(rng.randrange(2**32)).choice(len(order), size=n, p=weights / weights.sum())
    return [order[i] for i in picked]


def view_cache_lookups(gateway: str, key: str) -> dict[str, float]:
    """The gateway's counts of views asked of the views it keeps, by result (hit, miss, expired), and of
    views dropped, by why (`dropped:announced`, …)."""
    text = httpx.get(f"{gateway}/metrics", headers={"Authorization": f"Bearer {key}"}).text
    found = re.findall(r'^platograph_view_cache_lookups_total\{result="(\w+)"\} ([\d.e+]+)$', text, re.M)
    dropped = re.findall(r'^platograph_view_cache_dropped_total\{why="(\w+)"\} ([\d.e+]+)$', text, re.M)
    return {result: float(value) for result, value in found} | {f"dropped:{w}": float(v) for w, v in dropped}


def wrk(
    url: str,
    ids_file: Path,
    duration: int,
    connections: int,
    rate: int | None = None,
    key: str = "",
    writes: float = 0.0,
) -> dict[str, float]:
    """Run wrk against the neighborhood view (`writes`: the share of requests that rewrite an entity
    instead); p50/p99 in ms and requests/s. With `rate`, the requests leave on a fixed schedule (requests/s
    in all) instead of as fast as the answers come back."""
    script = ROOT / "bench" / "wrk_neighborhood.lua"
    env = os.environ | ({"WRK_RATE": str(rate / WRK_THREADS)} if rate else {}) | {"WRK_WRITES": str(writes)}
    command = ["wrk", f"-t{WRK_THREADS}", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script),
               "-H", f"Authorization: Bearer {key}"]  # fmt: skip
    out = subprocess.run(
        [*command, url, "--", str(ids_file)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout

    def ms(label: str) -> float:
        value, unit = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    done = re.search(r"^\s+(\d+) requests in", out, re.M)
    return {
        "requests": float(done.group(1)) if done else 0.0,
        "p50": ms("50%"),
        "p99": ms("99%"),
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "errors": float(errors.group(1)) if errors else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--edges", type=int, default=1_000_000)
    parser.add_argument("--duration", type=int, default=20, help="seconds of view load")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--projectors", type=int, default=None, help="default: what platograph up runs")
    parser.add_argument(
        "--rates", default="500,1000", help="requests/s offered on a fixed schedule, comma-separated (empty: none)"
    )
    parser.add_argument("--mix", choices=["zipfian", "uniform"], default="zipfian", help="which entities are read")
    parser.add_argument("--theta", type=float, default=0.99, help="the Zipfian skew (YCSB's default)")
    parser.add_argument("--writes", type=float, default=0.05, help="share of requests rewriting an entity read")
    parser.add_argument("--warmup", type=int, default=20, help="seconds of the same load before measuring")
    parser.add_argument("--ingest-only", action="store_true", help="stop after ingest and its COPY baseline")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed for the view load (Debian: apt-get install wrk)")
    rng = random.Random(42)
    work = Path(tempfile.mkdtemp(prefix="platograph-bench-"))
    data = work / "graph.ndjson"
    with console.status(f"generating {args.entities:,} entities and {args.edges:,} edges"):
        ids = generate(data, args.entities, args.edges, rng)
    (work / "ids.txt").write_text("\n".join(draws(ids, args.mix, args.theta, 200_000, rng)) + "\n")
    os.environ.setdefault("PLATOGRAPH_DATA_DIR", str(work / "data"))
    if args.projectors is not None:
        os.environ["PLATOGRAPH_PROJECTORS"] = str(args.projectors)
    # The core path only: embedding 100k entities would take the cores for minutes (bench/similarity.py
    # measures that). Views read related-by-similarity from the (here empty) candidates table in the same
    # query; the gateway asks the similarity service for its thresholds once every 5 s.
    os.environ["PLATOGRAPH_CONSUME"] = "false"
    # The load is one key's: its budgets (6,000 reads a minute by default) would answer most views 429.
    os.environ["PLATOGRAPH_RATE_READ"] = os.environ["PLATOGRAPH_RATE_WRITE"] = "100000000/minute"
    system = System(UpSettings())
    try:
        system.start_infrastructure()
        system.plan()
        system.start_children()
        sampler = MemorySampler(processes_of(system))
        sampler.start()
        started, before_ingest = time.perf_counter(), procs.cpu_seconds(system)
        totals = loader.import_file(system.gateway_url, data, key=system.admin_key, show_progress=True)
        ingest_seconds = time.perf_counter() - started
        events = int(totals["event_count"])
        per_event = {name: ms * 1000 for name, ms in
                     procs.ms_per_item(before_ingest, procs.cpu_seconds(system), events).items()}  # fmt: skip
        # Fresh planner statistics, as autovacuum would gather within a minute of a bulk load.
        with psycopg.connect(system.env["DATABASE_URL"], autocommit=True) as conn:
            conn.execute("ANALYZE")
        rows, copy_seconds = copy_baseline(system.env["DATABASE_URL"], data)
        if args.ingest_only:
            eps, rps = events / ingest_seconds, rows / copy_seconds
            console.print(f"{events:,} events in {ingest_seconds:.1f} s: {eps:,.0f} events/s, first POST → last "
                          f"projected; COPY {rps:,.0f} rows/s; ratio {eps / rps:.3f}")  # fmt: skip
            console.print(ingest_cpu_line(per_event, copy_seconds, rows))
            return
        raw = raw_view_latency(system.env["DATABASE_URL"], ids, 2000, rng)
        bare = raw_view_latency(system.env["DATABASE_URL"], ids, 2000, rng, related=False)
        console.print(f"raw view SQL p50 without the related part: {statistics.median(bare):.2f} ms")
        exact = raw_view_latency(system.env["DATABASE_URL"], ids, 2000, rng, exact=True)
        console.print(f"raw view SQL p50, random entities: {statistics.median(raw):.2f} ms from adjacency, "
                      f"{statistics.median(exact):.2f} ms computed from the edges (before migration 0008)")  # fmt: skip
        hub = hub_pages(system.env["DATABASE_URL"], ids[0], 200)
        console.print(f"hub {ids[0]} ({hub['degree']:,.0f} neighbours), p50 ms: " + ", ".join(
            f"{k} {v:.2f}" for k, v in hub.items() if k != "degree"))  # fmt: skip
        single = single_client_latency(system.gateway_url, ids, 1000, rng, system.api_headers())
        if args.warmup:  # a service that has run a while: the views it keeps are those its load asks for
            with console.status(f"warming up: {args.connections} clients for {args.warmup}s"):
                wrk(system.gateway_url, work / "ids.txt", args.warmup, args.connections, key=system.admin_key,
                    writes=args.writes)  # fmt: skip
        with console.status(f"view load: {args.connections} clients for {args.duration}s"):
            cpu, lookups = procs.cpu_seconds(system), view_cache_lookups(system.gateway_url, system.admin_key)
            views = wrk(system.gateway_url, work / "ids.txt", args.duration, args.connections, key=system.admin_key,
                        writes=args.writes)  # fmt: skip
            per_view = procs.ms_per_item(cpu, procs.cpu_seconds(system), int(views["requests"]))
            after = view_cache_lookups(system.gateway_url, system.admin_key)
            looked = {k: v - lookups.get(k, 0.0) for k, v in after.items()}
        paced = {}
        for rate in [int(r) for r in args.rates.split(",") if r.strip()]:
            with console.status(f"view load: {rate} requests/s offered by {args.connections} clients"):
                paced[rate] = wrk(system.gateway_url, work / "ids.txt", args.duration, args.connections, rate,
                                  key=system.admin_key, writes=args.writes)  # fmt: skip
        sampler.stopped.set()
        report(args, events, ingest_seconds, rows, copy_seconds, raw, single, views, paced, sampler.peak)
        console.print(ingest_cpu_line(per_event, copy_seconds, rows))
        load = f"{args.mix} mix, {args.writes:.0%} writes"
        console.print(procs.cpu_line(per_view, f"request ({load}), closed loop of {args.connections} clients"))
        serving = sum(ms for name, ms in per_view.items() if name in ("gateway", "graph", "postgres"))
        console.print(f"gateway + graph + Postgres: {serving:.2f} ms of CPU a request, {load} (issue 25's aim: 1.2)")
        asked = sum(v for k, v in looked.items() if not k.startswith("dropped:"))
        dropped = ", ".join(f"{k[8:]} {v:,.0f}" for k, v in looked.items() if k.startswith("dropped:"))
        console.print(
            f"views served from the gateway's memory: {looked.get('hit', 0.0):,.0f} of {asked:,.0f} asked "
            f"({looked.get('hit', 0.0) / asked if asked else 0.0:.1%}; PLATOGRAPH_VIEW_CACHE_MB="
            f"{os.environ.get('PLATOGRAPH_VIEW_CACHE_MB', 'default')}); views dropped: {dropped or 'none'}"
        )
    finally:
        system.stop()
        shutil.rmtree(work, ignore_errors=True)


def ingest_cpu_line(per_event: dict[str, float], copy_seconds: float, rows: int) -> str:
    spent = ", ".join(f"{name} {us:.0f}" for name, us in per_event.items() if us >= 1)
    return (f"CPU µs per event, first POST → last projected: {spent}; all {sum(per_event.values()):.0f}; "
            f"COPY: {1e6 * copy_seconds / rows:.1f} µs a row (wall)")  # fmt: skip


def single_client_latency(
    gateway: str, ids: list[str], n: int, rng: random.Random, headers: dict[str, str]
) -> list[float]:
    """Milliseconds per neighborhood view through the gateway, one client, no queueing."""
    out = []
    with httpx.Client(base_url=gateway, headers=headers) as client:
        for _ in range(n):
            started = time.perf_counter()
            client.get(f"/v1/entities/{rng.choice(ids)}/neighborhood").raise_for_status()
            out.append((time.perf_counter() - started) * 1000)
    return out


def report(
    args: argparse.Namespace,
    events: int,
    ingest_s: float,
    rows: int,
    copy_s: float,
    raw: list[float],
    single: list[float],
    views: dict[str, float],
    paced: dict[int, dict[str, float]],
    peak: dict[str, int],
) -> None:
    raw_p50 = statistics.median(raw)
    raw_p99 = statistics.quantiles(raw, n=100)[98]
    table = Table(
        "measure",
        "Platograph",
        "raw baseline",
        "ratio",
        title=f"{args.entities:,} entities, {args.edges:,} edges, {os.cpu_count()} CPUs",
    )
    eps, rps = events / ingest_s, rows / copy_s
    table.add_row("events/s, first POST → last projected", f"{eps:,.0f}", f"{rps:,.0f} rows/s COPY", f"{eps / rps:.3f}")
    one_p50, one_p99 = statistics.median(single), statistics.quantiles(single, n=100)[98]
    table.add_row("view p50, 1 client (ms)", f"{one_p50:.2f}", f"{raw_p50:.2f} raw SQL", f"{one_p50 / raw_p50:.1f}×")
    table.add_row("view p99, 1 client (ms)", f"{one_p99:.2f}", f"{raw_p99:.2f} raw SQL", f"{one_p99 / raw_p99:.1f}×")
    table.add_row(
        f"view p50, {args.connections} clients (ms)",
        f"{views['p50']:.2f}",
        f"{raw_p50:.2f} raw SQL",
        f"{views['p50'] / raw_p50:.1f}×",
    )
    table.add_row(
        f"view p99, {args.connections} clients (ms)",
        f"{views['p99']:.2f}",
        f"{raw_p99:.2f} raw SQL",
        f"{views['p99'] / raw_p99:.1f}×",
    )
    table.add_row(f"requests/s ({args.writes:.0%} writes), {args.connections} clients", f"{views['rps']:,.0f}", "", "")
    for rate, load in paced.items():
        table.add_row(
            f"p50 / p99 at {rate:,} requests/s offered (ms)",
            f"{load['p50']:.2f} / {load['p99']:.2f}",
            f"{raw_p50:.2f} / {raw_p99:.2f} raw SQL",
            f"achieved {load['rps']:,.0f}/s",
        )
    errors = views["errors"] + sum(load["errors"] for load in paced.values())
    table.add_row("non-2xx view responses", f"{errors:.0f}", "", "")
    console.print(table)
    mem = Table("process", "peak RSS (MiB)", title="memory")
    for name, value in sorted(peak.items()):
        mem.add_row(name, f"{value / 2**20:,.0f}")
    console.print(mem)


if __name__ == "__main__":
    main()
