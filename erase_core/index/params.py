"""The parameters that define an index: checked once, persisted in its config, hashed into its digest."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..params import check_index_params
from ..quantized_kmeans import QuantizedKMeans

#: Version of the index configuration a store keeps (``format_version`` in its config).
FORMAT_VERSION = 1

#: The parameters that define a new index (``ExampleIndex(...)``, ``open_or_create``).
INDEX_PARAMETERS = ("k", "strategy", "epsilon", "n_iter", "seed", "projection_dim")


@dataclass(frozen=True)
class Params:
    """``k``, the strategy and the quantized k-means parameters of an index."""

    k: int
    strategy: str
    epsilon: float
    n_iter: int
    seed: int
    projection_dim: int | None

    @classmethod
    def checked(cls, k: Any, strategy: Any, epsilon: Any, n_iter: Any, seed: Any, projection_dim: Any) -> "Params":
        """The parameters, or an error naming the first bad one (before anything is written anywhere)."""
        values = check_index_params(k, strategy, epsilon, n_iter, seed, projection_dim)
        return cls(**values)

    @property
    def clusters(self) -> bool:
        """Whether selection goes through the clustering (the ``erase`` strategy)."""
        return self.strategy == "erase"

    def as_dict(self) -> dict:
        return {"k": self.k, "strategy": self.strategy, "epsilon": self.epsilon, "n_iter": self.n_iter,
                "seed": self.seed, "projection_dim": self.projection_dim}

    def config(self, dim: int | None) -> dict:
        """The config a store keeps: the parameters, the vector width and the format version."""
        return {"format_version": FORMAT_VERSION, **self.as_dict(), "dim": dim}

    def digest_text(self) -> bytes:
        """The parameters as the digest hashes them."""
        return json.dumps(self.as_dict(), sort_keys=True).encode()

    def new_model(self) -> QuantizedKMeans:
        return QuantizedKMeans(self.k, epsilon=self.epsilon, n_iter=self.n_iter, seed=self.seed,
                               projection_dim=self.projection_dim)
