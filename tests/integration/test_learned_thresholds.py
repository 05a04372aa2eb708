"""Thresholds learned from people's decisions, through the public API with every service in-process:
decisions on claim–finding candidates raise that type pair's threshold and withdraw exactly the proposed
pairs below it; typed edges added directly between hypotheses and claims at low cosines lower theirs and
propose exactly the pairs that now reach it; a type pair with few decisions keeps the default; each change
is a `threshold.changed` event with its evidence."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from platograph.contracts import EntityUpserted, ThresholdChanged
from platograph.graph_api import pages
from services.similarity.domain.candidates import pair
from services.similarity.domain.models import MINILM
from services.similarity.domain.thresholds import learn
from services.similarity.service_layer import learning
from tests.helpers import eventually
from tests.integration.test_gateway import EMBEDDER, system

pytestmark = pytest.mark.integration

TOPICS = {
    "sleep": ("Sleep consolidates newly learned memories.", "Students who slept after studying recalled more.",
              "Memory improves after a night of sleep."),
    "vision": ("Larger vision models learn more similar representations.",
               "Image encoders trained on different data align their features.",
               "Representations converge as models scale."),
    "climate": ("Rising carbon dioxide warms the planet.", "Global temperatures climb as emissions grow.",
                "Greenhouse gases drive climate change."),
    "coffee": ("Caffeine improves alertness in tired people.", "A cup of coffee reduces reaction times.",
               "Stimulants increase vigilance."),
    "bees": ("Bees pollinate most flowering crops.", "Crop yields fall where pollinating insects decline.",
             "Agriculture depends on pollinators."),
    "proteins": ("Protein structure can be predicted from sequence.", "Deep networks fold proteins accurately.",
                 "A protein's sequence determines its shape."),
}  # fmt: skip
ENTITIES = [
    EntityUpserted(id=f"{kind}:{topic}", type=kind, name=f"{topic} {kind}", text=text)
    for topic, texts in TOPICS.items()
    for kind, text in zip(("claim", "finding", "hypothesis"), texts, strict=True)
] + [
    EntityUpserted(id=f"claim:{topic}-2", type="claim", name=f"{topic} claim 2", text=f"{texts[0]} It holds widely.")
    for topic, texts in TOPICS.items()
]
TYPE_OF = {e.id: e.type for e in ENTITIES}
BAND = 0.002


@pytest.fixture
def api(env: dict[str, str], engine: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("PLATOGRAPH_THRESHOLD_MIN_DECISIONS", "3")
    monkeypatch.setenv("PLATOGRAPH_CANDIDATES_PER_ENTITY", "50")  # no top-k cut: every pair above is proposed
    yield from system(tmp_path / "index")


def cosines() -> dict[tuple[str, str], float]:
    vectors = EMBEDDER.embed([MINILM.text_of(e.model_dump()) for e in ENTITIES])
    return {pair(a.id, b.id): float(vectors[i] @ vectors[j])
            for (i, a), (j, b) in itertools.combinations(enumerate(ENTITIES), 2)}  # fmt: skip


def types_of(p: tuple[str, str]) -> str:
    return "|".join(sorted((TYPE_OF[p[0]], TYPE_OF[p[1]])))


def listed(api: TestClient, status: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {(c["a"]["id"], c["b"]["id"]): c
            for page in pages(api, "/v1/candidates", {"status": status, "limit": 500}) for c in page}  # fmt: skip


def expected(scores: dict[tuple[str, str], float], pairs: str, threshold: float, left_out: set[Any]) -> set[Any]:
    """The pairs of a type pair at or above a threshold, but for those decided or linked; pairs within BAND
    of the threshold are not judged (the embedded index's turbo8 storage scores within 0.0013 of numpy)."""
    return {p for p, s in scores.items() if types_of(p) == pairs and s >= threshold + BAND and p not in left_out}


def near(scores: dict[tuple[str, str], float], threshold: float) -> set[tuple[str, str]]:
    return {p for p, s in scores.items() if abs(s - threshold) <= BAND}


def test_decisions_move_a_type_pairs_threshold_and_the_candidates_follow(api: TestClient) -> None:
    scores = cosines()
    assert api.post("/v1/entities", json=[e.model_dump() for e in ENTITIES]).status_code == 202
    default = MINILM.default_threshold
    proposed_cf = expected(scores, "claim|finding", default, set())
    assert len(proposed_cf) >= 8
    eventually(lambda: set(listed(api, "proposed")) >= proposed_cf, timeout=60)
    before = listed(api, "proposed")

    # People judge the claim–finding candidates: the top half right, the rest wrong, every other one decided.
    ranked = sorted(proposed_cf, key=lambda p: -scores[p])
    decided = ranked[::2]
    right = set(decided[: len(decided) // 2])
    for a, b in decided:
        url = f"/v1/candidates/{a}/{b}"
        if (a, b) in right:
            reply = api.post(f"{url}/accept", json={"edge_type": before[(a, b)]["suggested_edge"] or "associated_with"})
        else:
            reply = api.post(f"{url}/reject", json={"reason": "not the same thing"})
        assert reply.status_code == 202, reply.text
    labeled = [(before[p]["score"], p in right) for p in decided]
    offline = learn(labeled, default, 0.8, 3)
    assert offline.learned and offline.threshold > default

    def learned(pairs: str) -> dict[str, Any] | None:
        found = [t for t in api.get("/v1/thresholds").json()["type_pairs"] if t["type_pair"] == pairs]
        return found[0] if found else None

    eventually(lambda: (t := learned("claim|finding")) is not None and t["decisions"] == len(decided), timeout=60)
    shown = learned("claim|finding")
    assert shown is not None and shown["source"] == "learned" and shown["threshold"] == offline.threshold
    assert (shown["precision"], shown["recall"]) == (offline.precision, offline.recall) and shown["since"]
    keep = expected(scores, "claim|finding", offline.threshold, set(decided)) - near(scores, offline.threshold)

    def claim_finding_proposed() -> set[tuple[str, str]]:
        return {p for p in listed(api, "proposed") if types_of(p) == "claim|finding"} - near(scores, offline.threshold)

    eventually(lambda: claim_finding_proposed() == keep, timeout=60)
    withdrawn = listed(api, "withdrawn")
    below = {p for p in proposed_cf - set(decided) if scores[p] < offline.threshold - BAND}
    assert below and below <= set(withdrawn)
    assert all("below the threshold learned for claim|finding" in withdrawn[p]["status_reason"] for p in below)

    # Typed edges added directly between hypotheses and claims, at cosines under the default: positives that
    # lower that type pair's threshold to the lowest of them (nothing people rejected there).
    low = sorted((p for p, s in scores.items() if types_of(p) == "claim|hypothesis" and 0.2 < s < default - 0.05),
                 key=lambda p: scores[p])[:3]  # fmt: skip
    assert len(low) == 3
    for a, b in low:
        reply = api.post("/v1/edges", json={"source": a, "target": b, "type": "associated_with"})
        assert reply.status_code == 202, reply.text
    lowest = round(min(scores[p] for p in low), 6)
    eventually(lambda: (t := learned("claim|hypothesis")) is not None and t["source"] == "learned", timeout=60)
    shown = learned("claim|hypothesis")
    assert shown is not None and abs(shown["threshold"] - lowest) < BAND and shown["decisions"] == 3
    reach = expected(scores, "claim|hypothesis", shown["threshold"], set(low)) - near(scores, shown["threshold"])
    assert reach - expected(scores, "claim|hypothesis", default, set())  # new pairs reach it

    def claim_hypothesis_proposed() -> set[tuple[str, str]]:
        return {p for p in listed(api, "proposed") if types_of(p) == "claim|hypothesis"} - near(
            scores, shown["threshold"])  # fmt: skip

    eventually(lambda: claim_hypothesis_proposed() == reach, timeout=60)

    # Elsewhere nothing moved; a pair with one decision keeps the default.
    others = {p for p in before if types_of(p) not in ("claim|finding", "claim|hypothesis")}
    assert others == {p for p in listed(api, "proposed") if types_of(p) not in ("claim|finding", "claim|hypothesis")}
    one = next(p for p in others if types_of(p) == "finding|hypothesis")
    assert api.post(f"/v1/candidates/{one[0]}/{one[1]}/reject", json={}).status_code == 202
    eventually(lambda: (t := learned("finding|hypothesis")) is not None and t["decisions"] == 1, timeout=60)
    assert learned("finding|hypothesis") == learned("finding|hypothesis") | {"source": "default", "threshold": default}

    # The home page says which thresholds people's decisions moved.
    page = api.get("/").text
    assert (
        "threshold claim|finding" in page and f"{offline.threshold:.4f}, learned from {len(decided)} decisions" in page
    )
    # The journal says why each list grew or shrank.
    changes = api.get("/v1/audit", params={"type": "threshold.changed", "limit": 50}).json()["items"]
    by_pair = {(c["payload"]["a_type"], c["payload"]["b_type"]) for c in changes}
    assert {("claim", "finding"), ("claim", "hypothesis")} <= by_pair
    last_cf = next(c["payload"] for c in changes if c["payload"]["a_type"] == "claim" and c["payload"]["b_type"]
                   == "finding")  # fmt: skip
    # The last change: the threshold it learned then holds (later decisions did not move it).
    assert last_cf["threshold"] == offline.threshold and 3 <= last_cf["decisions"] <= len(decided)
    assert last_cf["model"] == MINILM.key and np.isclose(last_cf["target_precision"], 0.8)


def test_a_candidates_pass_a_crash_left_pending_runs_at_the_next_start(api: TestClient) -> None:
    """The pass that makes candidates follow a moved threshold is marked in Redis before it runs and
    cleared after: one left pending (the process died, the graph was away) runs again on `resume`."""
    scores = cosines()
    assert api.post("/v1/entities", json=[e.model_dump() for e in ENTITIES]).status_code == 202
    proposed_cf = expected(scores, "claim|finding", MINILM.default_threshold, set())
    eventually(lambda: set(listed(api, "proposed")) >= proposed_cf, timeout=60)
    sim = api.app.state.wired.similarity  # type: ignore[attr-defined]
    change = ThresholdChanged(a_type="claim", b_type="finding", model=MINILM.key, threshold=0.99, previous=0.5,
                              learned=True, decisions=40, positives=1, negatives=39, target_precision=0.8)  # fmt: skip
    cause = sim.consumer.last_issued()
    sim.thresholds.pending_follow("crashed-pass", {"change": change.model_dump(mode="json"), "cause": cause})
    assert learning.resume(sim) == 1
    eventually(lambda: not {p for p in listed(api, "proposed") if types_of(p) == "claim|finding"}, timeout=60)
    eventually(lambda: sim.thresholds.pending_follows() == [], timeout=10)
