"""Test helpers: a small deterministic embedding with real similarity, and example nodes."""

from __future__ import annotations

import hashlib
import re
import threading
import time
from pathlib import Path
from typing import List

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.schema import TextNode

_WORD = re.compile(r"\w+")


class HashingEmbedding(BaseEmbedding):
    """Signed feature hashing of words (weight 1) and character 3-grams (weight 0.5), plus a
    constant bias feature so that no text (not even "") maps to the zero vector."""

    dim: int = 64
    delay: float = 0.0  # seconds each sync call sleeps (to test that async calls do not block)
    _calls: dict = PrivateAttr(default_factory=lambda: {"query": 0, "text": 0})
    _lock: object = PrivateAttr(default_factory=threading.Lock)

    def __init__(self, dim: int = 64, delay: float = 0.0, **kwargs):
        super().__init__(model_name=f"hashing-{dim}", dim=dim, delay=delay, **kwargs)

    @classmethod
    def class_name(cls) -> str:
        return "TestHashingEmbedding"

    def vector(self, text: str) -> List[float]:
        v = np.zeros(self.dim)
        v[-1] = 0.1
        text = text.lower()
        feats = [(w, 1.0) for w in _WORD.findall(text)]
        feats += [(text[i : i + 3], 0.5) for i in range(max(0, len(text) - 2))]
        for f, w in feats:
            h = int.from_bytes(hashlib.blake2b(f.encode(), digest_size=8).digest(), "little")
            v[h % (self.dim - 1)] += w if (h >> 40) & 1 else -w
        return v.tolist()

    @property
    def calls(self) -> dict:
        return dict(self._calls)

    def _count(self, kind: str, n: int = 1) -> None:
        with self._lock:
            self._calls[kind] += n
        if self.delay:
            time.sleep(self.delay)

    def _get_query_embedding(self, query: str) -> List[float]:
        self._count("query")
        return self.vector(query)

    def _get_text_embedding(self, text: str) -> List[float]:
        self._count("text")
        return self.vector(text)

    def _get_text_embeddings(self, texts: List[str]) -> List[List[float]]:
        self._count("text", len(texts))
        return [self.vector(t) for t in texts]

    async def _aget_query_embedding(self, query: str) -> List[float]:
        return self._get_query_embedding(query)  # deliberately blocking, like many integrations

    async def _aget_text_embedding(self, text: str) -> List[float]:
        return self._get_text_embedding(text)


_SUBJECTS = ["the film", "this phone", "the hotel", "our dinner", "the concert", "my new laptop", "the train ride", "that book"]
_POSITIVE = ["was wonderful", "felt delightful", "is excellent value", "made me smile", "exceeded every hope"]
_NEGATIVE = ["was terrible", "felt dreadful", "is a waste of money", "made me angry", "broke after a day"]


def example_nodes(n: int = 48, seed: int = 0) -> list[TextNode]:
    """Short labelled reviews with metadata and stable ids."""
    rng = np.random.default_rng(seed)
    nodes = []
    for i in range(n):
        positive = bool(rng.integers(0, 2))
        subject = _SUBJECTS[int(rng.integers(len(_SUBJECTS)))]
        phrase = (_POSITIVE if positive else _NEGATIVE)[int(rng.integers(5))]
        nodes.append(
            TextNode(
                id_=f"node-{i:03d}",
                text=f"{subject} {phrase} (review {i})",
                metadata={"label": "positive" if positive else "negative", "reviewer": f"user{i:03d}"},
                excluded_embed_metadata_keys=["reviewer", "label"],
            )
        )
    return nodes


def unit_rows(embed: HashingEmbedding, texts: list[str]) -> np.ndarray:
    """What ExampleIndex stores: rows L2-normalised in float64, then float32."""
    X = np.asarray([embed.vector(t) for t in texts], dtype=np.float64)
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)


def all_file_bytes(directory: Path) -> bytes:
    """The bytes of every file under ``directory`` (recursively)."""
    return b"".join(p.read_bytes() for p in sorted(Path(directory).rglob("*")) if p.is_file())


def results(nodes_with_scores) -> list[tuple[str, float]]:
    return [(n.node.node_id, n.score) for n in nodes_with_scores]
