"""Re-embedding's candidate diff and follow-up at scale: memory of every process, and the phases' time.

Writes a corpus straight into Postgres (entities, and 7.5 proposed candidate rows an entity: every pair of
each group of 16 entities) and both models' collections (synthetic unit vectors: groups of 16 around a
centre, the new model's groups shifted by 8, so the switch gains, loses and re-scores pairs), records a
job whose every batch is in, then starts `platograph up` and times the coordinator's diff shards (RQ jobs
on the re-embed workers, each a range searched by the similarity service and staged in Postgres), the
switch, and the follow-up (every entity proposed again, the lost pairs withdrawn). Prints the peak RSS of
the coordinator, of each worker and of the similarity service (and its growth over what it held at the
start: the index itself grows with the corpus; what the phases add must not), for comparing runs at two
corpus sizes.

Usage: python bench/reembed_diff.py --entities 100000 [--workers 2]
       python bench/reembed_diff.py --entities 1000000 --for 900   # the memory of a run's first 15 minutes
       python bench/reembed_diff.py --entities 1000000 --for 900 --follow-only   # the follow-up's alone
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import psycopg
import redis
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ops.supervisor import System, UpSettings  # noqa: E402
from services.graph.adapters import migrations  # noqa: E402
from services.similarity.adapters.edge_index import EdgeIndex  # noqa: E402
from services.similarity.adapters.index import Indexed  # noqa: E402
from services.similarity.adapters.reembed_store import ReembedStore  # noqa: E402
from services.similarity.domain.models import E5_SMALL, MINILM, ModelSpec  # noqa: E402

console = Console()
GROUP = 16
NOISE = 0.25  # cosine within a group ≈ 1 / (1 + NOISE²) ≈ 0.94: above both models' thresholds
WATCHED = ("coordinator", "reembed-worker", "similarity")
FOLLOW_TAG = "bench-follow"


def ident(i: int) -> str:
    return f"claim:s{i:08d}"


def vectors(n: int, shift: int, seed: int, dimension: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    groups = (np.arange(n) + shift) // GROUP
    centres = rng.standard_normal((int(groups.max()) + 1, dimension)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    noise = rng.standard_normal((n, dimension)).astype(np.float32) * (NOISE / np.sqrt(dimension))
    out = centres[groups] + noise
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def write_postgres(url: str, n: int) -> int:
    """Entities, and every pair within each group proposed by the first model. Returns the candidate rows."""
    rows = 0
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy("COPY entities (id, type, name, text, description, attributes, status, base_status, version, "
                      "position, status_position, created_at, updated_at) FROM STDIN") as copy:  # fmt: skip
            for i in range(n):
                copy.write_row((ident(i), "claim", f"Claim {i}", f"Claim {i} of group {i // GROUP}.", "", "{}",
                                "active", "active", 1, i + 1, i + 1, "now", "now"))  # fmt: skip
        with cur.copy("COPY candidates (a, b, a_type, b_type, score, kind, reason, model, state, state_reason, "
                      "position, state_position, decision_position, status, created_at, updated_at) "
                      "FROM STDIN") as copy:  # fmt: skip
            for start in range(0, n, GROUP):
                members = [ident(i) for i in range(start, min(start + GROUP, n))]
                for x, a in enumerate(members):
                    for b in members[x + 1 :]:
                        copy.write_row((a, b, "claim", "claim", 0.94, "link", "cosine 0.940", MINILM.key, "proposed",
                                        "", n + rows + 1, n + rows + 1, 0, "proposed", "now", "now"))  # fmt: skip
                        rows += 1
        conn.commit()
    return rows


def write_index(root: Path, model: ModelSpec, n: int, shift: int) -> None:
    index = EdgeIndex(root, model.key, model.dimension)
    every = vectors(n, shift, seed=shift, dimension=model.dimension)
    for start in range(0, n, 5000):
        ids = range(start, min(start + 5000, n))
        items = [Indexed(id=ident(i), type="claim", name=f"Claim {i}", text=f"Claim {i}, group {(i + shift) // GROUP}.")
                 for i in ids]  # fmt: skip
        index.upsert(items, every[start : start + len(items)])
    index.close()


def rss_anon(pid: int) -> int:
    """Bytes of the process's anonymous memory (its heaps), without the file pages it maps: an index's
    storage mapped in counts in RSS as it is read, and grows with the corpus whatever the pass does."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1000, help="entities a range (a diff shard)")
    parser.add_argument("--follow-only", action="store_true",
                        help="no job: the new model answers already and the follow-up runs alone")  # fmt: skip
    parser.add_argument("--for", dest="seconds", type=float, default=0, metavar="S",
                        help="stop after S seconds of the phases and report the memory so far (for corpora whose "
                             "exact searches would take hours here)")  # fmt: skip
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="platograph-bench-reembed-diff-"))
    os.environ |= {"PLATOGRAPH_DATA_DIR": str(work / "data"), "PLATOGRAPH_REEMBED_WORKERS": str(args.workers),
                   "PLATOGRAPH_WEBHOOK_WORKERS": "1", "PLATOGRAPH_CONSUME": "false",
                   "PLATOGRAPH_MODEL": MINILM.name}  # fmt: skip
    system = System(UpSettings())
    n = args.entities
    try:
        system.start_infrastructure()
        system.plan()
        env = system.env
        started = time.perf_counter()
        with console.status(f"writing {n:,} entities, their candidates and two collections"):
            migrations.upgrade(env["DATABASE_URL"])
            rows = write_postgres(env["DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://"), n)
            index_dir = Path(env.get("PLATOGRAPH_INDEX_DIR", str(work / "data" / "index")))
            write_index(index_dir, MINILM, n, shift=0)
            write_index(index_dir, E5_SMALL, n, shift=GROUP // 2)
            client = redis.Redis.from_url(env["REDIS_URL"])
            store = ReembedStore(client, env.get("PLATOGRAPH_STREAM", "platograph:events"))
            store.mark_indexed()
            plan = [{"after": ident(i - 1) if i else "", "last": ident(min(i + args.batch, n) - 1),
                     "count": min(args.batch, n - i)} for i in range(0, n, args.batch)]  # fmt: skip
            if args.follow_only:  # switched already; the follow-up's mark set, as a switch leaves it
                store.set_alias(E5_SMALL.name, MINILM.name)
                store.follow_candidates(FOLLOW_TAG)
                job = ""
            else:
                store.set_alias(MINILM.name, None)
                job = store.create(E5_SMALL.name, MINILM.name, False, plan)
                for k, batch in enumerate(plan):
                    store.mark_done(job, k, batch["count"])
        console.print(f"{n:,} entities, {rows:,} candidate rows, two collections written in "
                      f"{time.perf_counter() - started:.0f} s")  # fmt: skip
        peaks: dict[str, int] = {}
        anon: dict[str, int] = {}
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.2):
                for child in system.children:
                    if child.process and child.name.startswith(WATCHED):
                        try:
                            rss = psutil.Process(child.process.pid).memory_info().rss
                        except psutil.NoSuchProcess:
                            continue
                        peaks[child.name] = max(peaks.get(child.name, 0), rss)
                        if child.name == "similarity":
                            anon["peak"] = max(anon.get("peak", 0), rss_anon(child.process.pid))

        system.start_children()
        similarity = next(c for c in system.children if c.name == "similarity")
        assert similarity.process is not None
        at_start = psutil.Process(similarity.process.pid).memory_info().rss
        anon["start"] = rss_anon(similarity.process.pid)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        phase_started = time.perf_counter()
        times: dict[str, float] = {}
        with console.status("diff shards, switch, follow-up") as status:
            while args.follow_only:
                status.update(f"follow-up only: proposed up to {store.follow_cursor(FOLLOW_TAG)}")
                if store.candidates_to_follow() is None:
                    times["follow"] = time.perf_counter() - phase_started
                    break
                if args.seconds and time.perf_counter() - phase_started > args.seconds:
                    break
                time.sleep(0.5)
            while not args.follow_only:
                record = store.job(job) or {}
                status.update(f"{record.get('status')}: {record.get('diffed_batches')} of {len(plan)} ranges diffed")
                if record.get("status") != "running" and "diff" not in times:
                    times["diff"] = time.perf_counter() - phase_started
                if record.get("candidates") is not None:
                    times["follow"] = time.perf_counter() - phase_started - times["diff"]
                    break
                if args.seconds and time.perf_counter() - phase_started > args.seconds:
                    break
                if record.get("status") in ("failed", "cancelled"):
                    raise SystemExit(f"the job ended {record['status']}: {record.get('error')}")
                time.sleep(0.5)
        stop.set()
        sampler.join()
        if "follow" not in times or args.follow_only:  # stopped by --for, or the follow-up alone
            elapsed = time.perf_counter() - phase_started
            if args.follow_only:
                console.print(f"follow-up only: {'done' if 'follow' in times else 'stopped'} after {elapsed:.0f} s, "
                              f"proposed up to {store.follow_cursor(FOLLOW_TAG)} of {ident(n - 1)}")  # fmt: skip
            else:
                console.print(f"stopped after {elapsed:.0f} s: status {record.get('status')}, "
                              f"{record.get('diffed_batches')} of {len(plan)} ranges diffed")  # fmt: skip
            for name, peak in sorted(peaks.items()):
                console.print(f"peak RSS {name}: {peak / 2**20:.0f} MiB")
            console.print(f"similarity: RSS at start {at_start / 2**20:.0f} MiB; anonymous RSS "
                          f"{anon['start'] / 2**20:.0f} → {anon.get('peak', 0) / 2**20:.0f} MiB")  # fmt: skip
            return
        diff, followed = record["diff"], record["candidates"]
        table = Table("measure", "value", title=f"re-embed diff and follow-up, {n:,} entities, {rows:,} candidate "
                                                f"rows, {len(plan)} ranges, {args.workers} workers")  # fmt: skip
        table.add_row(
            "diff: gained / lost / re-scored", f"{diff['gained']:,} / {diff['lost']:,} / {diff['rescored']:,}"
        )
        table.add_row("follow-up: proposed / withdrawn", f"{followed['proposed']:,} / {followed['withdrawn']:,}")
        table.add_row("diff phase (s): ranges queued → switch", f"{times['diff']:.0f}")
        table.add_row("follow-up (s): switch → counts", f"{times['follow']:.0f}")
        for name, peak in sorted(peaks.items()):
            table.add_row(f"peak RSS {name} (MiB)", f"{peak / 2**20:.0f}")
        table.add_row("similarity: RSS at start → peak (MiB)",
                      f"{at_start / 2**20:.0f} → {peaks.get('similarity', 0) / 2**20:.0f}")  # fmt: skip
        table.add_row("similarity: anonymous RSS at start → peak (MiB)",
                      f"{anon['start'] / 2**20:.0f} → {anon.get('peak', 0) / 2**20:.0f}")  # fmt: skip
        console.print(table)
    finally:
        system.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
