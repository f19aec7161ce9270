"""Selection strategies over an example pool.

* ``erase`` (the paper's): one fixed k-shot set, the example nearest each quantized
  centroid, in cluster order, so the prompt prefix is the same for every query.
* ``similarity``: exact top-k by cosine similarity to the query, ties by id (what a
  semantic-similarity example selector does).
* ``mmr``: maximal marginal relevance over the ``fetch_k`` most similar examples (what a
  max-marginal-relevance selector does), exact and deterministic: every score is a float64
  function of the vectors involved alone, and ties break by id.

All three are functions of the pool as a set (never of insertion order), so a forget leaves
the same selection as a fresh build on the remaining examples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

STRATEGIES = ("erase", "similarity", "mmr")
QUERY_STRATEGIES = ("similarity", "mmr")


@dataclass(frozen=True)
class SelectedExample:
    """One selected example: its id, payload and score (cosine similarity; see ``select``)."""

    id: str
    payload: Any
    score: float


_FAISS = None


def _faiss():
    global _FAISS
    if _FAISS is None:
        try:
            import faiss

            _FAISS = faiss if hasattr(faiss, "fvec_inner_products_ny") else False
        except ImportError:  # pragma: no cover - faiss-cpu is a dependency
            _FAISS = False
    return _FAISS


def inner_products(rows: np.ndarray, query: np.ndarray) -> np.ndarray:
    """float32 ``rows @ query``: faiss's SIMD kernel (single-threaded, the one its flat index
    uses; about twice as fast here as a one-thread BLAS sgemv), else numpy. Only candidates
    are taken from these values, within a margin that covers any summation order."""
    faiss = _faiss()
    if (faiss and rows.dtype == np.float32 and rows.flags.c_contiguous and rows.ndim == 2 and rows.shape[0] > 0):
        q = np.ascontiguousarray(query, dtype=np.float32)
        out = np.empty(rows.shape[0], dtype=np.float32)
        faiss.fvec_inner_products_ny(faiss.swig_ptr(out), faiss.swig_ptr(q), faiss.swig_ptr(rows), rows.shape[1], rows.shape[0])
        return out
    return rows @ np.asarray(query, dtype=np.float32)


#: Rows whose k-th best rough score bounds the candidate pass from below (see top_k_by_cosine).
_HEAD_ROWS = 1 << 16


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
    rough = inner_products(unit_vectors, q64.astype(np.float32))
    if k < n:
        # worst-case float32 dot-product error for unit vectors is about d * 2^-24; keep twice that
        margin = 2 * unit_vectors.shape[1] * 2.0**-24 + 1e-6
        # The k-th best of the first rows is at most the pool's k-th best, so every row within
        # the margin of the pool's k-th best clears it: one compare over the n scores, then a
        # partition of the few that clear it, instead of partitioning all n (the same rows).
        head = rough[: max(k, min(n, _HEAD_ROWS))]
        floor = np.partition(head, len(head) - k)[len(head) - k]
        candidates = np.flatnonzero(rough >= floor - margin)
        near = rough[candidates]
        kth = np.partition(near, len(near) - k)[len(near) - k]
        candidates = candidates[near >= kth - margin]
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


def mmr_rank(unit_vectors: np.ndarray, ids: list[str], query: np.ndarray, k: int, *, fetch_k: int = 20,
             lambda_mult: float = 0.5) -> list[tuple[int, float]]:
    """Maximal marginal relevance: ``k`` of the ``fetch_k`` rows most similar to ``query``.

    The first pick is the most similar row; each next pick maximises
    ``lambda_mult * sim(query, x) - (1 - lambda_mult) * max sim(x, picked)``, as LangChain's
    ``maximal_marginal_relevance`` does, with ties broken by higher query similarity, then by id.
    Returns ``(row, cosine similarity to the query)`` in pick order."""
    k = min(k, unit_vectors.shape[0])
    if k <= 0:
        return []
    candidates = top_k_by_cosine(unit_vectors, ids, query, max(k, fetch_k))
    rows = np.array([r for r, _ in candidates], dtype=np.int64)
    to_query = np.array([s for _, s in candidates], dtype=np.float64)
    cand = unit_vectors[rows].astype(np.float64)
    # pairwise cosine of unit rows, each entry an elementwise product summed per row (as in
    # top_k_by_cosine): a function of the two vectors alone, not of their positions
    redundancy = np.full(len(rows), -np.inf)
    picked: list[int] = []
    free = np.ones(len(rows), dtype=bool)
    while len(picked) < k:
        if picked:
            score = lambda_mult * to_query - (1.0 - lambda_mult) * redundancy
        else:
            score = to_query.copy()
        best = min(np.flatnonzero(free), key=lambda j: (-score[j], -to_query[j], ids[rows[j]]))
        picked.append(int(best))
        free[best] = False
        sims = (cand * cand[best]).sum(axis=1)
        redundancy = np.maximum(redundancy, sims)
    return [(int(rows[j]), float(to_query[j])) for j in picked]

