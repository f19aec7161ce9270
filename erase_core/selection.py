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
    """Exact top-k rows by cosine similarity to ``query`` (rows are unit vectors), ties by id."""
    q = np.asarray(query, dtype=np.float64)
    scores = unit_vectors.astype(np.float64) @ (q / np.linalg.norm(q))
    k = min(k, len(scores))
    if k < len(scores):
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]
        candidates = np.flatnonzero(scores >= kth)
    else:
        candidates = np.arange(len(scores))
    ranked = sorted(candidates.tolist(), key=lambda r: (-scores[r], ids[r]))[:k]
    return [(r, float(scores[r])) for r in ranked]


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
