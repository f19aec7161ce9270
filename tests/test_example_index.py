"""ExampleIndex: selection, exact forgetting against a fresh build, bad input, threads."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from erase_core import DuplicateIdError, ERASEError, ExampleIndex, UnknownIdError
from conftest import clustered

PARAMS = dict(k=4, epsilon=0.05, seed=2)


def build(X, ids, **params):
    index = ExampleIndex(**{**PARAMS, **params})
    index.add(X, [{"input": f"question {i}", "output": i} for i in ids], ids=ids)
    return index


def fresh_without(X, ids, gone, **params):
    keep = [j for j, i in enumerate(ids) if i not in set(gone)]
    return build(X[keep], [ids[j] for j in keep], **params)


@pytest.fixture
def pool():
    X = clustered(200, d=12, blobs=4, seed=3)
    return X, [f"ex{i:03d}" for i in range(200)]


def test_erase_selects_one_fixed_set(pool):
    X, ids = pool
    index = build(X, ids)
    first = [s.id for s in index.select()]
    assert len(first) == 4 == len(set(first))
    for q in X[:5]:
        assert [s.id for s in index.select(q)] == first
    assert first == index.model.representative_ids_
    assert all(isinstance(s.payload, dict) and -1.01 <= s.score <= 1.01 for s in index.select(X[0]))


def test_similarity_is_exact_top_k(pool):
    X, ids = pool
    index = build(X, ids, strategy="similarity")
    unit = X / np.linalg.norm(X, axis=1, keepdims=True)
    for q in X[:10] + 0.1:
        scores = unit @ (q / np.linalg.norm(q))
        expected = [ids[j] for j in np.argsort(-scores, kind="stable")[:4]]
        got = index.select(q)
        assert [s.id for s in got] == expected
        assert np.allclose([s.score for s in got], np.sort(scores)[::-1][:4], atol=1e-6)
    assert [s.id for s in index.select(X[0], k=7)][:4] == [s.id for s in index.select(X[0])]


@pytest.mark.parametrize("strategy", ["erase", "similarity"])
def test_forget_equals_fresh_build(pool, strategy):
    X, ids = pool
    index = build(X, ids, strategy=strategy)
    gone: list[str] = []
    for victim in [index.select(X[0])[0].id, "ex010", "ex011", index.select(X[1])[2].id]:
        receipt = index.forget([victim])
        gone.append(victim)
        assert receipt.ids == (victim,) and receipt.n_remaining == 200 - len(gone)
        assert receipt.digest_after == index.digest() != receipt.digest_before
        assert victim not in index and victim not in {s.id for s in index.select(X[0])}
        assert index.digest() == fresh_without(X, ids, gone, strategy=strategy).digest()
        assert index.verify()


def test_forget_receipt_reports_selection_change(pool):
    X, ids = pool
    index = build(X, ids)
    chosen = index.select()[1].id
    fingerprint = index.fingerprint()
    receipt = index.forget([chosen])
    assert receipt.selected_changed and index.fingerprint() != fingerprint
    unselected = next(i for i in reversed(ids) if i not in {s.id for s in index.select()} and i not in index.model.seed_ids_)
    fingerprint = index.fingerprint()
    receipt = index.forget([unselected])
    assert receipt.selected_changed == (index.fingerprint() != fingerprint)


def test_add_after_forget_equals_fresh_build(pool):
    X, ids = pool
    index = build(X[:150], ids[:150])
    index.forget(ids[:30])
    index.add(X[150:], [{"input": f"question {i}", "output": i} for i in ids[150:]], ids=ids[150:])
    assert index.digest() == fresh_without(X, ids, ids[:30]).digest()
    assert index.verify()


def test_pool_smaller_than_k_and_growing():
    X = clustered(6, d=8, seed=1)
    ids = [f"s{i}" for i in range(6)]
    index = ExampleIndex(k=4)
    with pytest.raises(ERASEError, match="empty"):
        index.select()
    index.add(X[:2], ["a", "b"], ids=ids[:2])
    with pytest.raises(ERASEError, match="larger than the pool of 2"):
        index.select()
    assert index.model is None
    index.add(X[2:], list("cdef"), ids=ids[2:])
    assert len(index.select()) == 4 and index.model is not None
    index.forget(ids[:3])
    assert index.model is None and index.verify()
    index.forget(ids[3:])
    assert len(index) == 0 and index.digest() == ExampleIndex(k=4).digest()


def test_duplicate_vectors_still_give_k_distinct_examples():
    base = clustered(2, d=8, seed=3)
    X = np.repeat(base, 5, axis=0)
    index = ExampleIndex(k=4)
    index.add(X, list(range(10)), ids=[f"d{i}" for i in range(10)])
    chosen = [s.id for s in index.select()]
    assert len(set(chosen)) == 4
    assert chosen == [s.id for s in index.rebuilt().select()]


def test_generated_ids_are_unique_strings(pool):
    X, _ = pool
    index = ExampleIndex(k=3)
    new = index.add(X[:20], [None] * 20)
    assert len(set(new)) == 20 and all(isinstance(i, str) and i in index for i in new)
    assert index.ids == sorted(new)


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda ix, X: ix.add(X[:1, :3], ["x"]), "dimension"),
        (lambda ix, X: ix.add(np.full((1, 12), np.nan), ["x"]), "NaN"),
        (lambda ix, X: ix.add(np.zeros((1, 12)), ["x"]), "all zeros"),
        (lambda ix, X: ix.add(X[:2], ["x"]), "payloads"),
        (lambda ix, X: ix.add(X[:1], [{"bad": object()}]), "JSON"),
        (lambda ix, X: ix.add(X[:1], [float("nan")]), "JSON"),
        (lambda ix, X: ix.add(X[:2], ["x", "y"], ids=["n", "n"]), "duplicate"),
        (lambda ix, X: ix.add(X[:1], ["x"], ids=["ex001"]), "already present"),
        (lambda ix, X: ix.forget(["ex001", "missing"]), "unknown id"),
        (lambda ix, X: ix.forget(["ex001", "ex001"]), "twice"),
        (lambda ix, X: ix.forget(["ex001"], missing="maybe"), "missing must be"),
        (lambda ix, X: ix.select(X[0], k=500), "larger than the pool"),
        (lambda ix, X: ix.select(X[0], k=5), "at most"),
        (lambda ix, X: ix.select(np.full(12, np.nan)), "NaN"),
        (lambda ix, X: ix.select(np.ones(5)), "dimension"),
    ],
)
def test_bad_input_is_rejected_and_changes_nothing(pool, call, error):
    X, ids = pool
    index = build(X, ids)
    before = index.digest()
    with pytest.raises(ERASEError, match=error):
        call(index, X)
    assert index.digest() == before and len(index) == 200


def test_missing_ignore_forgets_the_known_ones(pool):
    X, ids = pool
    index = build(X, ids)
    receipt = index.forget(["ex005", "nobody"], missing="ignore")
    assert receipt.ids == ("ex005",) and "ex005" not in index
    assert isinstance(UnknownIdError("x"), KeyError) and issubclass(DuplicateIdError, ERASEError)


def test_bad_constructor_arguments():
    with pytest.raises(ERASEError, match="strategy"):
        ExampleIndex(strategy="random")
    with pytest.raises(ERASEError, match="k must be"):
        ExampleIndex(k=0)
    with pytest.raises(ERASEError, match="needs a query_vector"):
        index = ExampleIndex(k=1, strategy="similarity")
        index.add(np.eye(3), [1, 2, 3])
        index.select()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), n=st.integers(4, 40), k=st.integers(1, 5), seed=st.integers(0, 50))
def test_property_add_forget_sequences_equal_fresh_build(data, n, k, seed):
    X = clustered(n, d=6, blobs=3, seed=seed)
    ids = [f"h{i}" for i in range(n)]
    index = ExampleIndex(k=k, epsilon=0.05, seed=seed)
    present: list[str] = []
    for _ in range(data.draw(st.integers(1, 6))):
        absent = [i for i in ids if i not in present]
        if absent and (not present or data.draw(st.booleans())):
            chosen = data.draw(st.lists(st.sampled_from(absent), min_size=1, max_size=5, unique=True))
            index.add(X[[ids.index(c) for c in chosen]], chosen, ids=chosen)
            present += chosen
        else:
            chosen = data.draw(st.lists(st.sampled_from(present), min_size=1, max_size=5, unique=True))
            index.forget(chosen)
            present = [p for p in present if p not in chosen]
        reference = ExampleIndex(k=k, epsilon=0.05, seed=seed)
        if present:
            order = sorted(present)
            reference.add(X[[ids.index(c) for c in order]], order, ids=order)
        assert index.digest() == reference.digest()
        if len(present) >= k:
            assert [s.id for s in index.select()] == [s.id for s in reference.select()]


def test_concurrent_select_never_sees_forgotten_examples(pool):
    X, ids = pool
    index = build(X, ids)
    forgotten: set[str] = set()
    errors: list[str] = []
    stop = threading.Event()

    def reader(strategy_query):
        while not stop.is_set():
            snapshot = set(forgotten)  # forgotten before this select started
            chosen = {s.id for s in index.select(strategy_query)}
            leaked = chosen & snapshot
            if leaked:
                errors.append(f"select returned forgotten {leaked}")
            if len(chosen) != 4:
                errors.append(f"half-applied state: {chosen}")

    threads = [threading.Thread(target=reader, args=(X[j],)) for j in range(3)]
    for t in threads:
        t.start()
    try:
        for _ in range(40):
            victim = index.select()[0].id
            index.forget([victim])
            forgotten.add(victim)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors[:3]
    assert index.verify()


def test_erase_select_below_k_is_a_clear_error():
    index = ExampleIndex(k=5)
    index.add(clustered(3, d=4), [1, 2, 3])
    with pytest.raises(ERASEError, match="larger than the pool"):
        index.select(k=4)
    with pytest.raises(ERASEError, match="needs at least k=5"):
        index.select(k=2)
    with pytest.raises(ERASEError, match="needs at least k=5"):
        index._memory.clustering.erase_ids()


def test_save_writes_an_identical_independent_copy(tmp_path, pool):
    X, ids = pool
    index = build(X, ids)
    index.forget(ids[:5])
    index.save(tmp_path / "copy.sqlite")
    copy = ExampleIndex.open(tmp_path / "copy.sqlite")
    assert copy.digest() == index.digest() and copy.path == tmp_path / "copy.sqlite" and index.path is None
    with pytest.raises(ERASEError, match="already exists"):
        index.save(tmp_path / "copy.sqlite")
