"""Unlearning-quality metrics for generative models (defined in ``docs/quality.md``).

Each metric compares an *unlearned* model with the *retrained* one (the gold standard: a
model that never saw the forget set) on the forget set; 0 means indistinguishable.

(a) :func:`loglik_distance`: mean absolute difference of the per-example log-likelihood of
    the forgotten targets.
(b) :func:`rank_percentiles` / :func:`rank_distance`: where each forgotten example's
    (per-token) log-likelihood ranks among held-out reference examples of its distribution,
    under each model; the distance is the mean absolute difference of the two percentiles.
(c) :func:`fade_distance`: a FADE-style (Cho et al. 2025) distribution distance from
    bidirectional likelihoods: each model's own samples for the forget-set prompts scored
    under both models.

Pure numpy on arrays of log-likelihoods, so they are tested on synthetic inputs; the model
side (which produces the arrays) lives in :mod:`erase_core.evaluation.unlearning`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .._validation import ERASEError

__all__ = ["fade_distance", "loglik_distance", "rank_distance", "rank_percentiles"]

#: Log-likelihoods or percentiles: a sequence of numbers or a 1-d array.
Floats = Sequence[float] | np.ndarray


def _vector(values, name: str, *, allow_empty: bool = False) -> np.ndarray:
    try:
        out = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ERASEError(f"{name} must be numbers") from None
    if out.ndim != 1:
        raise ERASEError(f"{name} must be one-dimensional, got shape {out.shape}")
    if not allow_empty and out.size == 0:
        raise ERASEError(f"{name} must not be empty")
    if not np.isfinite(out).all():
        raise ERASEError(f"{name} must be finite")
    return out


def _pair(a, b, names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    a, b = _vector(a, names[0]), _vector(b, names[1])
    if a.shape != b.shape:
        raise ERASEError(f"{names[0]} and {names[1]} must have the same length ({a.size} != {b.size})")
    return a, b


def loglik_distance(unlearned: Floats, retrained: Floats) -> float:
    """(a) ``mean_i |log p_u(y_i | x_i) - log p_r(y_i | x_i)|`` over the forget set (nats)."""
    u, r = _pair(unlearned, retrained, ("unlearned", "retrained"))
    return float(np.mean(np.abs(u - r)))


def rank_percentiles(forget: Floats, reference: Floats) -> np.ndarray:
    """(b) Mid-rank percentile of each forget-set score among the reference scores, in [0, 1]:
    ``(#{ref < f} + #{ref == f} / 2) / n_ref``. About 0.5 for an example the model never saw;
    near 1 for one it memorized."""
    f, ref = _vector(forget, "forget"), _vector(reference, "reference")
    below = (ref[None, :] < f[:, None]).sum(axis=1)
    ties = (ref[None, :] == f[:, None]).sum(axis=1)
    return (below + ties / 2.0) / ref.size


def rank_distance(unlearned_percentiles: Floats, retrained_percentiles: Floats) -> float:
    """(b) ``mean_i |pct_u(i) - pct_r(i)|``, in [0, 1]."""
    u, r = _pair(unlearned_percentiles, retrained_percentiles, ("unlearned percentiles", "retrained percentiles"))
    return float(np.mean(np.abs(u - r)))


def fade_distance(u_on_u: Floats, r_on_u: Floats, r_on_r: Floats, u_on_r: Floats) -> float:
    """(c) Bidirectional likelihood distance (FADE-style).

    ``s_u`` are samples of the unlearned model, ``s_r`` of the retrained one (one or more per
    forget-set prompt); ``u_on_r`` is ``log p_u(s_r)`` etc. The distance is

        D = ( mean |log p_u(s_u) - log p_r(s_u)| + mean |log p_r(s_r) - log p_u(s_r)| ) / 2,

    symmetric in the two models and 0 when they assign every sample the same likelihood
    (in particular when they are the same model)."""
    uu, ru = _pair(u_on_u, r_on_u, ("log p_u(s_u)", "log p_r(s_u)"))
    rr, ur = _pair(r_on_r, u_on_r, ("log p_r(s_r)", "log p_u(s_r)"))
    return float((np.mean(np.abs(uu - ru)) + np.mean(np.abs(rr - ur))) / 2.0)
