"""Thresholds learned from decisions (services/similarity/domain/thresholds.py)."""

from __future__ import annotations

import random

import numpy as np

from services.similarity.domain.thresholds import learn, pair_key


def offline(labeled: list[tuple[float, bool]], target: float) -> float | None:
    """The definition, brute force: the lowest decision cosine at which the decisions at or above it are
    right `target` of the time."""
    for t in sorted({score for score, _ in labeled}):
        above = [label for score, label in labeled if score >= t]
        if sum(above) / len(above) >= target:
            return t
    return None


def offline_fast(labeled: list[tuple[float, bool]], target: float) -> float:
    """The same definition for a large sample, with numpy: precision at each distinct cosine from the top."""
    scores = np.array([s for s, _ in labeled])
    labels = np.array([label for _, label in labeled], dtype=float)
    order = np.argsort(-scores, kind="stable")
    scores, labels = scores[order], labels[order]
    precision = np.cumsum(labels) / np.arange(1, len(labels) + 1)
    last_of_run = np.append(scores[1:] != scores[:-1], True)
    return float(scores[last_of_run & (precision >= target)].min())


def stream(rng: random.Random, n: int) -> list[tuple[float, bool]]:
    """Decisions as people make them: right pairs around cosine 0.72, wrong ones around 0.55."""
    out = []
    for _ in range(n):
        right = rng.random() < 0.5
        out.append((round(rng.gauss(0.72 if right else 0.55, 0.07), 6), right))
    return out


def test_the_threshold_is_the_offline_one_at_every_step_and_converges() -> None:
    rng = random.Random(7)
    decisions = stream(rng, 3000)
    population = offline_fast(stream(random.Random(8), 200_000), 0.8)
    errors = []
    for n in range(50, len(decisions) + 1, 50):
        learned = learn(decisions[:n], default=0.5, target=0.8, min_decisions=30)
        expected = offline(decisions[:n], 0.8) if n % 500 == 0 else offline_fast(decisions[:n], 0.8)
        assert expected is not None and learned.learned
        assert learned.threshold == expected
        assert learned.precision is not None and learned.precision >= 0.8
        errors.append(abs(learned.threshold - population))
    # The stream converges on the population's threshold: within 0.005 over its last 500 decisions, where
    # its first 250 were off by up to 0.018.
    assert max(errors[-10:]) < 0.005 < max(errors[:5])
    assert learned.decisions == 3000 and learned.positives + learned.negatives == 3000
    above = [label for score, label in decisions if score >= learned.threshold]
    assert learned.recall == sum(above) / sum(label for _, label in decisions)


def test_a_type_pair_with_few_decisions_keeps_the_default() -> None:
    few = [(0.9, True), (0.6, False), (0.55, False)]
    learned = learn(few, default=0.5, target=0.8, min_decisions=4)
    assert (learned.threshold, learned.learned, learned.decisions) == (0.5, False, 3)
    assert learned.precision == 1 / 3 and learned.recall == 1.0  # what the default does with them, shown
    assert learn(few, default=0.5, target=0.8, min_decisions=3).threshold == 0.9


def test_positives_below_the_default_lower_it_and_all_wrong_raises_it_past_them() -> None:
    assert learn([(0.31, True), (0.42, True), (0.66, True)], 0.5, 0.8, 3).threshold == 0.31
    wrong = learn([(0.61, False), (0.7, False), (0.52, False)], 0.5, 0.8, 3)
    assert wrong.threshold == 0.7001 and wrong.precision is None and wrong.recall is None
    # Ties: a cutoff never splits equal cosines.
    assert learn([(0.6, True), (0.6, False), (0.7, True), (0.8, True)], 0.5, 0.8, 3).threshold == 0.7


def test_a_type_pair_has_one_name() -> None:
    assert pair_key("paper", "claim") == pair_key("claim", "paper") == "claim|paper"
