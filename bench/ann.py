"""Nearest neighbours in the embedded index: the exact scan against the HNSW graph built in the background.

One run, one index (the product's EdgeIndex, Turbo8 dense vectors): the points are written, every query is
answered by the scan (the baseline) and by numpy over float32 (the truth), then the graph is built by the
service's own code (service_layer/index_builds.build: a child process, the swap) while a thread keeps
searching and writing, and the queries are asked again. Prints p50/p99 a query, recall@10 against
float32 exact search and against the scan, the search box's hybrid query (dense + sentence vectors +
BM25) before and after, what searches saw during the build, the build's wall and CPU time, memory per
point (the shard's directory, and this process's RSS), and searches once points were written after the
build (`--tails`).

    .venv/bin/python bench/ann.py --source real --points 100000       # SciFact sentences, MiniLM
    .venv/bin/python bench/ann.py --source synthetic --points 1000000 # clustered 384-d vectors
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.similarity import texts  # noqa: E402
from services.similarity.adapters.edge_build import Hnsw  # noqa: E402
from services.similarity.adapters.edge_index import EdgeIndex  # noqa: E402
from services.similarity.adapters.embedder import load_embedder  # noqa: E402
from services.similarity.adapters.index import Indexed  # noqa: E402
from services.similarity.domain.models import MINILM  # noqa: E402
from services.similarity.service_layer import index_builds  # noqa: E402

DIM, PAGE = 384, 2_000
WORDS = 5_000  # the words the points' texts draw from (a query's word matches 1 point in 5,000)


def synthetic(n: int, seed: int) -> np.ndarray:
    """Clustered unit vectors: n/100 centres, noise of about the centres' own spread."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(max(n // 100, 10), DIM)).astype(np.float32)
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 100_000):  # in slices: the noise of 1M rows at once is 1.5 GB of float64
        m = min(100_000, n - start)
        x = centers[rng.integers(0, len(centers), m)] + 0.6 * rng.normal(size=(m, DIM)).astype(np.float32)
        out[start : start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def real(n: int, queries: int, data: Path, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    path = cache / f"scifact-minilm-{n + queries}.npy"
    if not path.exists():
        corpus = texts(data, n + queries, random.Random(7))
        composed = [MINILM.text_of({"type": "claim", "name": t}) for t in corpus]
        embedder = load_embedder(MINILM.runtime, MINILM.max_tokens)
        vectors = np.concatenate([embedder.embed(composed[s : s + 1_000]) for s in range(0, len(composed), 1_000)])
        cache.mkdir(parents=True, exist_ok=True)
        np.save(path, vectors.astype(np.float32))
    every = np.load(path)
    return every[:n], every[n:]


def ask(index: EdgeIndex, queries: np.ndarray) -> tuple[list[float], list[list[str]]]:
    took, answers = [], []
    for q in queries:
        started = time.perf_counter()
        hits = index.search(q.tolist(), limit=10)
        took.append(time.perf_counter() - started)
        answers.append([h.entity.id for h in hits])
    return took, answers


def ask_others(index: EdgeIndex, queries: np.ndarray) -> str:
    """The search box (dense + sentence vectors + BM25, fused; a one-word query) and `similar?type=`."""
    hybrid, typed = [], []
    for n, q in enumerate(queries):
        started = time.perf_counter()
        index.search(q.tolist(), limit=10, text=f"w{n * 13 % WORDS}")
        hybrid.append(time.perf_counter() - started)
        started = time.perf_counter()
        index.search(q.tolist(), limit=10, types=["paper"])
        typed.append(time.perf_counter() - started)
    return (f"the search box (hybrid) p50 {ms(hybrid, 0.5)} ms, p99 {ms(hybrid, 0.99)} ms; filtered by type (half "
            f"the points) p50 {ms(typed, 0.5)} ms, p99 {ms(typed, 0.99)} ms")  # fmt: skip


def recall(answers: list[list[str]], truth: list[list[str]]) -> float:
    return float(np.mean([len(set(a) & set(t)) / len(t) for a, t in zip(answers, truth, strict=True)]))


def ms(values: list[float], q: float) -> str:
    return f"{np.quantile(values, q) * 1000:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", choices=("real", "synthetic"), default="real")
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "eval")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "platograph-ann")
    parser.add_argument("--threads", type=int, default=1, help="indexing threads of the build process")
    parser.add_argument("--ef", type=int, nargs="*", default=[64, 256, 512], help="other ef values to try after")
    parser.add_argument("--m", type=int, default=Hnsw.m)
    tails = "points rewritten after the build (a share of the corpus if < 1), then searched"
    parser.add_argument("--tails", type=float, nargs="*", default=[10_000, 0.2], help=tails)
    args = parser.parse_args()
    if args.source == "real":
        x, queries = real(args.points, args.queries, args.data, args.cache)
    else:
        every = synthetic(args.points + args.queries, 7)
        x, queries = every[: args.points], every[args.points :]
    names = [f"e:{i}" for i in range(len(x))]

    def point(i: int, name: str | None = None) -> Indexed:  # two words each, for the search box's BM25
        kind = "paper" if i % 2 else "claim"  # half and half, for the searches filtered by type
        return Indexed(id=names[i], type=kind, name=name or names[i], text=f"w{i % WORDS} v{i * 7 % 3001}")

    truth = [[names[j] for j in row] for row in np.argsort(-(queries @ x.T), axis=1)[:, :10]]

    work = Path(tempfile.mkdtemp(prefix="platograph-ann-"))
    process = psutil.Process()
    rss_empty = process.memory_info().rss
    index = EdgeIndex(work, "bench", DIM, hnsw=Hnsw(m=args.m, threads=args.threads))  # the service's defaults otherwise
    started = time.perf_counter()
    for s in range(0, len(x), PAGE):
        chunk = range(s, min(s + PAGE, len(x)))
        index.upsert([point(i) for i in chunk], x[chunk.start : chunk.stop])
    print(f"{len(x):,} points ({args.source}) written in {time.perf_counter() - started:.1f} s; "
          f"{len(queries)} queries")  # fmt: skip
    scan_took, scan_answers = ask(index, queries)
    rss_scan = process.memory_info().rss
    print(f"scan (baseline): p50 {ms(scan_took, 0.5)} ms, p99 {ms(scan_took, 0.99)} ms; "
          f"recall@10 vs float32 {recall(scan_answers, truth):.4f}; {ask_others(index, queries)}")  # fmt: skip

    lock, stop, during = threading.RLock(), threading.Event(), []

    def searcher() -> None:  # what a service sees while the graph is built: searches and writes go on
        n = 0
        while not stop.is_set():
            q = queries[n % len(queries)]
            started = time.perf_counter()
            with lock:
                index.search(q.tolist(), limit=10)
                if n % 10 == 0:
                    index.upsert([point(n % len(x), "moved")], x[n % len(x)][None, :])
            during.append(time.perf_counter() - started)
            n += 1
            time.sleep(0.005)

    thread = threading.Thread(target=searcher, daemon=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    thread.start()
    built = index_builds.build(index, lock, threading.Event(), answering=lambda: True)
    stop.set()
    thread.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert built is not None, "the build failed"
    child_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(f"build: {built.seconds:.1f} s wall, {child_cpu:.1f} s CPU in the build process "
          f"({child_cpu / len(x) * 1000:.2f} ms a point); during it {len(during)} searches (each with a "
          f"write every 10th): p50 {ms(during, 0.5)} ms, p99 {ms(during, 0.99)} ms, "
          f"max {max(during) * 1000:.0f} ms")  # fmt: skip
    print(f"the build held the index lock at most {built.longest_hold_s * 1000:.0f} ms (first page, swap)")
    ask(index, queries)  # the graph's pages come into memory
    graph_took, graph_answers = ask(index, queries)
    rss_graph = process.memory_info().rss
    print(f"with the graph: {ask_others(index, queries)}")
    for ef in args.ef:  # the recall a search's candidate list buys
        index._walk = index._q.SearchParams(hnsw_ef=ef)
        took, answers = ask(index, queries)
        print(f"  ef {ef}: p50 {ms(took, 0.5)} ms, p99 {ms(took, 0.99)} ms, recall@10 vs float32 "
              f"{recall(answers, truth):.4f}, vs the scan {recall(answers, scan_answers):.4f}")  # fmt: skip
    index._walk = index._q.SearchParams(hnsw_ef=index.hnsw.ef)
    written = 0
    for tail in sorted(int(t * len(x)) if t < 1 else int(t) for t in args.tails):
        # Points written after a build sit in a plain segment every search scans beside the graph: what the
        # quiet rule (PLATOGRAPH_INDEX_BUILD_QUIET_POINTS) and the growth rule leave at most.
        for s in range(written, min(tail, len(x)), PAGE):
            chunk = range(s, min(s + PAGE, tail, len(x)))
            index.upsert([point(i, "moved") for i in chunk], x[chunk.start : chunk.stop])
        written = max(written, min(tail, len(x)))
        ask(index, queries)
        took, answers = ask(index, queries)
        print(f"  a tail of {written:,} points written since the build: p50 {ms(took, 0.5)} ms, p99 {ms(took, 0.99)} "
              f"ms, recall@10 vs float32 {recall(answers, truth):.4f}")  # fmt: skip
    size = sum(f.stat().st_blocks * 512 for f in index.path.rglob("*") if f.is_file())  # allocated, not sparse
    print(f"HNSW (m {index.hnsw.m}, ef_construct {index.hnsw.ef_construct}, ef {index.hnsw.ef}): "
          f"p50 {ms(graph_took, 0.5)} ms, p99 {ms(graph_took, 0.99)} ms; recall@10 vs float32 "
          f"{recall(graph_answers, truth):.4f}, vs the scan {recall(graph_answers, scan_answers):.4f}; "
          f"speed-up p50 {statistics.median(scan_took) / statistics.median(graph_took):.1f}x")  # fmt: skip
    print(f"memory a point: {size / len(x):,.0f} B on disk (dense Turbo8 + its float32 copy as the one "
          f"sentence vector + BM25 + payload + graph); RSS {(rss_scan - rss_empty) / len(x):,.0f} B a point "
          f"scanned, {(rss_graph - rss_empty) / len(x):,.0f} B with the graph (the truth's float32 copy not "
          f"counted: made before)")  # fmt: skip
    index.drop()


if __name__ == "__main__":
    main()
