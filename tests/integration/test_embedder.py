"""The real model from its wheels: sane similarities, unit vectors, no dependence on the batch."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from services.similarity.adapters.embedder import MiniLMOnnx

pytestmark = pytest.mark.integration


def test_meaning_ranks_above_unrelated_text() -> None:
    e = MiniLMOnnx()
    v = e.embed(["A cat sits on the mat.", "A feline rests on a rug.", "Stock markets fell sharply today."])
    assert v.shape == (3, 384) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    assert v[0] @ v[1] > 0.5 > 0.1 > v[0] @ v[2]


@pytest.mark.parametrize("batching", [{"batch_size": 2}, {"batch_tokens": 16}, {"batch_tokens": 10_000}])
def test_vectors_do_not_depend_on_the_batch(batching: dict[str, int]) -> None:
    e = MiniLMOnnx(**batching)
    texts = ["short", "a much longer sentence about representation learning in deep networks", "mid length text",
             "tiny", "another sentence of middling size"]  # fmt: skip
    together = e.embed(texts)
    alone = np.stack([e.embed([t])[0] for t in texts])
    assert np.allclose(together, alone, atol=1e-5)


def test_batches_on_threads_give_the_vectors_of_one_threaded_run() -> None:
    """Many batches run on the pool's threads, in any order, and calls may overlap: each row is still its
    own text's vector, as onnxruntime's own threading gives it."""
    texts = [f"sentence {i} about {'graphs ' * (i % 7)}and claims" for i in range(40)]
    reference = MiniLMOnnx(batch_size=3, parallel="operators").embed(texts)
    e = MiniLMOnnx(batch_size=3, threads=2)  # a pool of two, whatever this machine's cores
    with ThreadPoolExecutor(3) as callers:
        results = list(callers.map(e.embed, [texts, texts[::-1], texts[:5]]))
    assert np.allclose(results[0], reference, atol=1e-5)
    assert np.allclose(results[1], reference[::-1], atol=1e-5)
    assert np.allclose(results[2], reference[:5], atol=1e-5)
