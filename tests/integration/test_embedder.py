"""The real model from its wheels: sane similarities, unit vectors, no dependence on the batch."""

import numpy as np
import pytest

from services.similarity.adapters.embedder import MiniLMOnnx

pytestmark = pytest.mark.integration


def test_meaning_ranks_above_unrelated_text() -> None:
    e = MiniLMOnnx()
    v = e.embed(["A cat sits on the mat.", "A feline rests on a rug.", "Stock markets fell sharply today."])
    assert v.shape == (3, 384) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    assert v[0] @ v[1] > 0.5 > 0.1 > v[0] @ v[2]


def test_vectors_do_not_depend_on_the_batch() -> None:
    e = MiniLMOnnx(batch_size=2)
    texts = ["short", "a much longer sentence about representation learning in deep networks", "mid length text"]
    together = e.embed(texts)
    alone = np.stack([e.embed([t])[0] for t in texts])
    assert np.allclose(together, alone, atol=1e-5)
