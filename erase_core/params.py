"""Parameter rules, declared once (as scikit-learn's ``_parameter_constraints``).

:data:`PARAMETERS` maps every parameter name the engine and the adapters take to its rule;
:func:`check_params` applies them, then the one rule that ties parameters together (the
clustering's ``scale`` and ``epsilon`` must keep its arithmetic exact, which depends on
``projection_dim``; see :func:`parameter_limits`). ``QuantizedKMeans``, ``ExampleIndex`` and
the LangChain and LlamaIndex classes all check their parameters here, so a value is accepted
or refused with the same message whichever door it came in by. Nothing is converted except
numpy integers and reals to Python's (``True`` is not an integer here, ``"3"`` not a number).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import Any, Mapping

import numpy as np

from ._validation import ERASEError, reject_unknown_kwargs
from .fixed_point import MAX_GUARANTEED_DIM, max_epsilon, max_unit_scale
from .selection import STRATEGIES

__all__ = [
    "DEFAULT_EPSILON", "DEFAULT_PROJECTION_DIM", "Integer", "MAX_CLUSTERS", "MAX_ITER", "MAX_PROJECTION_DIM",
    "MIN_SCALE", "OneOf", "PARAMETERS", "Real", "check_index_params", "check_k", "check_mmr", "check_param",
    "check_params", "parameter_limits", "reject_unknown_kwargs",
]

#: Default grid spacing and projection, chosen by measurement (docs/benchmarks.md).
DEFAULT_EPSILON = 0.07
DEFAULT_PROJECTION_DIM = 32

#: Limits of the clustering's parameters. Labels are int16, hence k < 2^15 (k-means++
#: seeding is k passes over the data: ~85 s at k = 2^15 on as many points). Every Lloyd
#: iteration keeps a label column (n x (n_iter + 1)) and k x d' centroids and statistics, and
#: quantized Lloyd repeats its centroids after tens of iterations, hence n_iter <= 1000.
#: Projecting is for speed, so a target above 4096 dimensions (more than most embeddings
#: have) is of no use. A scale below 1e-6 is an integer unit of over a million input units.
#: The upper limits of scale and epsilon depend on the projection: :func:`parameter_limits`.
MAX_CLUSTERS = 2**15 - 1
MAX_ITER = 1000
MAX_PROJECTION_DIM = 4096
MIN_SCALE = 1e-6


@dataclass(frozen=True)
class Integer:
    """An ``int`` (or numpy integer, not ``bool``) in ``[low, high]`` (``None``: unbounded)."""

    low: int | None = None
    high: int | None = None
    none: bool = False  # None is allowed (and kept)

    def check(self, name: str, value: Any) -> int | None:
        if value is None and self.none:
            return None
        if (isinstance(value, bool) or not isinstance(value, (int, np.integer))
                or (self.low is not None and value < self.low) or (self.high is not None and value > self.high)):
            raise ERASEError(f"{name} must be {self._described()}, got {value!r}")
        return int(value)

    def _described(self) -> str:
        if self.low == 1 and self.high is None:
            text = "a positive integer"
        elif self.low is None and self.high is None:
            text = "an integer"
        elif self.high is None:
            text = f"an integer >= {self.low}"
        else:
            text = f"an integer in [{self.low}, {self.high}]"
        return text + (" or None" if self.none else "")


@dataclass(frozen=True)
class Real:
    """A finite real number (not ``bool``, not a string) in ``[low, high]`` (``low_open``: ``(low, high]``)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    none: bool = False

    def check(self, name: str, value: Any) -> float | None:
        if value is None and self.none:
            return None
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ERASEError(f"{name} must be a real number, got {value!r}")
        out = float(value)
        if not np.isfinite(out):
            raise ERASEError(f"{name} must be finite, got {value!r}")
        below = self.low is not None and (out <= self.low if self.low_open else out < self.low)
        if below or (self.high is not None and out > self.high):
            left = "(" if self.low_open else "["
            raise ERASEError(f"{name} must be a number in {left}{self.low:g}, {self.high:g}], got {value!r}"
                             if self.high is not None else f"{name} must be a number > {self.low:g}, got {value!r}")
        return out


@dataclass(frozen=True)
class OneOf:
    """One of a fixed set of values."""

    options: tuple

    def check(self, name: str, value: Any) -> Any:
        if not isinstance(value, str) or value not in self.options:
            raise ERASEError(f"{name} must be one of {self.options}, got {value!r}")
        return value


#: Every parameter's rule. ``k`` is a selection's size (examples per prompt, documents per
#: query); an index's ``k`` is also its number of clusters, checked as ``n_clusters``
#: (:func:`check_index_params`).
PARAMETERS: dict[str, Integer | Real | OneOf] = {
    "n_clusters": Integer(1, MAX_CLUSTERS),
    "n_iter": Integer(1, MAX_ITER),
    "seed": Integer(),
    "epsilon": Real(none=True),  # range: parameter_limits (it depends on scale and projection_dim)
    "scale": Real(),  # range: parameter_limits (it depends on projection_dim)
    "projection_dim": Integer(0, MAX_PROJECTION_DIM, none=True),
    "strategy": OneOf(STRATEGIES),
    "k": Integer(1),
    "fetch_k": Integer(1),
    "lambda_mult": Real(0.0, 1.0),
}


def check_param(name: str, value: Any, *, label: str | None = None) -> Any:
    """``value`` checked by the rule of ``name`` (numpy numbers become Python's); ``label``: the
    name the caller knows it by (``similarity_top_k`` is a ``k``), in the message."""
    return PARAMETERS[name].check(label or name, value)


def check_params(where: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Check every parameter in ``values`` by :data:`PARAMETERS` and the rules that tie them
    together; returns them normalised (``epsilon`` None is :data:`DEFAULT_EPSILON`). An unknown
    name raises :class:`~erase_core.UnknownArgumentError`, naming ``where``."""
    reject_unknown_kwargs(where, {n: v for n, v in values.items() if n not in PARAMETERS}, PARAMETERS)
    out = {name: check_param(name, value) for name, value in values.items()}
    if "epsilon" in out and out["epsilon"] is None:
        out["epsilon"] = DEFAULT_EPSILON
    _check_exact_range(out)
    return out


def check_index_params(k: Any, strategy: Any, epsilon: Any, n_iter: Any, seed: Any,
                       projection_dim: Any) -> dict[str, Any]:
    """An :class:`~erase_core.ExampleIndex`'s parameters (its ``k`` is also the number of
    clusters), checked as its clustering will check them, before anything is written anywhere.
    Returns ``{"k", "strategy", "epsilon", "n_iter", "seed", "projection_dim"}`` normalised."""
    k = check_param("n_clusters", k, label="k")
    out = check_params("ExampleIndex", dict(strategy=strategy, epsilon=epsilon, n_iter=n_iter, seed=seed,
                                            projection_dim=projection_dim, scale=4096.0))
    del out["scale"]
    return {"k": k, **out}


def check_k(k: Any, name: str = "k") -> int:
    """A selection's size: a positive integer (``name``: what the caller calls it)."""
    return check_param("k", k, label=name)


def check_mmr(fetch_k: Any, lambda_mult: Any) -> tuple[int, float]:
    """Maximal marginal relevance's ``fetch_k`` (a positive integer) and ``lambda_mult`` (in [0, 1])."""
    return check_param("fetch_k", fetch_k), check_param("lambda_mult", lambda_mult)


def parameter_limits(projection_dim: int | None = None, scale: float = 4096.0) -> dict[str, float]:
    """The largest ``scale`` (for this projection setting) and ``epsilon`` (for this scale too)
    that the clustering accepts.

    They keep any vectors of norm <= 1 with up to :data:`~erase_core.fixed_point.MAX_GUARANTEED_DIM`
    dimensions in the exact range of :mod:`.fixed_point`. The worst inputs are the widest, so
    the limits are those of the clustering spaces the setting gives for DEFAULT_PROJECTION_DIM
    and MAX_GUARANTEED_DIM input dimensions."""
    if projection_dim is None:
        spaces = [(DEFAULT_PROJECTION_DIM, None), (MAX_GUARANTEED_DIM, DEFAULT_PROJECTION_DIM)]
    else:
        spaces = [(MAX_GUARANTEED_DIM, projection_dim or None)]
    return {
        "scale": min(max_unit_scale(d, p) for d, p in spaces),
        "epsilon": min(max_epsilon(d, p, scale) for d, p in spaces),
    }


def _shown(limit: float) -> str:
    """``limit`` to 6 significant digits, rounded down (so the value shown is accepted)."""
    exact = Decimal(limit)
    return format(exact.quantize(Decimal(1).scaleb(exact.adjusted() - 5), rounding=ROUND_FLOOR).normalize(), "f")


def _check_exact_range(values: dict[str, Any]) -> None:
    """``scale`` in [MIN_SCALE, limit] and ``epsilon`` in (0, limit], the limits of
    :func:`parameter_limits` for the given ``projection_dim`` (and ``scale``)."""
    if "scale" not in values and "epsilon" not in values:
        return
    projection_dim = values.get("projection_dim")
    scale = values.get("scale", 4096.0)
    where = f"projection_dim={projection_dim!r}"
    top = parameter_limits(projection_dim)["scale"]
    if not MIN_SCALE <= scale <= top:
        raise ERASEError(
            f"scale must be in [{MIN_SCALE:g}, {_shown(top)}] with {where}, got {scale!r}: a larger "
            f"scale overflows exact arithmetic on unit vectors of up to {MAX_GUARANTEED_DIM} dimensions"
        )
    epsilon = values.get("epsilon")
    if epsilon is None:
        return
    top = parameter_limits(projection_dim, scale)["epsilon"]
    if not 0 < epsilon <= top:
        raise ERASEError(
            f"epsilon must be in (0, {_shown(top)}] with scale={scale:g} and {where}, got "
            f"{epsilon!r}: a coarser grid overflows exact arithmetic"
        )
