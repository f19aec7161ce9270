"""The pydantic fields and validation shared by the selector and the retriever: the engine's
parameters, and building (or reopening) the engine from them."""

from __future__ import annotations

import os
from typing import Any, Literal

from langchain_core.embeddings import Embeddings
from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from erase_core import ExampleIndex

from ._common import build_or_open_index, check_k, check_matches


class EngineModel(BaseModel):
    """Fields that describe the ERASE engine behind a LangChain object."""

    embeddings: Embeddings
    """Any LangChain embedding model."""

    k: int = 4
    """Examples per prompt / documents per query (for ``erase`` also the number of clusters of a new index)."""

    strategy: Literal["erase", "similarity"] = "erase"
    """``erase``: fixed set, one item per cluster. ``similarity``: exact top-k per input."""

    persist_path: str | None = None
    """SQLite file holding the items and their embeddings (``None``: in memory)."""

    epsilon: float | None = None
    """Quantization grid step of the k-means centroids (``None``: the engine's default)."""

    n_iter: int = 10
    """Lloyd iterations of the quantized k-means."""

    seed: int = 0
    """Seed of the k-means++ races and grid phases (part of the index's identity)."""

    projection_dim: int | None = None
    """Random projection for the clustering (``None``: the engine's default, 32-d for wide inputs; 0: none)."""

    index: ExampleIndex | None = None
    """The engine (built from the fields above when not given)."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    @field_validator("persist_path", mode="before")
    @classmethod
    def _path_to_str(cls, value: Any) -> Any:
        return os.fspath(value) if isinstance(value, os.PathLike) else value

    @model_validator(mode="after")
    def _build_index(self):
        check_k(self.k)
        if self.index is None:
            object.__setattr__(self, "index", build_or_open_index(self, allow_open=True))
        check_matches(self, self.index)
        return self
