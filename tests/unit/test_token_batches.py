"""Encoder batches are cut by padded tokens: short texts go many to a batch, long ones few."""

from __future__ import annotations

import random

from services.similarity.adapters.embedder import token_batches


def test_batches_hold_every_text_once_shortest_first_within_the_budget() -> None:
    rng = random.Random(3)
    lengths = [rng.randint(5, 256) for _ in range(500)]
    batches = token_batches(lengths, batch_tokens=512, batch_size=64)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(500))
    assert [lengths[i] for i in flat] == sorted(lengths)
    for batch in batches:
        width = max(lengths[i] for i in batch)
        assert len(batch) <= 64 and (len(batch) * width <= 512 or len(batch) == 1)
    # Nothing is cut early: adding the next text would break the budget or the count.
    for batch, following in zip(batches, batches[1:], strict=False):
        assert len(batch) == 64 or (len(batch) + 1) * lengths[following[0]] > 512


def test_short_texts_share_a_batch_and_long_ones_go_alone() -> None:
    assert token_batches([20] * 30, 512, 64) == [list(range(25)), list(range(25, 30))]
    assert token_batches([20] * 30, 512, 8) == [list(range(s, min(s + 8, 30))) for s in range(0, 30, 8)]
    assert token_batches([300, 600, 256], 512, 64) == [[2], [0], [1]]
    assert token_batches([], 512, 64) == []
