"""The few-shot selection methods that ``erase bench`` compares, each exactly unlearnable.

Every method turns a pool (ids and unit embedding vectors) into the shots of each prompt,
and ``forget(ids)`` leaves it exactly as a fresh ``fit`` on the remaining pool with the same
seed would (``tests/test_bench.py`` checks this for each one). What differs is the cost:

- ``zero-shot``: no shots.
- ``random``: one seeded random set of k shots for every query, a function of the pool's id
  set: any forget redraws it (the sample over the sorted ids shifts when any id leaves, not
  only a shot; measured in benchmarks/results/stability.json).
- ``acot``: unquantized k-means (k-means++ seeding keyed on ids, float64 Lloyd to
  convergence), the example nearest each centroid (the paper's ACoT baseline). Any forget
  refits from scratch: unquantized centroids move whenever a member leaves.
- ``erase``: quantized k-means through :class:`~erase_core.ExampleIndex` (the product).
- ``knn``: the k most similar pool examples to each query (a different prompt per query).

Dimension-reduced variants (the paper's Figure 2 reduces with UMAP): a reducer fitted on the
pool would itself hold the data and would have to be refitted on every forget, so here the
reduction is a seeded, data-independent ±1 random projection to ``projection_dim``
dimensions, which needs no unlearning. ``erase`` projects to 32 dimensions by default (the
engine's default); ``erase-full`` clusters the full embedding; ``acot-proj`` is ACoT in the
same kind of projection.

Extensions beyond the paper: ``erase-stratified`` (one quantized k-means per label, shots
shared out over labels by pool frequency, exact by construction) and ``erase+knn`` (ERASE's
fixed, cacheable prefix of k - j shots followed by the j nearest other examples per query).
"""

from __future__ import annotations

import random
import time
from typing import Callable, Sequence

import numpy as np

from .._validation import ERASEError, UnknownIdError
from ..example_index import ExampleIndex
from ..hashing import id_hashes
from ..quantized_kmeans import DEFAULT_PROJECTION_DIM
from ..seeding import seed_plusplus
from ..selection import top_k_by_cosine

#: Lloyd iterations for the unquantized baseline (it stops earlier when the labels settle).
ACOT_MAX_ITER = 100


class SelectionMethod:
    """Base class: a pool of (id, unit vector), a seed, and the shots for a query.

    ``fixed`` methods give every query the same shots, so their prompt prefix can be cached.
    Subclasses implement ``_refit`` (choose from the current pool) and may override
    ``_remove`` for a cheaper exact update than a refit."""

    name = "base"
    fixed = True

    def __init__(self, k: int, seed: int = 0):
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise ERASEError(f"k must be a non-negative integer, got {k!r}")
        self.k = k
        self.seed = int(seed)
        self.ids_: list[str] = []
        self.vectors_: np.ndarray = np.zeros((0, 0))
        self.labels_: list[str] = []

    def fit(self, ids: Sequence[str], vectors: np.ndarray, labels: Sequence[str] | None = None) -> "SelectionMethod":
        ids = [str(i) for i in ids]
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(ids):
            raise ERASEError(f"need one vector per id: {len(ids)} ids, vectors of shape {vectors.shape}")
        if len(set(ids)) != len(ids):
            raise ERASEError("pool ids must be unique")
        if not np.isfinite(vectors).all():
            raise ERASEError("pool vectors must be finite")
        if self.k > len(ids):
            raise ERASEError(f"k={self.k} is larger than the pool of {len(ids)} examples")
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        if (norms == 0).any():
            raise ERASEError("pool vectors must be non-zero")
        self.ids_, self.vectors_ = ids, vectors / norms
        self.labels_ = [str(x) for x in labels] if labels is not None else [""] * len(ids)
        self._refit()
        return self

    def forget(self, ids: Sequence[str]) -> float:
        """Remove ``ids`` from the pool; returns the wall time of the update in seconds."""
        ids = list(dict.fromkeys(str(i) for i in ids))
        present = set(self.ids_)
        missing = [i for i in ids if i not in present]
        if missing:
            raise UnknownIdError(f"unknown ids: {missing[:5]}")
        if len(self.ids_) - len(ids) < self.k:
            raise ERASEError(f"forgetting {len(ids)} examples would leave fewer than k={self.k}")
        start = time.perf_counter()
        self._remove(ids)
        return time.perf_counter() - start

    def shots(self, query_vector: np.ndarray | None = None) -> list[str]:
        """Ids of the shots for a query, in prompt order."""
        raise NotImplementedError

    # ---------------------------------------------------------------- subclass hooks
    def _refit(self) -> None:
        raise NotImplementedError

    def _remove(self, ids: list[str]) -> None:
        gone = set(ids)
        keep = [r for r, i in enumerate(self.ids_) if i not in gone]
        self.ids_ = [self.ids_[r] for r in keep]
        self.vectors_ = self.vectors_[keep]
        self.labels_ = [self.labels_[r] for r in keep]
        self._refit()

    def close(self) -> None:
        """Release resources (nothing by default)."""


class ZeroShot(SelectionMethod):
    name = "zero-shot"

    def __init__(self, k: int = 0, seed: int = 0):
        super().__init__(0, seed)

    def _refit(self) -> None:
        pass

    def shots(self, query_vector=None) -> list[str]:
        return []


class RandomShots(SelectionMethod):
    """One seeded random sample of k ids (from the sorted pool, so it depends on the set only)."""

    name = "random"

    def _refit(self) -> None:
        self.chosen_ = random.Random(self.seed).sample(sorted(self.ids_), self.k)

    def shots(self, query_vector=None) -> list[str]:
        return list(self.chosen_)


def _project(vectors: np.ndarray, projection_dim: int | None, seed: int) -> np.ndarray:
    """A seeded, data-independent ±1/sqrt(p) projection (None: unchanged)."""
    if not projection_dim or projection_dim >= vectors.shape[1]:
        return vectors.astype(np.float64)
    signs = np.random.default_rng([seed, 0x5EED]).integers(0, 2, size=(vectors.shape[1], projection_dim)) * 2 - 1
    return vectors.astype(np.float64) @ (signs / np.sqrt(projection_dim))


class ACoT(SelectionMethod):
    """Unquantized k-means; the pool example nearest each centroid (ties by id)."""

    name = "acot"

    def __init__(self, k: int, seed: int = 0, projection_dim: int | None = None):
        super().__init__(k, seed)
        self.projection_dim = projection_dim
        if projection_dim:
            self.name = "acot-proj"

    def _refit(self) -> None:
        points = _project(self.vectors_, self.projection_dim, self.seed)
        _, rows = seed_plusplus(points, self.ids_, id_hashes(self.ids_), self.k, self.seed)
        centroids = points[rows].copy()
        labels = None
        for _ in range(ACOT_MAX_ITER):
            d2 = ((points[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
            new = d2.argmin(axis=1)
            if labels is not None and np.array_equal(new, labels):
                break
            labels = new
            for c in range(self.k):
                members = points[labels == c]
                if len(members):
                    centroids[c] = members.mean(axis=0)
        self.centroids_ = centroids
        d2 = ((points[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
        chosen: list[str] = []
        for c in range(self.k):
            order = sorted(range(len(self.ids_)), key=lambda r: (d2[r, c], self.ids_[r]))
            chosen.append(next(self.ids_[r] for r in order if self.ids_[r] not in chosen))
        self.chosen_ = chosen

    def shots(self, query_vector=None) -> list[str]:
        return list(self.chosen_)


class ERASE(SelectionMethod):
    """Quantized k-means through an in-memory :class:`~erase_core.ExampleIndex`."""

    name = "erase"

    def __init__(self, k: int, seed: int = 0, projection_dim: int | None = DEFAULT_PROJECTION_DIM, **index_params):
        super().__init__(k, seed)
        self.projection_dim = projection_dim
        self.index_params = index_params
        if projection_dim == 0:
            self.name = "erase-full"
        self.index_: ExampleIndex | None = None
        self.receipts_: list = []

    def _new_index(self, k: int) -> ExampleIndex:
        return ExampleIndex(k, seed=self.seed, projection_dim=self.projection_dim, **self.index_params)

    def _refit(self) -> None:
        index = self._new_index(self.k)
        index.add(self.vectors_, [None] * len(self.ids_), ids=self.ids_)
        self.index_ = index

    def _fitted(self) -> ExampleIndex:
        if self.index_ is None:
            raise ERASEError(f"{self.name}: fit() first")
        return self.index_

    def _remove(self, ids: list[str]) -> None:
        gone = set(ids)
        keep = [r for r, i in enumerate(self.ids_) if i not in gone]
        self.ids_, self.vectors_ = [self.ids_[r] for r in keep], self.vectors_[keep]
        self.labels_ = [self.labels_[r] for r in keep]
        self.receipts_.append(self._fitted().forget(ids))

    def shots(self, query_vector=None) -> list[str]:
        return [s.id for s in self._fitted().select()]


class KNN(SelectionMethod):
    """The k pool examples most similar to the query (exact cosine, ties by id)."""

    name = "knn"
    fixed = False

    def _refit(self) -> None:
        pass

    def _remove(self, ids: list[str]) -> None:
        gone = set(ids)
        keep = [r for r, i in enumerate(self.ids_) if i not in gone]
        self.ids_, self.vectors_ = [self.ids_[r] for r in keep], self.vectors_[keep]
        self.labels_ = [self.labels_[r] for r in keep]

    def shots(self, query_vector=None) -> list[str]:
        if query_vector is None:
            raise ERASEError("knn needs a query vector")
        ranked = top_k_by_cosine(self.vectors_, self.ids_, np.asarray(query_vector, dtype=np.float64), self.k)
        return [self.ids_[r] for r, _ in ranked][::-1]  # most similar last, next to the question


class StratifiedERASE(SelectionMethod):
    """ERASE within each label: label ℓ gets a share of the k shots by pool frequency (largest
    remainders, ties by label), chosen by its own quantized k-means; shots ordered by label.
    Every part is a function of the remaining pool, so a forget is exact."""

    name = "erase-stratified"

    def __init__(self, k: int, seed: int = 0, projection_dim: int | None = DEFAULT_PROJECTION_DIM):
        super().__init__(k, seed)
        self.projection_dim = projection_dim

    def _quota(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for label in self.labels_:
            counts[label] = counts.get(label, 0) + 1
        n = len(self.labels_)
        exact = {lab: self.k * c / n for lab, c in counts.items()}
        quota = {lab: int(x) for lab, x in exact.items()}
        order = sorted(counts, key=lambda lab: (-(exact[lab] - quota[lab]), -counts[lab], lab))
        for lab in order[: self.k - sum(quota.values())]:
            quota[lab] += 1
        return {lab: min(q, counts[lab]) for lab, q in sorted(quota.items()) if q}

    def _refit(self) -> None:
        chosen: list[str] = []
        for label, q in self._quota().items():
            rows = [r for r, lab in enumerate(self.labels_) if lab == label]
            index = ExampleIndex(q, seed=self.seed, projection_dim=self.projection_dim)
            index.add(self.vectors_[rows], [None] * len(rows), ids=[self.ids_[r] for r in rows])
            chosen.extend(s.id for s in index.select())
        self.chosen_ = chosen

    def shots(self, query_vector=None) -> list[str]:
        return list(self.chosen_)


class HybridERASEKNN(SelectionMethod):
    """ERASE's fixed k - j shots (a cacheable prefix) followed by the j nearest other examples."""

    name = "erase+knn"
    fixed = False

    def __init__(self, k: int, seed: int = 0, n_nearest: int = 2, projection_dim: int | None = DEFAULT_PROJECTION_DIM):
        super().__init__(k, seed)
        if not 0 < n_nearest < k:
            raise ERASEError(f"n_nearest must be in [1, k-1]; got {n_nearest} with k={k}")
        self.n_nearest = n_nearest
        self.erase_ = ERASE(k - n_nearest, seed, projection_dim)

    def _refit(self) -> None:
        self.erase_.fit(self.ids_, self.vectors_, self.labels_)

    def _remove(self, ids: list[str]) -> None:
        gone = set(ids)
        keep = [r for r, i in enumerate(self.ids_) if i not in gone]
        self.ids_, self.vectors_ = [self.ids_[r] for r in keep], self.vectors_[keep]
        self.labels_ = [self.labels_[r] for r in keep]
        self.erase_.forget(ids)

    def shots(self, query_vector=None) -> list[str]:
        if query_vector is None:
            raise ERASEError("erase+knn needs a query vector")
        fixed = self.erase_.shots()
        taken = set(fixed)
        rows = [r for r, i in enumerate(self.ids_) if i not in taken]
        ranked = top_k_by_cosine(self.vectors_[rows], [self.ids_[r] for r in rows],
                                 np.asarray(query_vector, dtype=np.float64), self.n_nearest)
        return fixed + [self.ids_[rows[r]] for r, _ in ranked][::-1]


#: Method name -> factory(k, seed).
METHODS: dict[str, Callable[[int, int], SelectionMethod]] = {
    "zero-shot": lambda k, seed: ZeroShot(0, seed),
    "random": lambda k, seed: RandomShots(k, seed),
    "acot": lambda k, seed: ACoT(k, seed),
    "acot-proj": lambda k, seed: ACoT(k, seed, projection_dim=DEFAULT_PROJECTION_DIM),
    "erase": lambda k, seed: ERASE(k, seed),
    "erase-full": lambda k, seed: ERASE(k, seed, projection_dim=0),
    "knn": lambda k, seed: KNN(k, seed),
    "erase-stratified": lambda k, seed: StratifiedERASE(k, seed),
    "erase+knn": lambda k, seed: HybridERASEKNN(k, seed, n_nearest=max(1, k // 2)),
}

#: Methods whose choice depends on the seed (repeated over seeds); the rest run once.
SEEDED = {"random", "acot", "acot-proj", "erase", "erase-full", "erase-stratified", "erase+knn"}


def make_method(name: str, k: int, seed: int = 0) -> SelectionMethod:
    try:
        factory = METHODS[name]
    except KeyError:
        raise ERASEError(f"unknown method {name!r}; choose from {sorted(METHODS)}") from None
    return factory(k, seed)
