"""The LLM and the sentence embedder of an evaluation, loaded on first use.

Both ``erase bench`` and ``erase unlearn`` configure them the same way (``config.model``,
``config.gguf_file``, ``config.device``) and must not pay for loading them when a stage comes
from the cache or the input is rejected first.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["LazyModels"]


class LazyModels:
    """Mixin: ``self.lm`` and ``self.embed(texts)`` from ``self.config``, each loaded once."""

    config: Any  # the evaluation's settings (model, gguf_file, device), set by the class using this
    _lm = None
    _embedder = None

    @property
    def lm(self):
        if self._lm is None:
            from ..models.llm import LocalCausalLM

            self._lm = LocalCausalLM(self.config.model, gguf_file=self.config.gguf_file, device=self.config.device)
        return self._lm

    def embed(self, texts: list[str]) -> np.ndarray:
        if self._embedder is None:
            from ..models.embeddings import HFEmbedder

            self._embedder = HFEmbedder(device=self.config.device)
        return np.asarray(self._embedder.embed_documents(texts), dtype=np.float32)
