"""The clustering space: exact integer coordinates, optionally randomly projected.

Floating-point sums are not associative, so an incremental update and a fresh fit would
drift apart in the last bits. Instead every vector is rounded once to a fixed-point grid
(``scale`` units per 1.0) and all clustering arithmetic runs on integers. The integers are
held in float64 so BLAS can multiply them; every product and partial sum stays below 2^53,
which makes the result exact whatever order BLAS sums in. The bound is enforced here.

The optional random projection is a seeded, data-independent ±1 matrix applied *after*
rounding, so it is integer arithmetic too. Projected coordinates are divided by sqrt(m)
conceptually (Johnson-Lindenstrauss normalisation); ``unit`` carries that factor so that
``epsilon`` means the same thing with or without a projection.
"""

from __future__ import annotations

import math

import numpy as np

from ._validation import ERASEError

#: m * bound^2 <= 2^50 keeps ||x||^2 + ||c||^2 - 2 x.c exact in float64, with room to spare
#: for centroids up to 1.5 * bound (see :meth:`FixedPointSpace.epsilon_units`).
_EXACT_BUDGET = 2.0**50

#: Input dimension up to which :func:`max_unit_scale` guarantees that unit vectors fit (it
#: covers the common embedding sizes; larger inputs are still checked value by value).
MAX_GUARANTEED_DIM = 8192

#: Relative slack on "unit norm" (vectors normalised in float32 are within about 1e-7).
_NORM_SLACK = 1e-6


def _bounds(dim: int, projection_dim: int | None) -> tuple[int, int, int]:
    """(clustering dimension, coordinate bound, input bound) in integer units."""
    out_dim = dim if projection_dim is None else projection_dim
    bound = math.floor(math.sqrt(_EXACT_BUDGET / out_dim))
    # With a projection, the projection itself must stay exact: |sum| <= dim * input bound < 2^53.
    input_bound = bound if projection_dim is None else min(bound, 2**52 // dim)
    return out_dim, bound, input_bound


def _unit(scale: float, out_dim: int, projection_dim: int | None) -> float:
    return scale * (math.sqrt(out_dim) if projection_dim is not None else 1.0)


def max_unit_scale(dim: int, projection_dim: int | None) -> float:
    """The largest ``scale`` at which every vector of norm <= 1 in ``dim`` dimensions maps to
    exact coordinates (``projection_dim``: None for no projection).

    A coordinate rounds to at most scale * |x_i| + 1/2 units, so within the input bound when
    scale <= input bound; a projected coordinate is a ±1 sum of rounded inputs, at most
    scale * ||x||_1 + dim / 2 <= scale * sqrt(dim) + dim / 2, which must stay within the bound."""
    _, bound, input_bound = _bounds(dim, projection_dim)
    top = 1.0 + _NORM_SLACK
    limit = input_bound / top
    if projection_dim is not None:
        limit = min(limit, (bound - dim / 2) / (top * math.sqrt(dim)))
    return limit


def max_epsilon(dim: int, projection_dim: int | None, scale: float) -> float:
    """The largest ``epsilon`` whose grid spacing is at most the coordinate bound in integer
    units (see :meth:`FixedPointSpace.epsilon_units`)."""
    out_dim, bound, _ = _bounds(dim, projection_dim)
    return bound / _unit(scale, out_dim, projection_dim)


def _power_of_two(x: float) -> bool:
    mantissa, _ = math.frexp(x)
    return x > 0 and mantissa == 0.5


class FixedPointSpace:
    """Maps float vectors of dimension ``dim`` to exact integer clustering coordinates."""

    def __init__(self, dim: int, *, scale: float = 4096.0, projection_dim: int | None = None, seed: int = 0):
        if scale <= 0 or not math.isfinite(scale):
            raise ERASEError(f"scale must be a positive finite number, got {scale!r}")
        if projection_dim is not None and (projection_dim < 1):
            raise ERASEError(f"projection_dim must be >= 1, got {projection_dim!r}")
        self.dim = int(dim)
        self.scale = float(scale)
        self.projection_dim = None if projection_dim is None else int(projection_dim)
        self.out_dim, self.bound, self.input_bound = _bounds(self.dim, self.projection_dim)
        self.unit = _unit(self.scale, self.out_dim, self.projection_dim)
        if projection_dim is None:
            self.projection = None
        else:
            rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x9E0])
            signs = rng.integers(0, 2, size=(self.dim, self.out_dim), dtype=np.int8)
            self.projection = np.where(signs == 1, 1.0, -1.0)

    def transform(self, X: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Integer-valued float64 coordinates of the rows of ``X``.

        Works in blocks of rows (each row's result depends only on that row), so a large
        input never needs full-size temporaries. ``out``: a float64 (n, out_dim) array to fill."""
        if out is None:
            out = np.empty((X.shape[0], self.out_dim), dtype=np.float64)
        step = max(256, (1 << 22) // (8 * self.dim))
        if X.dtype == np.float32 and _power_of_two(self.scale):
            return self._transform_float32(X, out, step)
        for lo in range(0, X.shape[0], step):
            block = np.asarray(X[lo : lo + step], dtype=np.float64)  # float32 input: per block
            ints = np.rint(block * self.scale)
            if np.abs(ints).max(initial=0.0) > self.input_bound:
                raise ERASEError(
                    f"vector values up to {np.abs(block).max():.4g} are too large for exact arithmetic at "
                    f"scale={self.scale:g} (limit {self.input_bound / self.scale:.4g}); normalise the vectors "
                    "or lower `scale`"
                )
            if self.projection is None:
                out[lo : lo + step] = ints
                continue
            projected = ints @ self.projection
            if np.abs(projected).max(initial=0.0) > self.bound:
                raise ERASEError("projected vector values are too large for exact arithmetic; lower `scale`")
            out[lo : lo + step] = projected
        return out

    def _transform_float32(self, X: np.ndarray, out: np.ndarray, step: int) -> np.ndarray:
        """:meth:`transform` of float32 input in float32, bit-identical to the float64 path:
        a power-of-two scale multiplies exactly, ``rint`` is exact, and while every row's
        integers satisfy dim * max|value| < 2^24 every partial sum of the ±1 projection is an
        integer float32 holds exactly, in any summation order. Blocks beyond that use float64."""
        scale = np.float32(self.scale)
        proj64 = self.projection
        proj32 = None if proj64 is None else proj64.astype(np.float32)
        for lo in range(0, X.shape[0], step):
            ints = np.rint(X[lo : lo + step] * scale)
            peak = float(np.abs(ints).max(initial=0.0))
            if peak > self.input_bound:
                raise ERASEError(
                    f"vector values up to {peak / self.scale:.4g} are too large for exact arithmetic at "
                    f"scale={self.scale:g} (limit {self.input_bound / self.scale:.4g}); normalise the vectors "
                    "or lower `scale`"
                )
            if proj32 is None or proj64 is None:  # no projection
                out[lo : lo + step] = ints
                continue
            projected: np.ndarray
            if peak * self.dim < 2.0**24:
                projected = ints @ proj32
            else:
                projected = ints.astype(np.float64) @ proj64
            if np.abs(projected).max(initial=0.0) > self.bound:
                raise ERASEError("projected vector values are too large for exact arithmetic; lower `scale`")
            out[lo : lo + step] = projected
        return out

    def epsilon_units(self, epsilon: float) -> int:
        """The grid spacing in integer units: at least 1, at most ``bound``.

        A quantized centroid lies within half a spacing of a mean of points, so within
        1.5 * bound, where squared distances (at most 5.25 * 2^50) are still exact."""
        units = epsilon * self.unit
        if not units < self.bound + 0.5:
            raise ERASEError(
                f"epsilon={epsilon!r} is {units:.4g} integer units, more than the exact-arithmetic bound "
                f"{self.bound} for {self.out_dim} dimensions at scale={self.scale:g}; lower epsilon or `scale`"
            )
        return max(1, int(round(units)))

    def to_float(self, coords: np.ndarray) -> np.ndarray:
        return coords / self.unit
