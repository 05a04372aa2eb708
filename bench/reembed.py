"""Re-embedding benchmark: the whole corpus re-embedded with the second model by RQ workers.

Prints, from one run on one machine:
- entities/s of the job (start → last batch in), against the raw encoder on the same texts in the same run, with
  as many processes as workers (ratio; the orchestration should cost almost nothing beside the model);
- peak RSS of the similarity service and of each worker;
- p50/p99 of "similar" queries while the job runs, against the same queries idle.

Usage: python bench/reembed.py [--entities N] [--workers W]
       python bench/reembed.py --scale --to all-minilm-l6-v2-int8 --entities 100000 [--queries 180]

`--scale` measures what grows with the corpus: it loads the entities with the similarity consumer off (the
first model indexes nothing), runs one job to `--to` and reports its rate against the raw encoder and the
peak RSS of every worker. Used for the 20k / 50k / 100k figures, where e5's ~20 texts/s per core would
take hours (the orchestration is the same whichever model embeds). With `--queries S` it then measures
"similar" latency on that full collection, idle and during S seconds of a job back to the first model
(cancelled then, for the same reason).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.procs import cpu_line, cpu_seconds, ms_per_item  # noqa: E402
from ops.supervisor import System, UpSettings  # noqa: E402
from services.similarity.domain.models import E5_SMALL, REGISTRY, ModelSpec  # noqa: E402

console = Console()
WORDS = ("models representations converge scale data vision language memory sleep proteins markets galaxies "
         "features attention sparse causal structure generalization recall climate soil birds").split()  # fmt: skip


def corpus(n: int) -> list[dict[str, str]]:
    out = []
    for i in range(n):
        words = [WORDS[(i * k + k * k) % len(WORDS)] for k in range(1, 9)]
        out.append({"id": f"claim:r{i}", "name": f"Claim {i}: {' '.join(words[:4])}",
                    "text": f"We find that {' '.join(words)} in setting {i}."})  # fmt: skip
    return out


def _raw_share(job: tuple[str, list[str]]) -> int:
    os.environ["OMP_NUM_THREADS"] = "1"  # as the supervisor starts re-embed workers
    from services.similarity.adapters.embedder import load_embedder

    model, texts = REGISTRY[job[0]], job[1]
    embedder = load_embedder(model.runtime, model.max_tokens, threads=1)
    for start in range(0, len(texts), 128):
        embedder.embed(texts[start : start + 128])
    return len(texts)


def raw_rate(model: ModelSpec, texts: list[str], processes: int) -> float:
    """The encoder alone: the same texts, split over as many single-threaded processes as workers."""
    shares = [(model.name, texts[i::processes]) for i in range(processes)]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        pool.map(_raw_share, [(model.name, ["warm up"])] * processes)  # load the model in each first
        started = time.perf_counter()
        pool.map(_raw_share, shares)
        return len(texts) / (time.perf_counter() - started)


def query_latencies(
    site: str, ids: list[str], stop: threading.Event, out: list[float], headers: dict[str, str] | None = None
) -> None:
    with httpx.Client(base_url=site, timeout=30, headers=headers) as client:
        i = 0
        while not stop.is_set():
            started = time.perf_counter()
            client.get(f"/v1/entities/{ids[i % len(ids)]}/similar", params={"limit": 10}).raise_for_status()
            out.append((time.perf_counter() - started) * 1000)
            i += 1
            time.sleep(0.02)


def run_job(api: httpx.Client, system: System, peaks: dict[str, int], model: ModelSpec) -> tuple[dict[str, Any], float]:
    """Re-embed to `model` and wait for the switch; returns the job and the seconds until every batch was in."""
    job = api.post("/v1/reembed", json={"model": model.name}).json()
    started, batches_s, cpu_before, cpu_after = time.perf_counter(), 0.0, cpu_seconds(system), {}
    with console.status(f"re-embedding {job['total']:,} entities"):
        while (job := api.get(f"/v1/reembed/{job['id']}").json())["status"] == "running":
            if not batches_s and job["done"] >= job["total"]:
                batches_s, cpu_after = time.perf_counter() - started, cpu_seconds(system)
            for child in system.children:
                if child.process and child.name.startswith(("reembed-worker", "similarity")):
                    rss = psutil.Process(child.process.pid).memory_info().rss
                    peaks[child.name] = max(peaks.get(child.name, 0), rss)
            time.sleep(0.2)
        # The candidates follow the switch in the background: let that finish before anything is measured.
        while job["status"] == "done" and job.get("candidates") is None:
            time.sleep(0.5)
            job = api.get(f"/v1/reembed/{job['id']}").json()
    cpu_after = cpu_after or cpu_seconds(system)  # the last batch came in between two polls
    job["cpu_ms_per_entity"] = ms_per_item(cpu_before, cpu_after, job["total"])
    return job, batches_s or time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entities", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--to", default=E5_SMALL.name, choices=sorted(REGISTRY), help="the model to re-embed with")
    parser.add_argument("--scale", action="store_true", help="throughput and memory only (see above)")
    parser.add_argument("--queries", type=float, default=0, metavar="S",
                        help="with --scale: then query latency idle, and for S seconds of a job back")  # fmt: skip
    args = parser.parse_args()
    target = REGISTRY[args.to]
    if args.scale:
        os.environ["PLATOGRAPH_CONSUME"] = "false"
        os.environ["PLATOGRAPH_MODEL"] = next(name for name in REGISTRY if name != target.name)
    work = Path(tempfile.mkdtemp(prefix="platograph-bench-reembed-"))
    os.environ.setdefault("PLATOGRAPH_DATA_DIR", str(work / "data"))
    os.environ["PLATOGRAPH_REEMBED_WORKERS"] = str(args.workers)
    os.environ["PLATOGRAPH_WEBHOOK_WORKERS"] = "1"
    system = System(UpSettings())
    entities = corpus(args.entities)
    try:
        system.start_infrastructure()
        system.plan()
        system.start_children()
        site = system.gateway_url
        api = httpx.Client(base_url=site, timeout=120, headers=system.api_headers())
        position = ""
        for start in range(0, len(entities), 1000):
            response = api.post("/v1/entities", json=entities[start : start + 1000])
            response.raise_for_status()
            position = response.json()["position"]
        if args.scale:
            with console.status("projecting the corpus"):
                api.get(f"/v1/entities/{entities[-1]['id']}", params={"after": position}).raise_for_status()
            scale(args, api, system, target, entities)
            if args.queries:
                scale_queries(args, api, system, [e["id"] for e in entities])
            return
        with console.status("the first model indexes the corpus"):
            while (s := api.get("/v1/status").json()["similarity"])["indexed"] < len(entities) or s["lag"]:
                time.sleep(1)
        ids = [e["id"] for e in entities]
        # Throughput: a job with nothing else running (the ratio is about orchestration cost).
        peaks: dict[str, int] = {}
        job, batches_s = run_job(api, system, peaks, target)
        rate = job["done"] / batches_s
        total_rate = job["done"] / (job["finished_at"] - job["started_at"])
        raw = raw_rate(target, [target.text_of(e) for e in entities], args.workers)
        # Queries: idle, then during a second job (rolled back to the first model, then to e5 again).
        api.post("/v1/reembed/rollback").raise_for_status()
        with sampling(site, ids) as idle:
            time.sleep(10)
        with sampling(site, ids) as busy:
            second, _ = run_job(api, system, peaks, target)
        job["second_rate"] = second["done"] / (second["finished_at"] - second["started_at"])
        job["total_rate"] = total_rate
        report(args, job, rate, raw, idle, busy, peaks)
    finally:
        system.stop()
        shutil.rmtree(work, ignore_errors=True)


def scale(args: argparse.Namespace, api: httpx.Client, system: System, target: ModelSpec,
          entities: list[dict[str, str]]) -> None:  # fmt: skip
    peaks: dict[str, int] = {}
    job, batches_s = run_job(api, system, peaks, target)
    rate = job["done"] / batches_s
    raw = raw_rate(target, [target.text_of(e) for e in entities], args.workers)
    title = f"re-embed {args.entities:,} entities → {target.name}, {args.workers} workers (--scale)"
    table = Table("measure", "Platograph", "baseline", "ratio", title=title)
    table.add_row("entities/s, batches (start → last batch in)", f"{rate:.1f}", f"{raw:.1f} raw encoder",
                  f"{rate / raw:.2f}")  # fmt: skip
    total = job["done"] / (job["finished_at"] - job["started_at"])
    table.add_row("entities/s, start → switch (with the diff)", f"{total:.1f}", "", "")
    for name, peak in sorted(peaks.items()):
        table.add_row(f"peak RSS {name} (MiB)", f"{peak / 2**20:.0f}", "", "")
    table.add_row("status / failed batches", f"{job['status']} / {len(job['failed_batches'])}", "", "")
    console.print(table)
    console.print(cpu_line(job.get("cpu_ms_per_entity", {}), "entity during the batches"))


def scale_queries(args: argparse.Namespace, api: httpx.Client, system: System, ids: list[str]) -> None:
    """Query latency on the new model's full collection: idle, then while a job back to the first model runs
    (its batch phase: workers embedding, the service taking their vectors in). The job is cancelled after
    `--queries` seconds: e5 would take hours over 100k entities here."""
    with sampling(system.gateway_url, ids) as idle:
        time.sleep(20)
    back = api.post("/v1/reembed", json={"model": os.environ["PLATOGRAPH_MODEL"]}).json()
    time.sleep(5)  # the workers have loaded the model and are embedding
    with sampling(system.gateway_url, ids) as busy:
        time.sleep(args.queries)
    done = api.get(f"/v1/reembed/{back['id']}").json()["done"]
    api.post(f"/v1/reembed/{back['id']}/cancel").raise_for_status()

    title = f'"similar" over {len(ids):,} entities, idle and during a job ({done:,} re-embedded meanwhile)'
    table = Table("measure", "during the job", "idle", "ratio", title=title)
    latency_rows(table, busy, idle)
    table.add_row("queries", f"{len(busy):,}", f"{len(idle):,}", "")
    console.print(table)


def latency_rows(table: Table, busy: list[float], idle: list[float]) -> None:
    """p50 and p99 during the job against idle, with their ratio."""
    for q in (50, 99):
        during, alone = (statistics.quantiles(values, n=100)[q - 1] for values in (busy, idle))
        table.add_row(f"query p{q} (ms) during / idle", f"{during:.1f}", f"{alone:.1f}", f"{during / alone:.2f}")


@contextmanager
def sampling(site: str, ids: list[str]) -> Iterator[list[float]]:
    """Query latencies (ms), taken on a thread for as long as the block runs."""
    out: list[float] = []
    stop = threading.Event()
    sampler = threading.Thread(target=query_latencies, args=(site, ids, stop, out))
    sampler.start()
    try:
        yield out
    finally:
        stop.set()
        sampler.join()


def report(args: argparse.Namespace, job: dict[str, object], rate: float, raw: float, idle: list[float],
           busy: list[float], peaks: dict[str, int]) -> None:  # fmt: skip
    table = Table("measure", "Platograph", "baseline", "ratio",
                  title=f"re-embed {args.entities:,} entities → {args.to}, {args.workers} workers")  # fmt: skip
    table.add_row("entities/s, batches (start → last batch in)", f"{rate:.1f}", f"{raw:.1f} raw encoder",
                  f"{rate / raw:.2f}")  # fmt: skip
    table.add_row("entities/s, start → switch (with the diff)", f"{job['total_rate']:.1f}", "", "")
    table.add_row("entities/s, start → switch, under query load", f"{job['second_rate']:.1f}", "", "")
    latency_rows(table, busy, idle)
    for name, peak in sorted(peaks.items()):
        table.add_row(f"peak RSS {name} (MiB)", f"{peak / 2**20:.0f}", "", "")
    table.add_row("status / failed batches", f"{job['status']} / {len(job['failed_batches'])}", "", "")  # type: ignore[arg-type]
    console.print(table)


if __name__ == "__main__":
    main()
