"""Every point's assignment scores in every recorded Lloyd iteration, kept so a recompute
touches only the clusters whose centroid moved.

The score of point x for centroid c is ``||c||^2 - 2 x.c``: the squared distance less
``||x||^2``, so its argmin (ties to the lowest index) is the assignment, the same integers that
:meth:`~.quantized_kmeans.QuantizedKMeans._assign` compares. Coordinates and centroids are
integers whose products stay below 2^53, so scores are exact (int64); when a centroid moves by a
grid step (a few coordinates change), the new scores are the old ones plus
``dcc - 2 x[supp].delta[supp]``: a pass over the few changed coordinates instead of all of them,
and no pass at all for clusters that did not move.

The table also keeps the coordinates column by column, so reading the one coordinate a centroid
moved along is a contiguous pass, not a strided one through the row-major float64 coordinates
(one cache line per point, 5-20x slower). Scores, squared norm and coordinates of a point share
one column of one int64 array: forgetting a point moves and clears that column in two array
operations (2.3 us at 1M points, against 4.6 us for three separate arrays), on every forget.

The table is derived state: built from the current points and centroids, updated exactly, never
persisted and never part of a digest. Kept only where it costs at most
:data:`MAX_ENTRIES_PER_POINT` entries per point.
"""

from __future__ import annotations

import numpy as np

#: At most this many int64 entries per point ((n_iter + 1) x k scores, the squared norm and the
#: coordinates): 1 KiB. The defaults (k = 4, n_iter = 10, 32 dimensions) keep 77: 616 bytes per
#: point, beside the 256 bytes of its float64 coordinates (616 MB at a million points).
MAX_ENTRIES_PER_POINT = 128


def scores(coords: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """float64 (rows, k) scores ``||c||^2 - 2 x.c``: exact integers (see the module docstring)."""
    cc = np.einsum("ij,ij->i", centroids, centroids)
    out = coords @ centroids.T
    out *= -2.0
    out += cc[None, :]
    return out


class Scratch:
    """Work arrays for one recompute over n points, allocated once per recompute: a fresh
    multi-MB temporary per array operation costs page faults on every call."""

    def __init__(self, n: int):
        self.wide = np.empty(n, dtype=np.int64)
        self.flags = np.empty(n, dtype=bool)
        self.small = np.empty(n, dtype=np.int16)


#: Points per block of :meth:`ScoreTable.relabel`: a block's k score rows (4 x 256 KiB at the
#: defaults) stay in cache from their update to their argmin.
BLOCK = 32768


def argmin_rows(values: np.ndarray, scratch: Scratch | None = None, out: np.ndarray | None = None,
                best: np.ndarray | None = None) -> np.ndarray:
    """Per column of the (k, n) ``values``, the index of the smallest, ties to the lowest index
    (``np.argmin(axis=0)``): the minimum, then from the last cluster down, branch-free
    arithmetic where a cluster attains it (a masked assignment, or argmin itself, is 5-6x
    slower on random masks). ``out``: int16 labels to fill; ``best``: where the minima go
    (else the scratch's wide array)."""
    k, n = values.shape
    scratch = scratch or Scratch(n)
    flags, step = scratch.flags[:n], scratch.small[:n]
    best = scratch.wide[:n] if best is None else best
    np.minimum.reduce(values, axis=0, out=best)
    labels = np.empty(n, dtype=np.int16) if out is None else out
    labels.fill(k - 1)
    for j in range(k - 2, -1, -1):
        np.equal(values[j], best, out=flags)
        np.subtract(labels, j, out=step)
        np.multiply(step, flags, out=step)
        labels -= step
    return labels


class ScoreTable:
    """``values[c, j, s]``: score of the point in slot ``s`` for centroid ``j`` of column ``c``
    (the centroids its labels column ``c`` was assigned to); ``norms[s]`` = ``||x_s||^2``. One
    cluster's scores are contiguous: a moved centroid updates one vector.

    Rows follow the model's slots: :meth:`swap_remove` and :meth:`grow` mirror the model's own
    storage, and a removed row is zeroed (nothing of a forgotten point stays)."""

    def __init__(self, n_cols: int, capacity: int, k: int, coords: np.ndarray):
        self._shape = (n_cols, k, coords.shape[1])
        self._view(np.zeros((n_cols * k + 1 + coords.shape[1], capacity), dtype=np.int64))
        self.norms[: len(coords)] = self.squared_norms(coords)
        self.columns[:, : len(coords)] = coords.T

    def _view(self, data: np.ndarray) -> None:
        """``data`` rows: scores (n_cols x k), squared norm, coordinates (m); one column per slot."""
        n_cols, k, m = self._shape
        self.data = data
        self.values = data[: n_cols * k].reshape(n_cols, k, data.shape[1])
        self.norms = data[n_cols * k]
        self.columns = data[n_cols * k + 1 :]

    @staticmethod
    def allowed(n_cols: int, k: int, dim: int) -> bool:
        """Whether a table for these parameters is within the memory budget."""
        return n_cols * k + 1 + dim <= MAX_ENTRIES_PER_POINT

    @staticmethod
    def squared_norms(coords: np.ndarray) -> np.ndarray:
        return np.einsum("ij,ij->i", coords, coords).astype(np.int64)

    def set_column(self, c: int, n: int, coords: np.ndarray, centroids: np.ndarray, block: int) -> None:
        """Column ``c`` for slots ``[0, n)`` from scratch."""
        for lo in range(0, n, block):
            hi = min(n, lo + block)
            self.values[c, :, lo:hi] = scores(coords[lo:hi], centroids).T

    def set_rows(self, lo: int, hi: int, coords: np.ndarray, per_column: np.ndarray) -> None:
        """Rows ``[lo, hi)`` (new points): ``per_column`` is (rows, n_cols_used, k) float64 scores."""
        self.values[: per_column.shape[1], :, lo:hi] = per_column.transpose(1, 2, 0)
        self.norms[lo:hi] = self.squared_norms(coords)
        self.columns[:, lo:hi] = coords.T

    def relabel(self, column: np.ndarray, coords: np.ndarray, old: np.ndarray, new: np.ndarray,
                source: np.ndarray | None = None, best: np.ndarray | None = None, block: int = BLOCK) -> np.ndarray:
        """Update ``column`` (k, n int64, in place; from ``source`` when given) from centroids
        ``old`` to ``new`` (k, m), exactly, and return its argmin labels (int16), block by block
        so a block's scores are read from memory once for both. Only the moved clusters are
        updated, over their changed coordinates (``coords``: the row-major float64 coordinates
        of the same n points, read when most coordinates moved). ``best``: each point's minimum
        score is written there."""
        k, n = column.shape
        delta = (new - old).astype(np.int64)
        # per moved cluster: (row, constant, sparse [(coordinate, coefficient)], or a dense vector)
        moves: list[tuple[int, int, list[tuple[int, np.int64]], np.ndarray | None]] = []
        for j in np.flatnonzero(delta.any(axis=1)).tolist():
            supp = np.flatnonzero(delta[j]).tolist()
            shift = int(new[j] @ new[j] - old[j] @ old[j])  # exact: integers below 2^53
            if 4 * len(supp) <= coords.shape[1]:
                moves.append((j, shift, [(i, np.int64(-2 * delta[j, i])) for i in supp], None))
            else:
                moves.append((j, shift, [], -2.0 * delta[j]))
        labels = np.empty(n, dtype=np.int16)
        work = Scratch(min(n, block))
        for lo in range(0, n, block):
            hi = min(n, lo + block)
            part = column[:, lo:hi]
            if source is not None:
                part[...] = source[:, lo:hi]
            term = work.wide[: hi - lo]
            for j, shift, sparse, dense in moves:
                row = part[j]
                row += shift
                if dense is not None:
                    row += (coords[lo:hi] @ dense).astype(np.int64)
                    continue
                for i, coefficient in sparse:  # exact int64, one contiguous coordinate column
                    np.multiply(self.columns[i, lo:hi], coefficient, out=term)
                    row += term
            argmin_rows(part, work, out=labels[lo:hi], best=None if best is None else best[lo:hi])
        return labels

    def swap_remove(self, s: int, last: int) -> None:
        data = self.data
        if s != last:
            data[:, s] = data[:, last]
        data[:, last] = 0

    def grow(self, capacity: int, n: int) -> None:
        data = np.zeros((self.data.shape[0], capacity), dtype=np.int64)
        data[:, :n] = self.data[:, :n]
        self._view(data)
