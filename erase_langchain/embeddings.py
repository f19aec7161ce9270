"""``HFEmbeddings``: LangChain ``Embeddings`` over :class:`erase_core.models.embeddings.HFEmbedder`
(all-MiniLM-L6-v2 bundled offline by default). torch and transformers are imported only when
the model is first used."""

from __future__ import annotations

import os
import threading
from typing import Any

from langchain_core.embeddings import Embeddings

__all__ = ["HFEmbeddings"]


class HFEmbeddings(Embeddings):
    """Mean-pooled, L2-normalised sentence embeddings from a local transformers encoder.

    Parameters are those of ``HFEmbedder`` (``model_name_or_path=None`` is the bundled
    all-MiniLM-L6-v2); the model is loaded on first use (thread-safe). ``embedder=`` wraps an
    ``HFEmbedder`` that is already loaded. Async methods run in an executor (LangChain's
    default), so they do not block the event loop.
    """

    def __init__(
        self,
        model_name_or_path: str | os.PathLike | None = None,
        *,
        device: str | None = None,
        batch_size: int = 32,
        max_length: int | None = None,
        embedder: Any = None,
    ) -> None:
        self.model_name_or_path = model_name_or_path
        self._kwargs = {"device": device, "batch_size": batch_size, "max_length": max_length}
        self._embedder = embedder
        self._lock = threading.Lock()

    @property
    def embedder(self):
        """The underlying ``HFEmbedder`` (loaded on first access)."""
        if self._embedder is None:
            with self._lock:
                if self._embedder is None:
                    from erase_core.models.embeddings import HFEmbedder

                    self._embedder = HFEmbedder(self.model_name_or_path, **self._kwargs)
        return self._embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embedder.embed_documents(list(texts)).astype(float).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embedder.embed_query(text).astype(float).tolist()

    def __repr__(self) -> str:
        loaded = self._embedder is not None
        return f"HFEmbeddings(model_name_or_path={self.model_name_or_path!r}, loaded={loaded})"
