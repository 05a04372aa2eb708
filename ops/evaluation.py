"""`platograph eval`: similarity quality on real data, measured through the running system's API.

- Link recovery (SciFact): abstracts and claims are imported as entities with no edges; for each claim
  with evidence, the rank of its gold abstracts among `GET /v1/entities/{claim}/similar?type=paper`.
- Threshold: how many gold pairs, and how many best non-gold abstracts, reach each threshold.
- Embedder sanity (STS-B dev): Spearman of `POST /v1/compare` cosines against human scores.
- Duplicate flag (PAWS dev; SciFact negated twins): precision and recall of `kind == "duplicate"`.
"""

from __future__ import annotations

import csv
import difflib
import gzip
import json
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from rich.progress import Progress

from ops import credentials, loader

THRESHOLDS = (0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65)
# Models whose cosines sit in a narrow high band (e5) get a grid around their own default.
HIGH_BAND = (0.80, 0.82, 0.84, 0.86, 0.88, 0.90, 0.92)
KS = (1, 5, 10, 20)


@dataclass
class Report:
    rows: list[tuple[str, str]] = field(default_factory=list)

    def add(self, name: str, value: str) -> None:
        self.rows.append((name, value))


def claims(data: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (data / "scifact" / "claims_train.jsonl").open()]


def corpus(data: Path) -> Iterator[dict[str, Any]]:
    with gzip.open(data / "scifact" / "corpus.jsonl.gz", "rt") as f:
        for line in f:
            yield json.loads(line)


def write_scifact(data: Path, out: Path) -> int:
    """SciFact as NDJSON entities: abstracts as papers, claims as claims, no edges."""
    n = 0
    with out.open("w") as f:
        for doc in corpus(data):
            entity = {"kind": "entity", "id": f"paper:scifact-{doc['doc_id']}", "name": doc["title"][:1000],
                      "text": " ".join(doc["abstract"])[:50_000]}  # fmt: skip
            f.write(json.dumps(entity) + "\n")
            n += 1
        for claim in claims(data):
            entity = {"kind": "entity", "id": f"claim:scifact-{claim['id']}", "name": claim["claim"][:1000]}
            f.write(json.dumps(entity) + "\n")
            n += 1
    return n


def wait_indexed(client: httpx.Client, expected: int, timeout: float = 3600) -> None:
    deadline = time.monotonic() + timeout
    with Progress() as bar:
        task = bar.add_task("embedding + indexing", total=expected)
        while True:
            state = client.get("/v1/status").json().get("similarity") or {}
            indexed = int(state.get("indexed", 0))
            bar.update(task, completed=min(indexed, expected))
            if indexed >= expected and state.get("pending") == 0 and state.get("lag") == 0:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {indexed} of {expected} entities indexed")
            time.sleep(2)


def thresholds(client: httpx.Client) -> tuple[float, ...]:
    active = [m for m in client.get("/v1/models").json() if m["active"]]
    return HIGH_BAND if active and active[0]["default_threshold"] > 0.7 else THRESHOLDS


def link_recovery(client: httpx.Client, data: Path, report: Report, mode: str) -> None:
    """Two readings of "where do a claim's gold abstracts rank": per claim, as IR evaluations (BEIR,
    pytrec_eval) and the issue's baseline figures count (recall@k = share of the claim's gold abstracts in
    its top k, averaged over claims; MRR = 1 / rank of its first gold abstract), and per gold pair (each
    claim–abstract pair counted alone: stricter where a claim has several)."""
    pair_ranks: list[float] = []
    claim_recall: dict[int, list[float]] = {k: [] for k in KS}
    first_gold: list[float] = []
    gold_scores: list[float] = []
    best_other: list[float] = []
    with_evidence = [c for c in claims(data) if c["evidence"]]
    with Progress() as bar:
        task = bar.add_task(f"ranking claims ({mode})", total=len(with_evidence))
        for claim in with_evidence:
            params: dict[str, str | int] = {"type": "paper", "min_score": -1, "limit": 100, "mode": mode}
            items = client.get(f"/v1/entities/claim:scifact-{claim['id']}/similar", params=params).json()["items"]
            ranked = [i["entity"]["id"] for i in items]
            scores = {i["entity"]["id"]: i["score"] for i in items}
            gold = {f"paper:scifact-{d}" for d in claim["evidence"]}
            ranks = [ranked.index(doc) + 1 if doc in ranked else float("inf") for doc in gold]
            pair_ranks += ranks
            for k in KS:
                claim_recall[k].append(float(np.mean([r <= k for r in ranks])))
            first_gold.append(min(ranks))
            gold_scores += [scores.get(doc, -1.0) for doc in gold]
            best_other.append(next((i["score"] for i in items if i["entity"]["id"] not in gold), -1.0))
            bar.advance(task)
    r, first = np.array(pair_ranks), np.array(first_gold)
    report.add(f"link recovery ({mode}): claims / claim → abstract pairs", f"{len(first)} / {len(r)}")
    for k in KS:
        report.add(f"  {mode} recall@{k}, per claim / per gold pair",
                   f"{float(np.mean(claim_recall[k])):.3f} / {float(np.mean(r <= k)):.3f}")  # fmt: skip
    report.add(f"  {mode} MRR, per claim (first gold) / per gold pair",
               f"{_mrr(first):.3f} / {_mrr(r):.3f}")  # fmt: skip
    if mode != "dense":
        return  # the threshold figures are about cosine, the same in both modes
    gold_arr, other_arr = np.array(gold_scores), np.array(best_other)
    report.add("gold pair cosine: median", f"{float(np.median(gold_arr)):.3f}")
    for t in thresholds(client):
        report.add(f"threshold {t}: gold pairs ≥ / claims whose best non-gold ≥",
                   f"{float(np.mean(gold_arr >= t)):.2f} / {float(np.mean(other_arr >= t)):.2f}")  # fmt: skip


def _mrr(ranks: np.ndarray) -> float:
    return float(np.mean(np.where(np.isinf(ranks), 0.0, 1.0 / ranks)))


def compare(client: httpx.Client, pairs: list[tuple[str, str]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(0, len(pairs), 500):
        response = client.post("/v1/compare", json={"pairs": pairs[i : i + 500]}, timeout=600)
        response.raise_for_status()
        out += response.json()["items"]
    return out


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    def rank(v: np.ndarray) -> np.ndarray:
        order = v.argsort()
        ranks = np.empty(len(v))
        ranks[order] = np.arange(len(v))
        for value in np.unique(v):  # average ranks of ties
            tied = v == value
            ranks[tied] = ranks[tied].mean()
        return ranks

    return float(np.corrcoef(rank(x), rank(y))[0, 1])


def sts(client: httpx.Client, data: Path, report: Report) -> None:
    rows = list(csv.reader((data / "stsbenchmark" / "sts-dev.csv").open(), delimiter="\t", quoting=csv.QUOTE_NONE))
    pairs = [(r[5], r[6]) for r in rows]
    scores = np.array([i["score"] for i in compare(client, pairs)])
    report.add("STS-B dev Spearman (cosine vs human)", f"{spearman(scores, np.array([float(r[4]) for r in rows])):.3f}")


def duplicates(client: httpx.Client, data: Path, report: Report) -> None:
    rows = list(csv.DictReader((data / "paws_wiki" / "dev.tsv").open(), delimiter="\t", quoting=csv.QUOTE_NONE))
    verdicts = compare(client, [(r["sentence1"], r["sentence2"]) for r in rows])
    flagged = np.array([v["kind"] == "duplicate" for v in verdicts])
    same = np.array([r["label"] == "1" for r in rows])
    precision = float((flagged & same).sum() / max(flagged.sum(), 1))
    report.add(
        "PAWS dev: duplicate precision / recall",
        f"{precision:.3f} / {float((flagged & same).sum() / same.sum()):.3f} ({int(flagged.sum())} flagged)",
    )
    twins = negated_twins(data)
    flags = [v["kind"] == "duplicate" for v in compare(client, twins)]
    report.add("SciFact negated twins flagged as duplicates", f"{np.mean(flags):.3f} of {len(twins)}")


def negated_twins(data: Path) -> list[tuple[str, str]]:
    """Claims citing the same abstract with near-identical (not identical) wording: written as opposites."""
    by_doc: dict[int, list[str]] = defaultdict(list)
    for c in claims(data):
        for doc in c["cited_doc_ids"]:
            by_doc[doc].append(c["claim"])
    twins = set()
    for texts in by_doc.values():
        for i, a in enumerate(texts):
            for b in texts[i + 1 :]:
                if a != b and difflib.SequenceMatcher(a=a.lower().split(), b=b.lower().split()).ratio() >= 0.6:
                    twins.add((a, b))
    return sorted(twins)


def run(gateway: str, data: Path, work: Path, links_only: bool = False, key: str | None = None) -> Report:
    """Load SciFact through the API, wait for the index, then measure everything (or only link recovery)."""
    report = Report()
    with httpx.Client(base_url=gateway, timeout=120, headers=credentials.headers(key)) as client:
        active = [m["key"] for m in client.get("/v1/models").json() if m["active"]]
        report.add("model", ", ".join(active))
        path = work / "scifact.ndjson"
        expected = write_scifact(data, path)
        loader.import_file(gateway, path, key=key)
        wait_indexed(client, expected)
        link_recovery(client, data, report, "dense")
        link_recovery(client, data, report, "hybrid")
        if not links_only:
            sts(client, data, report)
            duplicates(client, data, report)
    return report
