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

#: m * bound^2 <= 2^50 keeps ||x||^2 + ||c||^2 - 2 x.c exact in float64.
_EXACT_BUDGET = 2.0**50


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
        self.out_dim = self.dim if projection_dim is None else self.projection_dim
        self.unit = self.scale * (math.sqrt(self.out_dim) if projection_dim is not None else 1.0)
        self.bound = math.floor(math.sqrt(_EXACT_BUDGET / self.out_dim))
        if projection_dim is None:
            self.projection = None
        else:
            rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x9E0])
            signs = rng.integers(0, 2, size=(self.dim, self.out_dim), dtype=np.int8)
            self.projection = np.where(signs == 1, 1.0, -1.0)
            # The projection itself must stay exact: |sum| <= dim * input bound < 2^53.
        self.input_bound = self.bound if projection_dim is None else min(self.bound, 2**52 // self.dim)

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Integer-valued float64 coordinates of the rows of ``X``.

        Works in blocks of rows (each row's result depends only on that row), so a large
        input never needs full-size temporaries."""
        out = np.empty((X.shape[0], self.out_dim), dtype=np.float64)
        step = max(256, (1 << 22) // (8 * self.dim))
        for lo in range(0, X.shape[0], step):
            block = X[lo : lo + step]
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

    def epsilon_units(self, epsilon: float) -> int:
        """The grid spacing in integer units (at least 1)."""
        return max(1, int(round(epsilon * self.unit)))

    def to_float(self, coords: np.ndarray) -> np.ndarray:
        return coords / self.unit
