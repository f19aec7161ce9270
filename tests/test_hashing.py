"""Hashing helpers: the small-input fast paths agree bit for bit with the vectorised ones."""

from __future__ import annotations

import numpy as np

from erase_core.hashing import MultisetHash, _mix_int, exponential_variates, row_hashes, splitmix64, stream_key


def test_python_mixer_equals_numpy_mixer():
    values = np.random.default_rng(0).integers(0, 2**63, 100, dtype=np.int64).astype(np.uint64)
    assert [int(v) for v in splitmix64(values)] == [_mix_int(int(v)) for v in values]


def test_multiset_hash_is_order_free_and_path_independent():
    h = np.random.default_rng(1).integers(0, 2**63, 40, dtype=np.int64).astype(np.uint64)
    bulk, single = MultisetHash(), MultisetHash()
    bulk.add(h)  # vectorised path
    for x in h[::-1]:
        single.add(np.array([x], dtype=np.uint64))  # per-element path, other order
    assert bulk.hexdigest() == single.hexdigest()
    bulk.remove(h[:30])
    for x in h[:30]:
        single.remove(np.array([x], dtype=np.uint64))
    assert bulk.hexdigest() == single.hexdigest() != MultisetHash().hexdigest()


def test_keyed_draws_and_row_hashes_do_not_depend_on_batching():
    rows = np.random.default_rng(2).integers(-5000, 5000, (300, 17)).astype(np.float64)
    hashes = row_hashes(rows)
    draws = exponential_variates(hashes, stream_key(3, 1, 2))
    for i in (0, 7, 299):
        assert row_hashes(rows[i : i + 1])[0] == hashes[i]
        assert exponential_variates(hashes[i : i + 1], stream_key(3, 1, 2))[0] == draws[i]


def test_python_row_hashes_equal_numpy_row_hashes():
    from erase_core.hashing import row_hash_ints, row_hashes

    rng = np.random.default_rng(3)
    for width in (1, 2, 7, 11):
        m = rng.integers(0, 2**15 - 1, size=(9, width)).astype(np.int16)
        assert row_hash_ints(m.tolist()) == [int(x) for x in row_hashes(m)]


def test_float32_transform_equals_the_float64_path():
    from erase_core.fixed_point import FixedPointSpace

    rng = np.random.default_rng(5)
    X = rng.normal(size=(3000, 64)).astype(np.float32)
    X[:1000] /= np.linalg.norm(X[:1000], axis=1, keepdims=True)
    X[1000:1010] *= 20  # large rows: the float64 fallback inside the float32 path
    for projection_dim in (None, 16):
        space = FixedPointSpace(64, projection_dim=projection_dim, seed=2)
        fast = space.transform(X)
        slow = space.transform(X.astype(np.float64))  # float64 input takes the float64 path
        assert fast.dtype == slow.dtype == np.float64 and np.array_equal(fast, slow)


def test_lane_terms_add_and_remove_like_the_elements():
    from erase_core.hashing import MultisetHash

    h = np.random.default_rng(0).integers(0, 2**63, size=50, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    whole, by_lanes = MultisetHash(), MultisetHash()
    whole.add(h)
    lanes = MultisetHash.lanes_each(h)
    by_lanes.add_lanes(lanes)
    assert by_lanes.hexdigest() == whole.hexdigest()
    whole.remove(h[7:8])
    by_lanes.remove_lanes(lanes[7])
    assert by_lanes.hexdigest() == whole.hexdigest()


def test_row_forms_update_column_by_column():
    """A kept linear form follows a changed entry or an appended column without the other
    columns, and finishes to the same row hash (the engine's recompute relies on it)."""
    from erase_core.hashing import column_weight, finish_row_hashes, row_form_ints, row_forms, row_hashes

    rng = np.random.default_rng(3)
    m = rng.integers(0, 9, size=(50, 7))
    forms = row_forms(m[:, :5])
    assert np.array_equal(finish_row_hashes(forms, 5), row_hashes(m[:, :5]))
    assert row_form_ints(m[:, :5].tolist()) == [int(f) for f in forms]
    with np.errstate(over="ignore"):
        grown = forms + m[:, 5].astype(np.uint64) * column_weight(5) + m[:, 6].astype(np.uint64) * column_weight(6)
    assert np.array_equal(grown, row_forms(m))
    changed = m.copy()
    changed[:, 2] = (changed[:, 2] + 4) % 9
    step = (changed[:, 2] - m[:, 2]).astype(np.int64).view(np.uint64)
    with np.errstate(over="ignore"):
        assert np.array_equal(row_forms(m) + step * column_weight(2), row_forms(changed))


def test_elements_into_equals_the_whole_array_expressions():
    """The blocked in-place elements and lane terms are bit-identical to the plain expressions,
    for sizes below, at and across the block size, and into a strided output."""
    from erase_core.hashing import finish_row_hashes

    rng = np.random.default_rng(5)
    for n, block in ((0, 8), (5, 8), (8, 8), (1001, 64), (3000, 32768)):
        row_hash = rng.integers(0, 2**64, n, dtype=np.uint64)
        forms = rng.integers(0, 2**64, n, dtype=np.uint64)
        width = int(rng.integers(1, 12))
        elem = splitmix64(row_hash ^ finish_row_hashes(forms, width))
        table = np.zeros((n, 6), dtype=np.uint64)  # strided, as the model's point hashes
        MultisetHash.elements_into(table[:, 2:5], row_hash, forms, width, block=block)
        assert np.array_equal(table[:, 2], elem), n
        assert np.array_equal(table[:, 3:5], MultisetHash.lanes_each(elem)), n
        # both share one lane definition: check it against the plain expressions too
        plain = np.stack([splitmix64(elem ^ np.uint64(0x1234567)), splitmix64(splitmix64(elem) ^ np.uint64(0x7654321))], axis=1)
        assert np.array_equal(table[:, 3:5], plain), n
        assert not table[:, [0, 1, 5]].any()
