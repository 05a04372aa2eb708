"""Thresholds learned from what people decided, per type pair and model. Pure.

A decision is a pair's cosine with a label: a candidate accepted, or a typed edge a person added directly,
is a positive; a candidate rejected, a negative. The learned threshold is the lowest cosine at which the
decisions at or above it are right at least `target` of the time (precision); until a type pair has
`min_decisions`, the model's default stays. When no cosine reaches the target, the threshold goes just
above the highest decision: what people were shown was wrong too often to show more of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

STEP = 1e-4  # a change of threshold smaller than this is no change


@dataclass(frozen=True)
class Learned:
    threshold: float
    learned: bool  # False: too few decisions, the model's default
    decisions: int
    positives: int
    negatives: int
    precision: float | None  # of the decisions at or above the threshold (None: none there)
    recall: float | None  # of the positive decisions, those at or above it (None: no positive)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def at(labeled: Sequence[tuple[float, bool]], threshold: float) -> tuple[float | None, float | None]:
    """Precision and recall of the decisions if pairs at or above `threshold` were proposed."""
    above = [label for score, label in labeled if score >= threshold]
    positives = sum(1 for _, label in labeled if label)
    hits = sum(above)
    precision = hits / len(above) if above else None
    recall = hits / positives if positives else None
    return precision, recall


def learn(labeled: Sequence[tuple[float, bool]], default: float, target: float, min_decisions: int) -> Learned:
    """The threshold for one type pair from its decisions (cosine, right?)."""
    positives = sum(1 for _, label in labeled if label)
    decisions, negatives = len(labeled), len(labeled) - positives
    if len(labeled) < min_decisions:
        precision, recall = at(labeled, default)
        return Learned(default, False, decisions, positives, negatives, precision, recall)
    ranked = sorted(labeled, key=lambda d: -d[0])
    best: float | None = None
    right = 0
    for n, (score, label) in enumerate(ranked, start=1):
        right += label
        tied = n < len(ranked) and ranked[n][0] == score  # a cutoff falls between distinct cosines
        if not tied and right / n >= target:
            best = score
    # The cosine of the decision at the cutoff itself (candidates keep six digits); with none good enough,
    # just above the highest decision.
    threshold = round(best, 6) if best is not None else min(1.0, round(ranked[0][0] + STEP, 6))
    precision, recall = at(labeled, threshold)
    return Learned(threshold, True, decisions, positives, negatives, precision, recall)


def pair_key(type_a: str, type_b: str) -> str:
    """A type pair's one name: `a|b` with a <= b."""
    a, b = sorted((type_a, type_b))
    return f"{a}|{b}"
