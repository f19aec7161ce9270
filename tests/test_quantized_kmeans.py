"""QuantizedKMeans: exactness of remove/insert against a fresh fit, determinism, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from erase_core import DuplicateIdError, ERASEError, QuantizedKMeans, UnknownIdError
from conftest import assert_same_state, clustered


def fresh(X, ids, present, **params):
    keep = [i for i, name in enumerate(ids) if name in present]
    return QuantizedKMeans(**params).fit(X[keep], [ids[i] for i in keep])


PARAMS = dict(n_clusters=4, epsilon=0.05, n_iter=10, seed=3)


def test_fit_is_deterministic_and_order_free():
    X = clustered(400)
    ids = [f"x{i}" for i in range(400)]
    a = QuantizedKMeans(**PARAMS).fit(X, ids)
    perm = np.random.default_rng(0).permutation(400)
    b = QuantizedKMeans(**PARAMS).fit(X[perm], [ids[i] for i in perm])
    assert_same_state(a, b)
    assert list(a.ids_) == sorted(ids)
    assert a.labels_.shape == (400,)
    assert a.centroids_.shape == (4, 16)


def test_seed_changes_model():
    X = clustered(300)
    a = QuantizedKMeans(**PARAMS).fit(X)
    b = QuantizedKMeans(**{**PARAMS, "seed": 4}).fit(X)
    assert a.digest() != b.digest()


@pytest.mark.parametrize("projection_dim", [None, 8])
def test_each_single_removal_equals_fresh_fit(projection_dim):
    X = clustered(250, seed=1)
    ids = [f"p{i:03d}" for i in range(250)]
    params = dict(PARAMS, projection_dim=projection_dim)
    model = QuantizedKMeans(**params).fit(X, ids)
    present = set(ids)
    order = np.random.default_rng(7).permutation(250)[:60]
    kinds = set()
    for i in order:
        report = model.remove([ids[i]])
        present.discard(ids[i])
        kinds.add(report.recompute_from is None)
        assert_same_state(model, fresh(X, ids, present, **params))
    assert kinds == {True, False}, "both the cheap path and recomputes should be exercised"


def test_removing_a_seed_reruns_seeding():
    X = clustered(200, seed=2)
    ids = [f"s{i}" for i in range(200)]
    model = QuantizedKMeans(**PARAMS).fit(X, ids)
    seed_id = model.seed_ids_[1]
    report = model.remove([seed_id])
    assert report.recompute_from == -1
    assert_same_state(model, fresh(X, ids, set(ids) - {seed_id}, **PARAMS))


def test_batch_insert_and_remove_equal_fresh_fit():
    X = clustered(300, seed=5)
    ids = [f"b{i}" for i in range(300)]
    model = QuantizedKMeans(**PARAMS).fit(X[:200], ids[:200])
    model.insert(X[200:], ids[200:])
    assert_same_state(model, QuantizedKMeans(**PARAMS).fit(X, ids))
    gone = ids[50:120]
    model.remove(gone)
    assert_same_state(model, fresh(X, ids, set(ids) - set(gone), **PARAMS))


def test_cheap_removals_dominate_on_a_larger_pool():
    X = clustered(20000, d=32, blobs=8, seed=9)
    model = QuantizedKMeans(n_clusters=8, epsilon=0.05, seed=0).fit(X)
    reports = [model.remove([str(i)]) for i in range(0, 20000, 200)]
    cheap = sum(r.recompute_from is None for r in reports)
    assert cheap >= 0.7 * len(reports), f"only {cheap}/{len(reports)} removals were cheap"


def test_duplicates_and_degenerate_pools():
    base = clustered(3, seed=4)
    X = np.repeat(base, 4, axis=0)  # 12 points, 3 distinct
    ids = [f"d{i:02d}" for i in range(12)]
    model = QuantizedKMeans(n_clusters=5, epsilon=0.05, seed=1).fit(X, ids)
    assert sum(r is not None for r in model.representative_ids_) == 3
    present = set(ids)
    for victim in ["d00", "d05", "d11", "d07"]:
        model.remove([victim])
        present.discard(victim)
        assert_same_state(model, fresh(X, ids, present, n_clusters=5, epsilon=0.05, seed=1))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    n=st.integers(8, 60),
    d=st.integers(1, 12),
    k=st.integers(1, 6),
    epsilon=st.sampled_from([0.001, 0.02, 0.1, 0.5]),
    seed=st.integers(0, 2**31),
    n_iter=st.integers(1, 6),
    duplicate_rows=st.booleans(),
)
def test_property_interleaved_operations_equal_fresh_fit(data, n, d, k, epsilon, seed, n_iter, duplicate_rows):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.1, 2.0)
    if duplicate_rows:
        X[n // 2 :] = X[: n - n // 2]
    ids = [f"id{i}" for i in range(n)]
    params = dict(n_clusters=k, epsilon=epsilon, n_iter=n_iter, seed=seed % 1000)
    start = data.draw(st.integers(k, n), label="initial size")
    present = set(ids[:start])
    model = QuantizedKMeans(**params).fit(X[:start], ids[:start])
    for _ in range(data.draw(st.integers(1, 8), label="operations")):
        absent = [i for i in ids if i not in present]
        if absent and data.draw(st.booleans(), label="insert?"):
            chosen = data.draw(st.lists(st.sampled_from(absent), min_size=1, max_size=4, unique=True))
            rows = [ids.index(c) for c in chosen]
            model.insert(X[rows], chosen)
            present |= set(chosen)
        elif len(present) > k:
            pool = sorted(present)
            chosen = data.draw(st.lists(st.sampled_from(pool), min_size=1, max_size=min(4, len(present) - k), unique=True))
            model.remove(chosen)
            present -= set(chosen)
        assert_same_state(model, fresh(X, ids, present, **params))


# ---------------------------------------------------------------------------------- bad input
@pytest.fixture
def fitted():
    X = clustered(60, seed=11)
    return QuantizedKMeans(**PARAMS).fit(X, [f"f{i}" for i in range(60)]), X


@pytest.mark.parametrize(
    "bad, error",
    [
        (lambda X: (np.where(np.arange(16) == 3, np.nan, X[:2]), ["n1", "n2"]), "NaN"),
        (lambda X: (np.full((1, 16), np.inf), ["n1"]), "NaN or infinite"),
        (lambda X: (X[:2, :5], ["n1", "n2"]), "dimension"),
        (lambda X: (X[:2], ["n1", "n1"]), "duplicate"),
        (lambda X: (X[:1], ["f3"]), "already present"),
        (lambda X: (X[:2], ["n1"]), "got 1 ids"),
        (lambda X: (np.zeros((0, 16)), []), "empty"),
        (lambda X: (X[:1] * 1e6, ["huge"]), "too large"),
        (lambda X: (X[:1], [7]), "strings"),
    ],
)
def test_bad_insert_raises_and_changes_nothing(fitted, bad, error):
    model, X = fitted
    before = model.digest()
    args = bad(X)
    with pytest.raises(ERASEError, match=error):
        model.insert(*args)
    assert model.digest() == before and len(model) == 60


def test_bad_remove_raises_and_changes_nothing(fitted):
    model, _ = fitted
    before = model.digest()
    with pytest.raises(UnknownIdError, match="unknown id 'nope'"):
        model.remove(["f1", "nope"])
    with pytest.raises(DuplicateIdError):
        model.remove(["f1", "f1"])
    with pytest.raises(ERASEError, match="fewer than n_clusters"):
        model.remove([f"f{i}" for i in range(58)])
    assert model.digest() == before and "f1" in model


def test_bad_fit_arguments():
    X = clustered(10)
    with pytest.raises(ERASEError, match="larger than"):
        QuantizedKMeans(20).fit(X)
    with pytest.raises(ERASEError, match="epsilon"):
        QuantizedKMeans(2, epsilon=float("nan"))
    with pytest.raises(ERASEError, match="n_clusters"):
        QuantizedKMeans(0)
    with pytest.raises(ERASEError, match="not fitted"):
        QuantizedKMeans(2).remove(["a"])
    with pytest.raises(ERASEError, match="2-dimensional"):
        QuantizedKMeans(2).fit(np.zeros((2, 2, 2)))


def test_quantization_costs_little_objective():
    """Against unquantized Lloyd from the same seeds, the objective stays within a few percent."""
    X = clustered(3000, d=32, blobs=6, seed=21)
    model = QuantizedKMeans(n_clusters=6, epsilon=0.02, n_iter=10, seed=0).fit(X)
    centres = model.coordinates(model.seed_ids_)
    points = model.coordinates([str(i) for i in range(3000)])
    for _ in range(10):
        labels = ((points[:, None, :] - centres[None]) ** 2).sum(-1).argmin(1)
        centres = np.stack([points[labels == j].mean(0) if (labels == j).any() else centres[j] for j in range(6)])
    reference = ((points - centres[labels]) ** 2).sum()
    assert model.inertia() <= 1.05 * reference


def test_removed_points_leave_no_copy_in_memory():
    X = clustered(80, seed=13)
    model = QuantizedKMeans(**PARAMS).fit(X)
    victims = [str(i) for i in range(0, 80, 7)]
    coords = model.coordinates(victims)
    model.remove(victims)
    for row in coords * model._space.unit:
        assert not (model._coords == row).all(axis=1).any()
    assert not set(victims) & set(model._slot_of) and not set(victims) & set(model._ids)


def test_default_projection_resolves_by_dimension():
    wide, narrow = clustered(50, d=64, seed=1), clustered(50, d=16, seed=1)
    assert QuantizedKMeans(3).fit(wide).projection_dim_ == 32
    assert QuantizedKMeans(3).fit(narrow).projection_dim_ is None
    assert QuantizedKMeans(3, projection_dim=0).fit(wide).projection_dim_ is None
    assert QuantizedKMeans(3, projection_dim=8).fit(narrow).projection_dim_ == 8
    assert QuantizedKMeans(3).fit(wide).digest() != QuantizedKMeans(3, projection_dim=0).fit(wide).digest()
    with pytest.raises(ERASEError, match="projection_dim"):
        QuantizedKMeans(3, projection_dim=-1)


@pytest.mark.processes
def test_blas_libraries_loaded_after_the_first_fit_are_limited_too():
    """The BLAS limit covers libraries imported after the library's first fit (faiss's OpenBLAS
    here): a fresh process fits, imports faiss, and fits again under a spy."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import numpy as np
        from threadpoolctl import threadpool_info, threadpool_limits
        import erase_core.quantized_kmeans as qk
        X = np.random.default_rng(0).normal(size=(200, 8))
        ids = [str(i) for i in range(200)]
        qk.QuantizedKMeans(3).fit(X, ids)
        n_before = len([i for i in threadpool_info() if i["user_api"] == "blas"])
        import faiss  # noqa: F401  (brings its own OpenBLAS)
        seen = []
        real = qk.QuantizedKMeans._statistics
        def spy(self, labels):
            seen.append([i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"])
            return real(self, labels)
        qk.QuantizedKMeans._statistics = spy
        with threadpool_limits(2, user_api="blas"):
            qk.QuantizedKMeans(3).fit(X, ids)
        assert len(seen[0]) > n_before, (n_before, seen[0])
        assert all(t == 1 for threads in seen for t in threads), seen
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def test_fit_and_recomputes_limit_blas_threads_locally():
    """The hot path runs BLAS on one thread and gives the caller's setting back."""
    from threadpoolctl import threadpool_info, threadpool_limits

    import erase_core.quantized_kmeans as qk

    seen = []
    real = qk.QuantizedKMeans._statistics

    def spy(self, labels):
        seen.append([i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"])
        return real(self, labels)

    X = np.random.default_rng(0).normal(size=(300, 8))
    with threadpool_limits(2, user_api="blas"):
        before = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
        qk.QuantizedKMeans._statistics = spy
        try:
            QuantizedKMeans(3).fit(X, [str(i) for i in range(300)])
        finally:
            qk.QuantizedKMeans._statistics = real
        after = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    assert seen and all(all(t == 1 for t in threads) for threads in seen)
    assert after == before
