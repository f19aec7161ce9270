"""The single-point removal fast path (``QuantizedKMeans._remove_one``): kept removal bounds
decide, without re-quantizing, whether a centroid moves. It must decide exactly as the general
path does, including on the grid boundaries, and leave the state a fresh fit leaves."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import assert_same_state, clustered
from erase_core import QuantizedKMeans


def lattice(n: int, seed: int, dim: int = 2, top: int = 6) -> np.ndarray:
    """Points with small integer coordinates (in units of 1/4096, exact at scale 4096): many
    duplicates and means that land exactly on grid boundaries, where an off-by-one shows."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, top, size=(n, dim)).astype(np.float64) / 4096.0


def general_remove(model: QuantizedKMeans, i: str):
    """The general path for one id (a generator is not a list: the fast path is skipped)."""
    return model.remove(x for x in [i])


def bounds_are_fresh(model: QuantizedKMeans) -> bool:
    """The kept bounds equal bounds computed afresh from the sums, counts and centroids."""
    R, E = model._R.copy(), model._E.copy()
    model._refresh_bounds()
    return np.array_equal(R, model._R) and np.array_equal(E, model._E)


CASES = [
    ("lattice", dict(n_clusters=3, epsilon=2 / 4096, n_iter=6, seed=1, projection_dim=0)),
    ("lattice", dict(n_clusters=5, epsilon=1 / 4096, n_iter=8, seed=2, projection_dim=0)),
    ("clustered", dict(n_clusters=4, epsilon=0.05, n_iter=10, seed=3)),
]


@pytest.mark.parametrize("data,params", CASES)
def test_fast_path_decides_as_the_general_path(data, params):
    X = lattice(300, seed=params["seed"]) if data == "lattice" else clustered(300, seed=params["seed"])
    ids = [f"p{i}" for i in range(len(X))]
    fast = QuantizedKMeans(**params).fit(X, ids)
    slow = QuantizedKMeans(**params).fit(X, ids)
    order = np.random.default_rng(7).permutation(len(ids))[: len(ids) - 2 * params["n_clusters"]]
    taken = {"fast": 0, "general": 0}
    original = fast._remove_one

    def spy(i):
        report = original(i)
        taken["fast" if report is not None else "general"] += 1
        return report

    fast._remove_one = spy
    for step, r in enumerate(order):
        a, b = fast.remove([ids[r]]), general_remove(slow, ids[r])
        assert a == b, (step, ids[r])
        assert fast.digest() == slow.digest(), step
        if step % 25 == 0:
            assert_same_state(fast, slow)
            assert bounds_are_fresh(fast)
    assert_same_state(fast, slow)
    remaining = [ids[i] for i in sorted(set(range(len(ids))) - set(order.tolist()))]
    keep = [int(i[1:]) for i in remaining]
    assert_same_state(fast, QuantizedKMeans(**params).fit(X[keep], remaining))
    # both outcomes were exercised: removals that stay cheap and removals that move a centroid
    assert taken["fast"] > 50 and taken["general"] > 5, taken


def test_fast_path_leaves_a_fresh_fit_after_insertions_and_batches():
    """Bounds stay right across every kind of update that touches the statistics."""
    X = lattice(400, seed=5)
    ids = [f"q{i}" for i in range(400)]
    params = dict(n_clusters=4, epsilon=2 / 4096, n_iter=8, seed=5, projection_dim=0)
    model = QuantizedKMeans(**params).fit(X[:300], ids[:300])
    present = set(ids[:300])
    rng = np.random.default_rng(0)
    for step in range(60):
        if step % 10 == 3:  # a batch insert (cheap or recomputing)
            new = [i for i in ids[300:] if i not in present][:5]
            if new:
                model.insert(X[[int(i[1:]) for i in new]], new)
                present |= set(new)
        elif step % 10 == 7:  # a batch removal through the general path
            gone = sorted(rng.choice(sorted(present), 3, replace=False).tolist())
            model.remove(gone)
            present -= set(gone)
        else:
            gone = str(rng.choice(sorted(present)))
            model.remove([gone])
            present.discard(gone)
        assert bounds_are_fresh(model), step
    keep = sorted(int(i[1:]) for i in present)
    assert_same_state(model, QuantizedKMeans(**params).fit(X[keep], [ids[i] for i in keep]))


def test_fast_path_changes_nothing_when_it_does_not_apply():
    X = clustered(120, seed=4)
    ids = [f"r{i}" for i in range(120)]
    model = QuantizedKMeans(n_clusters=4, epsilon=0.05, seed=4).fit(X, ids)
    before = model.canonical_state()
    digest = model.digest()
    for i in ["nope", 7, model.seed_ids_[0]]:
        assert model._remove_one(i) is None
    small = QuantizedKMeans(n_clusters=4, seed=4).fit(X[:4], ids[:4])
    assert small._remove_one(ids[0]) is None  # would leave fewer points than clusters
    after = model.canonical_state()
    assert all(np.array_equal(before[k], after[k]) if isinstance(before[k], np.ndarray) else before[k] == after[k]
               for k in before)
    assert model.digest() == digest


def test_fast_removal_shreds_the_point_and_its_hashes():
    X = clustered(200, seed=9)
    ids = [f"s{i}" for i in range(200)]
    model = QuantizedKMeans(n_clusters=4, epsilon=0.05, seed=9).fit(X, ids)
    for victim in (i for i in ids[::-1] if i not in model.seed_ids_ and i not in model.representative_ids_):
        slot = model._slot_of[victim]
        coords, hashes = model._coords[slot].copy(), model._point_hashes[slot].copy()
        if not model.remove([victim]).recomputed:
            break  # a removal the fast path took
    else:
        pytest.fail("no cheap removal")
    n = len(model)
    assert not (model._coords == coords).all(axis=1).any()
    # every hash that names the point (id, id + vector, element, lane terms) is gone; the last
    # column, the linear form of its label row, is a function of the labels alone and is shared
    # by every point that took the same clusters
    for value in hashes[:5].tolist():
        assert value not in model._point_hashes.ravel().tolist()
    assert not model._coords[n:].any() and not model._point_hashes[n:].any()


def _strings_reachable(root) -> set[str]:
    """Every str reachable from ``root`` through containers and erase_core objects' attributes
    (numpy arrays are left to the byte-level residue tests)."""
    seen, out, stack = set(), set(), [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, str):
            out.add(obj)
        elif isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        elif type(obj).__module__.startswith("erase_core"):
            stack.extend(getattr(obj, "__dict__", {}).values())
            stack.extend(getattr(obj, s) for s in getattr(type(obj), "__slots__", ()) if hasattr(obj, s))
    return out


def test_no_cache_keeps_a_forgotten_id():
    """A forgotten seed, representative or plain point leaves its id in no attribute or cache
    of the model or the index (seed set, digest text, selection snapshot, audit log, ...)."""
    from erase_core import ExampleIndex

    X = clustered(300, seed=11)
    ids = [f"t{i}" for i in range(300)]
    index = ExampleIndex(k=4, seed=11)
    index.add(X, [{"i": i} for i in range(300)], ids)
    model = index.model
    index.select()
    index.digest()
    for victim in (model.seed_ids_[1], model.representative_ids_[2], next(i for i in ids[::-1] if i not in model.seed_ids_)):
        index.forget([victim])
        index.select()
        index.digest()
        index.audit()
        assert victim not in _strings_reachable(index), victim
