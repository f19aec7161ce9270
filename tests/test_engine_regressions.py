"""Regressions in the engine: stale per-iteration records, late parameter validation,
row-position-dependent similarity scores."""

from __future__ import annotations

import numpy as np
import pytest

from erase_core import ERASEError, QuantizedKMeans
from erase_core.fixed_point import MAX_GUARANTEED_DIM, FixedPointSpace
from erase_core.quantized_kmeans import (
    DEFAULT_PROJECTION_DIM,
    MAX_CLUSTERS,
    MAX_ITER,
    MAX_PROJECTION_DIM,
    MIN_SCALE,
    parameter_limits,
)
from erase_core.selection import top_k_by_cosine
from conftest import assert_same_state, clustered


# ------------------------------------------------------------ 1. records of unused iterations
def assert_same_arrays(model: QuantizedKMeans, fresh: QuantizedKMeans) -> None:
    """The whole per-iteration arrays, not just the used prefix, equal a fresh fit's; spare
    label columns and spare rows are zero."""
    for name in ("_S", "_N", "_C"):
        a, b = getattr(model, name), getattr(fresh, name)
        assert a.shape == b.shape and a.dtype == b.dtype, name
        assert np.array_equal(a, b), f"{name} differs from a fresh fit (n_rec={model._n_rec})"
    n = len(model)
    assert not model._labels[:n, model._final_col + 1 :].any(), "spare label columns"
    assert not model._labels[n:].any() and not model._coords[n:].any(), "spare rows"


@pytest.mark.parametrize("seed", range(6))
def test_unused_iteration_records_match_a_fresh_fit(seed):
    X = clustered(140, d=8, seed=seed)
    ids = [f"p{i:03d}" for i in range(140)]
    params = dict(n_clusters=5, epsilon=0.005, n_iter=12, seed=seed)
    model = QuantizedKMeans(**params).fit(X[:110], ids[:110])
    present = list(range(110))
    absent = list(range(110, 140))
    rng = np.random.default_rng(seed)
    shrunk = recomputes = 0
    for step in range(30):
        n_rec_before = model._n_rec
        if step % 5 == 4:  # a seed: the seeding is rerun (a full refit)
            victim = model.seed_ids_[int(rng.integers(0, 5))]
            present.remove(ids.index(victim))
            report = model.remove([victim])
        elif step % 3 == 2 and absent:
            new = [absent.pop() for _ in range(min(2, len(absent)))]
            present += new
            report = model.insert(X[new], [ids[i] for i in new])
        else:
            victims = [int(v) for v in rng.choice(present, size=1 + step % 2, replace=False)]
            for v in victims:
                present.remove(v)
            report = model.remove([ids[v] for v in victims])
        recomputes += report.recomputed
        shrunk += model._n_rec < n_rec_before
        keep = sorted(present)
        assert_same_arrays(model, QuantizedKMeans(**params).fit(X[keep], [ids[i] for i in keep]))
    assert recomputes and shrunk, "the sequence should recompute and shorten the recorded iterations"


def test_cheap_removals_leave_the_records_alone():
    """The zeroing belongs to recomputes: a cheap removal touches only the used records."""
    X = clustered(3000, d=16, blobs=4, seed=3)
    model = QuantizedKMeans(n_clusters=4, epsilon=0.05, seed=0).fit(X)
    cheap = 0
    for i in range(0, 3000, 100):
        before = model._C.copy()
        if model.remove([str(i)]).recompute_from is None:
            cheap += 1
            assert np.array_equal(model._C, before)
    assert cheap


# ------------------------------------------------------------ 2. parameters checked up front
@pytest.mark.parametrize(
    "params, message",
    [
        (dict(epsilon=1e30), r"epsilon must be in \(0, 255\.99"),
        (dict(epsilon=float("inf")), "epsilon must be finite"),
        (dict(epsilon=float("nan")), "epsilon must be finite"),
        (dict(epsilon=0.0), r"epsilon must be in \(0, "),
        (dict(epsilon=-0.1), r"epsilon must be in \(0, "),
        (dict(epsilon="0.1"), "epsilon must be a real number"),
        (dict(epsilon=2.5, projection_dim=4096), r"epsilon must be in \(0, 2\]"),
        (dict(epsilon=100.0, projection_dim=0), r"epsilon must be in \(0, 90\.5"),
        (dict(n_iter=10**12), r"n_iter must be an integer in \[1, 1000\]"),
        (dict(n_iter=MAX_ITER + 1), r"n_iter must be an integer in \[1, 1000\]"),
        (dict(n_iter=0), r"n_iter must be an integer in \[1, 1000\]"),
        (dict(projection_dim=10**10), r"projection_dim must be an integer in \[0, 4096\]"),
        (dict(projection_dim=MAX_PROJECTION_DIM + 1), r"projection_dim must be an integer in \[0, 4096\]"),
        (dict(projection_dim=-1), r"projection_dim must be an integer in \[0, 4096\]"),
        (dict(projection_dim=True), "projection_dim"),
        (dict(n_clusters=MAX_CLUSTERS + 1), r"n_clusters must be an integer in \[1, 32767\]"),
        (dict(n_clusters=10**9), r"n_clusters must be an integer in \[1, 32767\]"),
        (dict(scale=1e30), r"scale must be in \[1e-06, 65490"),
        (dict(scale=1e6, projection_dim=0), r"scale must be in \[1e-06, 370726"),
        (dict(scale=8192.0, projection_dim=4096), r"scale must be in \[1e-06, 5747"),
        (dict(scale=0.0), r"scale must be in \[1e-06, "),
        (dict(scale=-4096.0), r"scale must be in \[1e-06, "),
        (dict(scale=1e-7), r"scale must be in \[1e-06, "),
        (dict(scale=float("inf")), "scale must be finite"),
        (dict(scale=float("nan")), "scale must be finite"),
        (dict(scale="4096"), "scale must be a real number"),
    ],
)
def test_extreme_parameters_are_rejected_at_construction(params, message):
    with pytest.raises(ERASEError, match=message):
        QuantizedKMeans(**{"n_clusters": 3, **params})


def unit_rows(rows: np.ndarray, slack: float = 1 + 5e-7) -> np.ndarray:
    """Rows scaled to norm ``slack`` (just over 1, as float32 normalisation can leave them)."""
    return rows / np.linalg.norm(rows, axis=1, keepdims=True) * slack


def hardest_unit_vectors(dim: int, projection_dim: int | None, seed: int, n: int = 14) -> np.ndarray:
    """Unit vectors with the largest integer coordinates: signed basis vectors, vectors matching
    the signs of a projection column (||x||_1 = sqrt(dim)), and random ones."""
    rng = np.random.default_rng(seed)
    rows = []
    for j in range(3):
        rows.append(np.zeros(dim))
        rows[-1][j % dim] = (-1) ** j
    if projection_dim is not None:
        signs = FixedPointSpace(dim, scale=1.0, projection_dim=projection_dim, seed=seed).projection
        rows += [signs[:, 0], -signs[:, 1 % projection_dim], signs[:, -1]]
    rows += list(rng.normal(size=(n - len(rows), dim)))
    return unit_rows(np.array(rows))


def boundary_settings():
    """(projection_dim, input dims) pairs covering every kind of clustering space."""
    return [
        (None, [DEFAULT_PROJECTION_DIM, 200]),  # unprojected up to 32 dims, projected to 32 above
        (0, [5, 300]),
        (1, [3, 64]),
        (8, [8, 1000]),
        (DEFAULT_PROJECTION_DIM, [MAX_GUARANTEED_DIM]),
    ]


@pytest.mark.parametrize("projection_dim, dims", boundary_settings())
def test_boundary_parameters_fit_unit_vectors(projection_dim, dims):
    """Every accepted extreme fits unit vectors, and stays exact (a removal equals a refit)."""
    resolve = QuantizedKMeans(3, projection_dim=projection_dim)._resolve_projection
    data = {dim: hardest_unit_vectors(dim, resolve(dim), seed=5) for dim in dims}
    ids = [f"u{i:02d}" for i in range(14)]
    top_scale = parameter_limits(projection_dim)["scale"]
    for scale in (MIN_SCALE, 1.0, min(4096.0, top_scale), top_scale):
        top_eps = parameter_limits(projection_dim, scale)["epsilon"]
        for epsilon in (1e-12, min(0.07, top_eps), top_eps):
            for n_iter in (1, MAX_ITER):
                params = dict(n_clusters=3, epsilon=epsilon, scale=scale, n_iter=n_iter, seed=5, projection_dim=projection_dim)
                for X in data.values():
                    model = QuantizedKMeans(**params).fit(X, ids)
                    model.remove(["u00", "u04", "u09"])
                    keep = [i for i in range(len(X)) if ids[i] not in {"u00", "u04", "u09"}]
                    fresh = QuantizedKMeans(**params).fit(X[keep], [ids[i] for i in keep])
                    assert model.digest() == fresh.digest()


@pytest.mark.slow
def test_widest_projection_at_its_limits_fits_the_widest_unit_vectors():
    """projection_dim = 4096 from MAX_GUARANTEED_DIM inputs, at the largest scale and epsilon."""
    scale = parameter_limits(MAX_PROJECTION_DIM)["scale"]
    epsilon = parameter_limits(MAX_PROJECTION_DIM, scale)["epsilon"]
    X = hardest_unit_vectors(MAX_GUARANTEED_DIM, MAX_PROJECTION_DIM, seed=2, n=8)
    model = QuantizedKMeans(3, epsilon=epsilon, scale=scale, seed=2, projection_dim=MAX_PROJECTION_DIM).fit(X)
    assert len(model) == 8 and model._eps <= model._space.bound


def test_largest_accepted_cluster_count_fits_the_label_type():
    model = QuantizedKMeans(MAX_CLUSTERS)
    model._alloc(1, 1)
    assert np.iinfo(model._labels.dtype).max >= MAX_CLUSTERS - 1


def test_fit_still_checks_epsilon_beyond_the_guaranteed_dimension():
    """Inputs wider than MAX_GUARANTEED_DIM get a clear error, never inexact arithmetic."""
    epsilon = parameter_limits(0)["epsilon"]
    X = unit_rows(np.random.default_rng(0).normal(size=(4, 4 * MAX_GUARANTEED_DIM)), slack=1.0)
    with pytest.raises(ERASEError, match="exact-arithmetic bound"):
        QuantizedKMeans(2, epsilon=epsilon, projection_dim=0).fit(X)


# ------------------------------------------------------------ 3. similarity ties by id
def duplicated_pool(seed: int, d: int = 384, distinct: int = 6, copies: int = 40) -> np.ndarray:
    """float32 unit vectors, each repeated, plus copies 1 ulp away in one coordinate."""
    rng = np.random.default_rng(seed)
    base = unit_rows(rng.normal(size=(distinct, d)), slack=1.0).astype(np.float32)
    near = base.copy()
    near[:, 0] = np.nextafter(near[:, 0], np.float32(2))
    return np.concatenate([np.repeat(base, copies, axis=0), np.repeat(near, copies // 4, axis=0)])


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("k", [1, 4, 37, 80])
def test_similarity_ranking_is_independent_of_row_order(seed, k):
    V = duplicated_pool(seed)
    n = len(V)
    ids = [f"e{i:04d}" for i in range(n)]
    rng = np.random.default_rng(seed + 100)
    query = V[int(rng.integers(0, n))].astype(np.float64) + 1e-3 * rng.normal(size=V.shape[1])
    reference = None
    for p in range(50):
        rows = np.random.default_rng(p).permutation(n)
        got = [(ids[rows[i]], score) for i, score in top_k_by_cosine(V[rows], [ids[r] for r in rows], query, k)]
        if reference is None:
            reference = got
        assert got == reference, f"permutation {p} ranks differently"
    # equal rows score equally, so within a tie ids are ascending
    assert all(a[1] > b[1] or (a[1] == b[1] and a[0] < b[0]) for a, b in zip(reference, reference[1:]))


def test_similarity_score_of_a_row_does_not_depend_on_the_other_rows():
    V = duplicated_pool(7, d=257)
    ids = [f"e{i:04d}" for i in range(len(V))]
    query = np.random.default_rng(8).normal(size=V.shape[1])
    full = dict((ids[i], s) for i, s in top_k_by_cosine(V, ids, query, len(V)))
    rng = np.random.default_rng(9)
    for size in (1, 2, 3, 5, 17, 64, 129):
        rows = rng.choice(len(V), size=size, replace=False)
        for i, s in top_k_by_cosine(V[rows], [ids[r] for r in rows], query, size):
            assert s == full[ids[rows[i]]]


# ---------------------------------------------------------------------- open's fast path
@pytest.mark.parametrize("scale", [4096.0, 1000.0, 3.7])
def test_float32_input_and_given_id_hashes_fit_the_same_model(scale):
    """Open fits the stored float32 rows as they are, with the stored id hashes: the model must
    be bit for bit the one a float64 copy and freshly computed hashes give."""
    from erase_core.hashing import id_hashes

    X = clustered(300, d=48, blobs=5, seed=9).astype(np.float32)
    ids = [f"r{i:04d}" for i in range(300)]
    reference = QuantizedKMeans(5, scale=scale, seed=2).fit(X.astype(np.float64), ids)
    fast = QuantizedKMeans(5, scale=scale, seed=2).fit(X, ids, id_hashes=id_hashes(ids))
    assert_same_state(fast, reference)
    with pytest.raises(ERASEError, match="id_hashes"):
        QuantizedKMeans(5).fit(X, ids, id_hashes=id_hashes(ids)[:-1])
