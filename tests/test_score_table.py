"""Recomputes through the kept score table (``QuantizedKMeans._resume_with_table``): each later
iteration updated by the centroids that moved and the points whose label changed. It must end
exactly where the full recompute ends (same arrays, slot for slot) and where a fresh fit on the
remaining points ends, whatever the trajectory does: converge earlier, later, or not at all."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import assert_same_state, clustered
from erase_core import QuantizedKMeans
from erase_core.score_table import ScoreTable, argmin_rows, scores
from test_removal_fast_path import bounds_are_fresh, lattice


def without_table(model: QuantizedKMeans) -> QuantizedKMeans:
    """The same model recomputing by the full path (every iteration over every point)."""
    model._table_ready = lambda: False
    return model


def assert_same_arrays(a: QuantizedKMeans, b: QuantizedKMeans, where) -> None:
    """Slot-for-slot equality of everything but the table itself."""
    n = a._n
    assert n == b._n and a._ids == b._ids, where
    for name in ("_coords", "_labels", "_point_hashes"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), (where, name)
    for name in ("_C", "_R", "_E", "_rep_slot", "_rep_dist"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), (where, name)
    assert (a._n_rec, a._converged, a._final_col) == (b._n_rec, b._converged, b._final_col), where
    assert a._points_hash.hexdigest() == b._points_hash.hexdigest(), where
    assert a.digest() == b.digest(), where


def assert_table_is_fresh(model: QuantizedKMeans, where) -> None:
    """The kept table equals one computed afresh from the points and centroids, and holds
    nothing in unused columns or spare rows."""
    table, n, ncols = model._table, model._n, model._ncols()
    coords = model._coords[:n]
    for c in range(ncols):
        assert np.array_equal(table.values[c, :, :n], scores(coords, model._C[c]).T.astype(np.int64)), (where, c)
        assert np.array_equal(argmin_rows(table.values[c, :, :n]), model._labels[:n, c]), (where, c)
    assert not table.values[ncols:].any() and not table.values[:, :, n:].any(), where
    assert np.array_equal(table.norms[:n], ScoreTable.squared_norms(coords)) and not table.norms[n:].any(), where
    assert np.array_equal(table.columns[:, :n], coords.T) and not table.columns[:, n:].any(), where


CASES = [  # lattices: means on grid boundaries; clustered: many recomputes of both lengths
    ("lattice", dict(n_clusters=3, epsilon=1 / 4096, n_iter=6, seed=9, projection_dim=0)),
    ("lattice", dict(n_clusters=5, epsilon=1 / 4096, n_iter=8, seed=2, projection_dim=0)),
    ("clustered", dict(n_clusters=4, epsilon=0.02, n_iter=10, seed=3)),
    ("clustered", dict(n_clusters=6, epsilon=0.01, n_iter=4, seed=4)),  # often not converged
]


@pytest.mark.parametrize("data,params", CASES)
def test_table_recompute_equals_the_full_one_and_a_fresh_fit(data, params):
    n0, extra = 360, 120
    seed = params["seed"]
    X = lattice(n0 + extra, seed=seed) if data == "lattice" else clustered(n0 + extra, seed=seed)
    ids = [f"p{i}" for i in range(len(X))]
    fast = QuantizedKMeans(**params).fit(X[:n0], ids[:n0])
    slow = without_table(QuantizedKMeans(**params).fit(X[:n0], ids[:n0]))
    present, pending = list(range(n0)), list(range(n0, n0 + extra))
    rng = np.random.default_rng(seed)
    seen = {"table": 0, "same_cols": 0, "other_cols": 0, "past_old_end": 0, "rejoined": 0, "later_direct": 0}
    original, finish, delta = fast._resume_with_table, fast._finish, fast._apply_delta

    def count_rejoins(*args, rejoined=False, **kwargs):
        seen["rejoined"] += rejoined
        finish(*args, rejoined=rejoined, **kwargs)

    def count_spans(*args, **kwargs):  # an update that itself moves centroids of several iterations
        span = delta(*args, **kwargs)
        seen["later_direct"] += span is not None and span[1] > span[0]
        return span

    fast._finish, fast._apply_delta = count_rejoins, count_spans

    def spy(t, last, fresh):
        before = fast._ncols()
        original(t, last, fresh)
        seen["table"] += 1
        after = fast._ncols()
        seen["same_cols" if after == before else "other_cols"] += 1
        seen["past_old_end"] += after > before
        assert_table_is_fresh(fast, ("after recompute", seen["table"]))

    fast._resume_with_table = spy
    for step in range(140):
        kind = step % 7
        if kind in (0, 1, 2, 4) and len(present) > 3 * params["n_clusters"]:  # one removal
            i = present.pop(int(rng.integers(len(present))))
            a, b = fast.remove([ids[i]]), slow.remove([ids[i]])
        elif kind == 3 and len(present) > 3 * params["n_clusters"] + 8:  # a batch removal
            picks = sorted(rng.choice(len(present), 5, replace=False).tolist(), reverse=True)
            batch = [ids[present.pop(p)] for p in picks]
            a, b = fast.remove(batch), slow.remove(batch)
        elif pending:  # one or several insertions
            take = [pending.pop(0) for _ in range(min(len(pending), 1 if kind == 5 else 4))]
            present += take
            a, b = fast.insert(X[take], [ids[i] for i in take]), slow.insert(X[take], [ids[i] for i in take])
        else:
            continue
        assert a == b, step
        assert_same_arrays(fast, slow, step)
        if fast._table is not None:  # also after cheap forgets: the removed point's column is gone
            assert_table_is_fresh(fast, step)
        if step % 20 == 0:
            assert bounds_are_fresh(fast)
    keep = sorted(present)
    assert_same_state(fast, QuantizedKMeans(**params).fit(X[keep], [ids[i] for i in keep]))
    # the table path ran; on clustered data trajectories both kept and changed their length,
    # rejoined the previous run, and updates moved centroids of several iterations at once
    assert seen["table"] >= 5 and seen["other_cols"] >= 1, seen
    if data == "clustered":
        assert seen["same_cols"] >= 10 and seen["past_old_end"] >= 1, seen
        assert seen["rejoined"] >= 3 and seen["later_direct"] >= 1, seen


def test_the_table_reaches_past_the_previous_convergence():
    """A recompute that runs longer than the previous run reads the previous run's last
    column after having overwritten it (kept aside): checked against the full path."""
    X = clustered(500, seed=11)
    ids = [f"r{i}" for i in range(500)]
    params = dict(n_clusters=4, epsilon=0.02, n_iter=12, seed=11)
    fast = QuantizedKMeans(**params).fit(X, ids)
    slow = without_table(QuantizedKMeans(**params).fit(X, ids))
    longer = 0
    for step, i in enumerate(np.random.default_rng(1).permutation(500)[:300]):
        before = fast.n_iter_
        a, b = fast.remove([ids[i]]), slow.remove([ids[i]])
        assert a == b
        longer += a.recomputed and fast.n_iter_ > before and a.recompute_from < before
        assert_same_arrays(fast, slow, step)
    assert longer >= 1


def test_no_table_beyond_its_memory_budget():
    """Where (n_iter + 1) x k scores per point exceed the budget the full path runs, still exact."""
    X = clustered(300, seed=5)
    ids = [f"s{i}" for i in range(300)]
    params = dict(n_clusters=16, epsilon=0.01, n_iter=10, seed=5)
    assert not ScoreTable.allowed(params["n_iter"] + 1, params["n_clusters"], 16)
    model = QuantizedKMeans(**params).fit(X, ids)
    recomputes = 0
    for i in range(120):
        recomputes += model.remove([ids[i]]).recomputed
    assert recomputes >= 1 and model._table is None
    assert_same_state(model, QuantizedKMeans(**params).fit(X[120:], ids[120:]))


def test_argmin_rows_is_numpy_argmin_with_ties_to_the_lowest_index():
    rng = np.random.default_rng(0)
    values = rng.integers(-3, 3, size=(7, 5000))  # many ties
    assert np.array_equal(argmin_rows(values), np.argmin(values, axis=0))


@pytest.mark.parametrize("block", [1, 7, 64, 10_000])
@pytest.mark.parametrize("from_source", [False, True])
def test_relabel_equals_fresh_scores_and_their_argmin(block, from_source):
    """``ScoreTable.relabel`` block by block (blocks of 1, a ragged last block, one block): the
    updated column equals scores computed afresh against the new centroids, its labels and
    minima equal numpy's, for sparse moves (a few coordinates) and dense ones (most of them),
    in place or from another column; clusters that did not move keep their scores."""
    rng = np.random.default_rng(block)
    n, k, m = 300, 5, 12
    coords = rng.integers(-40, 40, size=(n, m)).astype(np.float64)
    old = rng.integers(-40, 40, size=(k, m)).astype(np.float64)
    new = old.copy()
    new[1, [2, 7]] += [3, -5]  # sparse
    new[3] += rng.integers(-4, 5, size=m)  # dense
    new[3, 0] = old[3, 0] + 1  # (surely moved)
    table = ScoreTable(2, n + 9, k, coords)  # spare rows stay untouched
    table.set_column(0, n, coords, old, 64)
    if from_source:
        column, source = table.values[1, :, :n], table.values[0, :, :n]
    else:
        column, source = table.values[0, :, :n], None
    before = column.copy() if source is None else source.copy()
    best = np.empty(n, dtype=np.int64)
    labels = table.relabel(column, coords, old, new, source, best=best, block=block)
    fresh = scores(coords, new).T.astype(np.int64)
    assert np.array_equal(column, fresh)
    assert np.array_equal(labels, np.argmin(fresh, axis=0)) and labels.dtype == np.int16
    assert np.array_equal(best, fresh.min(axis=0))
    assert np.array_equal(column[[0, 2, 4]], before[[0, 2, 4]])
    assert not table.values[:, :, n:].any()
    if from_source:
        assert np.array_equal(table.values[0, :, :n], before)  # the source is not written


def test_the_table_engages_at_the_defaults():
    """At the library defaults (d = 384 projected to 32, k = 4, n_iter = 10) the first recompute
    builds the table and later ones use it (a table that never engaged would pass every
    equality test above silently)."""
    X = clustered(800, d=384, seed=8)
    ids = [f"v{i}" for i in range(800)]
    model = QuantizedKMeans(4, epsilon=0.03).fit(X, ids)
    recomputes = 0
    for i in range(400):
        recomputes += model.remove([ids[i]]).recompute_from not in (None, -1)
        if recomputes >= 2:
            break
    assert recomputes >= 2 and model._table is not None
    assert_table_is_fresh(model, "defaults")
    assert_same_state(model, QuantizedKMeans(4, epsilon=0.03).fit(X[i + 1 :], ids[i + 1 :]))
