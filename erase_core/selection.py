"""Selection strategies over an example pool.

* ``erase`` (the paper's): one fixed k-shot set, the example nearest each quantized
  centroid, in cluster order, so the prompt prefix is the same for every query.
* ``similarity``: exact top-k by cosine similarity to the query, ties by id (what a
  semantic-similarity example selector does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

STRATEGIES = ("erase", "similarity")


@dataclass(frozen=True)
class SelectedExample:
    """One selected example: its id, payload and score (cosine similarity; see ``select``)."""

    id: str
    payload: Any
    score: float


def top_k_by_cosine(unit_vectors: np.ndarray, ids: list[str], query: np.ndarray, k: int) -> list[tuple[int, float]]:
    """Exact top-k rows by cosine similarity to ``query`` (rows are unit vectors), ties by id.

    A float32 pass over all rows finds the candidates (every row within a rounding margin of the
    k-th best); only those are rescored in float64, so the ranking is that of float64 scores
    without converting the whole pool.

    The float64 score of a row is a function of that row alone (elementwise product, then
    numpy's per-row sum of a contiguous row), never a BLAS product, whose last bit can depend
    on where the row sits and how many rows there are: equal rows then score equally
    wherever they are, and ties break by id whatever the row order."""
    q64 = np.asarray(query, dtype=np.float64)
    q64 = q64 / np.linalg.norm(q64)
    n = unit_vectors.shape[0]
    k = min(k, n)
    rough = unit_vectors @ q64.astype(np.float32)
    if k < n:
        kth = np.partition(rough, n - k)[n - k]
        # worst-case float32 dot-product error for unit vectors is about d * 2^-24; keep twice that
        margin = 2 * unit_vectors.shape[1] * 2.0**-24 + 1e-6
        candidates = np.flatnonzero(rough >= kth - margin)
    else:
        candidates = np.arange(n)
    exact = (unit_vectors[candidates].astype(np.float64) * q64).sum(axis=1)
    order = sorted(range(len(candidates)), key=lambda i: (-exact[i], ids[candidates[i]]))[:k]
    return [(int(candidates[i]), float(exact[i])) for i in order]


def fill_representatives(rep_ids: list[str | None], points: np.ndarray, ids: list[str], centroids: np.ndarray, k: int) -> list[str]:
    """The representatives in cluster order; when clusters are empty (fewer distinct points
    than clusters) the remaining places go to the other points nearest any centroid, by id on ties.
    ``points`` are the clustering-space coordinates of ``ids``."""
    chosen = [r for r in rep_ids if r is not None][:k]
    if len(chosen) >= k:
        return chosen
    taken = set(chosen)
    diff = points[:, None, :] - centroids[None, :, :]
    nearest = np.einsum("ijk,ijk->ij", diff, diff).min(axis=1)
    order = sorted((r for r in range(len(ids)) if ids[r] not in taken), key=lambda r: (nearest[r], ids[r]))
    return chosen + [ids[r] for r in order[: k - len(chosen)]]
