"""The vector-store primitives of the engine: ``search`` (top-k and MMR under any strategy),
the ``mmr`` strategy, and ``upsert`` (replace by id), each checked against a fresh build."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import clustered
from erase_core import DuplicateIdError, ERASEError, ExampleIndex
from erase_core.selection import mmr_rank
from residue import all_file_bytes, surviving

D = 12


def build(X, ids, payloads=None, metadata=None, **params) -> ExampleIndex:
    index = ExampleIndex(params.pop("k", 4), **params)
    index.add(X, payloads if payloads is not None else [{"id": i} for i in ids], ids, metadata=metadata)
    return index


def picks(results) -> list[tuple[str, float]]:
    return [(r.id, r.score) for r in results]


def reference_mmr(X: np.ndarray, q: np.ndarray, k: int, fetch_k: int, lam: float) -> list[int]:
    """MMR written out directly (float64, brute force) on rows without ties."""
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    sim = U @ (q / np.linalg.norm(q))
    cands = list(np.argsort(-sim)[:fetch_k])
    chosen = [cands.pop(0)]
    while len(chosen) < k and cands:
        score = [lam * sim[c] - (1 - lam) * max(U[c] @ U[s] for s in chosen) for c in cands]
        chosen.append(cands.pop(int(np.argmax(score))))
    return chosen


@pytest.mark.parametrize("lam", [0.0, 0.25, 0.5, 1.0])
def test_mmr_matches_the_definition(lam):
    X = clustered(200, D, seed=1, unit=False)
    ids = [f"x{i:03d}" for i in range(200)]
    index = build(X, ids, strategy="similarity")
    rng = np.random.default_rng(2)
    for _ in range(5):
        q = rng.normal(size=D)
        got = [r.id for r in index.search(q, 6, mmr=True, fetch_k=25, lambda_mult=lam)]
        assert got == [ids[i] for i in reference_mmr(X, q, 6, 25, lam)]
    # lambda 1 is plain similarity
    assert picks(index.search(q, 6, mmr=True, fetch_k=25, lambda_mult=1.0)) == picks(index.search(q, 6))


def test_mmr_is_a_function_of_the_set_with_ties_by_id():
    base = clustered(30, D, seed=3)
    X = np.concatenate([base, base[:10], base[:10]])  # every one of the first ten rows three times
    ids = [f"e{i:02d}" for i in range(len(X))]
    q = base[0] + 0.1 * base[1]
    results = set()
    for seed in range(6):
        order = np.random.default_rng(seed).permutation(len(X))
        index = build(X[order], [ids[i] for i in order], strategy="mmr", k=5)
        results.add(tuple(picks(index.select(q))))
        results.add(tuple(picks(index.search(q, 5, mmr=True, fetch_k=12, lambda_mult=0.3))))
    assert len(results) == 2  # one per call, whatever the insertion order


@pytest.mark.parametrize("strategy", ["erase", "similarity", "mmr"])
def test_search_after_forget_equals_a_fresh_build(strategy, tmp_path):
    X = clustered(120, D, seed=4)
    ids = [f"d{i:03d}" for i in range(120)]
    meta = [{"lang": "en" if i % 3 else "fr"} for i in range(120)]
    index = ExampleIndex(4, strategy=strategy, seed=7, path=tmp_path / "s.db")
    index.add(X, [{"id": i} for i in ids], ids, metadata=meta)
    rng = np.random.default_rng(5)
    gone = list(rng.choice(ids, 30, replace=False))
    index.forget(gone)
    keep = [i for i in range(120) if ids[i] not in gone]
    fresh = build(X[keep], [ids[i] for i in keep], metadata=[meta[i] for i in keep], strategy=strategy, seed=7)
    assert index.verify()
    for _ in range(5):
        q = rng.normal(size=D)
        for kwargs in ({}, {"mmr": True}, {"mmr": True, "fetch_k": 8, "lambda_mult": 0.2}, {"filter": {"lang": "fr"}},
                       {"filter": {"lang": "en"}, "mmr": True}):
            got = picks(index.search(q, 5, **kwargs))
            assert got == picks(fresh.search(q, 5, **kwargs))
            assert not set(r for r, _ in got) & set(gone)
        if strategy != "erase":
            assert picks(index.select(q)) == picks(fresh.select(q))
    index.close()


def test_search_is_lenient_where_select_is_strict():
    index = ExampleIndex(4, strategy="similarity")
    assert index.search(np.ones(D), 3) == []
    assert index.search(np.ones(D), 3, mmr=True) == []
    with pytest.raises(ERASEError, match="empty"):
        index.select(np.ones(D))
    index.add(clustered(3, D), [1, 2, 3], ["a", "b", "c"])
    assert len(index.search(np.ones(D), 10)) == 3
    assert len(index.search(np.ones(D), 10, mmr=True)) == 3
    with pytest.raises(ERASEError, match="larger than the pool"):
        index.select(np.ones(D), k=10)
    assert index.search(np.ones(D), 3, filter={"lang": "xx"}) == []


@pytest.mark.parametrize("kwargs, match", [
    ({"mmr": True, "lambda_mult": 1.5}, "lambda_mult"),
    ({"mmr": True, "lambda_mult": "0.5"}, "lambda_mult"),
    ({"mmr": True, "fetch_k": 0}, "fetch_k"),
    ({"filter": {"a": {"$gt": [1]}}}, "\\$gt.*number or a string"),
])
def test_bad_search_arguments_are_errors(kwargs, match):
    index = build(clustered(10, D), [f"i{i}" for i in range(10)], strategy="similarity")
    with pytest.raises(ERASEError, match=match):
        index.search(np.ones(D), 3, **kwargs)
    with pytest.raises(ERASEError, match="dimension"):
        index.search(np.ones(D + 1), 3)
    with pytest.raises(ERASEError, match="NaN"):
        index.search(np.full(D, np.nan), 3)


def test_mmr_rank_handles_fewer_rows_than_k():
    U = clustered(3, D)
    assert len(mmr_rank(U.astype(np.float32), ["a", "b", "c"], np.ones(D), 5, fetch_k=2)) == 3


@pytest.mark.parametrize("strategy", ["erase", "similarity", "mmr"])
@pytest.mark.parametrize("persisted", [False, True])
def test_upsert_equals_forget_then_add_and_a_fresh_build(strategy, persisted, tmp_path):
    X = clustered(60, D, seed=8)
    ids = [f"u{i:02d}" for i in range(60)]
    index = ExampleIndex(4, strategy=strategy, seed=2, path=tmp_path / "s.db" if persisted else None)
    index.add(X, [{"v": 1, "id": i} for i in ids], ids)
    other = ExampleIndex.open(tmp_path / "s.db") if persisted else None
    Y = clustered(5, D, seed=9)
    new_ids = ids[:3] + ["new-a", "new-b"]
    receipt = index.upsert(Y, [{"v": 2, "id": i} for i in new_ids], new_ids, metadata=[{"t": "x"}] * 5)
    assert receipt.ids == tuple(ids[:3]) and receipt.n_remaining == 57
    pool_X = np.concatenate([X[3:], Y])
    pool_ids = ids[3:] + new_ids
    pool_payloads = [{"v": 1, "id": i} for i in ids[3:]] + [{"v": 2, "id": i} for i in new_ids]
    fresh = build(pool_X, pool_ids, pool_payloads, metadata=[None] * 57 + [{"t": "x"}] * 5, strategy=strategy, seed=2)
    assert index.digest() == fresh.digest() and index.verify()
    assert index.get(ids[0]) == {"v": 2, "id": ids[0]}
    assert len(index) == 62
    if persisted:
        assert other.digest() == fresh.digest() and other.get(ids[1]) == {"v": 2, "id": ids[1]}
        assert [e["request"] for e in other.audit()] == ["upsert"]
        other.close()
        index.close()
        reopened = ExampleIndex.open(tmp_path / "s.db")
        assert reopened.digest() == fresh.digest()
        reopened.close()
    else:
        assert [e["request"] for e in index.audit()] == ["upsert"]


def test_upsert_of_new_ids_only_is_an_add():
    X = clustered(20, D)
    index = build(X[:10], [f"a{i}" for i in range(10)])
    receipt = index.upsert(X[10:], list(range(10)), [f"a{i}" for i in range(10, 20)])
    assert receipt.ids == () and len(index) == 20 and index.audit() == []
    assert index.digest() == build(X, [f"a{i}" for i in range(20)], [{"id": f"a{i}"} for i in range(10)] + list(range(10))).digest()


def test_upsert_erases_the_replaced_content_from_disk(tmp_path):
    index = ExampleIndex(2, strategy="similarity", path=tmp_path / "s.db")
    secret = "old secret payload " * 300  # over 4 KB: split across pages
    X = clustered(4, D, seed=11)
    index.add(X, [secret, "b", "c", "d"], ["a", "b", "c", "d"])
    old_vector = index.vector("a").astype("<f4").tobytes()
    index.upsert(clustered(1, D, seed=12), ["new"], ["a"])
    index.close()
    files = all_file_bytes(tmp_path)
    assert surviving(files, [secret.encode(), old_vector]) == []


def test_bad_upserts_change_nothing(tmp_path):
    index = ExampleIndex(2, strategy="similarity", path=tmp_path / "s.db")
    X = clustered(6, D)
    index.add(X, list(range(6)), [f"i{i}" for i in range(6)])
    before = index.digest()
    cases = [
        (lambda: index.upsert(X[:2], [1, 2], ["i0", "i0"]), DuplicateIdError),
        (lambda: index.upsert(np.ones((1, D + 1)), [1], ["i0"]), ERASEError),
        (lambda: index.upsert(np.full((1, D), np.nan), [1], ["i0"]), ERASEError),
        (lambda: index.upsert(X[:1], [object()], ["i0"]), ERASEError),
        (lambda: index.upsert(X[:1], [1], None), ERASEError),
        (lambda: index.upsert(X[:2], [1], ["i0", "i1"]), ERASEError),
        (lambda: index.upsert(X[:1], [1], ["i0"], metadata=[{"a": object()}]), ERASEError),
    ]
    for call, error in cases:
        with pytest.raises(error):
            call()
        assert index.digest() == before and index.verify() and len(index) == 6
    assert index.audit() == []
    index.close()


def test_search_among_ids_equals_a_fresh_build_on_those_ids():
    X = clustered(80, D, seed=13)
    ids = [f"m{i:02d}" for i in range(80)]
    meta = [{"even": i % 2 == 0} for i in range(80)]
    index = build(X, ids, metadata=meta, strategy="similarity")
    among = [ids[i] for i in range(0, 80, 3)] + ["not-there"]
    keep = list(range(0, 80, 3))
    fresh = build(X[keep], [ids[i] for i in keep], metadata=[meta[i] for i in keep], strategy="similarity")
    q = np.random.default_rng(1).normal(size=D)
    for kwargs in ({}, {"mmr": True, "fetch_k": 10}, {"filter": {"even": True}}):
        assert picks(index.search(q, 5, among=among, **kwargs)) == picks(fresh.search(q, 5, **kwargs))
    assert index.search(q, 5, among=[]) == [] and index.search(q, 5, among=["nope"]) == []
    with pytest.raises(ERASEError, match="among"):
        index.search(q, 5, among="m01")


@pytest.mark.parametrize("strategy", ["erase", "similarity", "mmr"])
def test_copies_carry_state_by_value_or_by_path(strategy, tmp_path):
    import copy
    import pickle

    X = clustered(40, D, seed=14)
    ids = [f"c{i:02d}" for i in range(40)]
    memory = build(X, ids, metadata=[{"t": i % 2} for i in range(40)], strategy=strategy, seed=4)
    memory.forget(["c03"])
    for clone in (pickle.loads(pickle.dumps(memory)), copy.deepcopy(memory)):
        assert clone.digest() == memory.digest() and clone.verify() and clone.audit() == memory.audit()
        clone.forget(["c04"])
        assert "c04" in memory  # a by-value copy is independent
    assert pickle.loads(pickle.dumps(ExampleIndex(3))).digest() == ExampleIndex(3).digest()
    stored = ExampleIndex(4, strategy=strategy, path=tmp_path / "s.db")
    stored.add(X, list(range(40)), ids)
    blob = pickle.dumps(stored)
    assert b"c05" not in blob and len(blob) < 1000  # the path, not the rows
    clone = pickle.loads(blob)
    stored.forget(["c05"])
    assert "c05" not in clone and clone.digest() == stored.digest()  # follows the live store
    clone.close()
    stored.close()


def test_notes_persist_and_copy_but_are_not_examples(tmp_path):
    import pickle

    memory = ExampleIndex(2)
    memory.set_note("embeddings", "model-a")
    assert pickle.loads(pickle.dumps(memory)).note("embeddings") == "model-a"
    stored = ExampleIndex(2, path=tmp_path / "s.db")
    digest = stored.digest()
    stored.set_note("embeddings", "model-b")
    assert stored.digest() == digest and stored.note("missing") is None  # not part of the pool
    other = ExampleIndex.open(tmp_path / "s.db")
    assert other.note("embeddings") == "model-b"
    with pytest.raises(ERASEError):
        other.set_note("", "x")
    other.close()
    stored.close()


def test_top_k_equals_a_float64_brute_force_whatever_kernel_finds_the_candidates():
    from erase_core.selection import inner_products, top_k_by_cosine

    rng = np.random.default_rng(21)
    U = rng.normal(size=(3000, 48))
    U[1000:1100] = U[:100]  # exact duplicates: ties broken by id
    U[2000:2050] = U[:50] * (1 + 1e-7)  # near-ties below float32 resolution
    U = (U / np.linalg.norm(U, axis=1, keepdims=True)).astype(np.float32)
    ids = [f"r{i:05d}" for i in range(len(U))]
    assert np.abs(inner_products(U, U[0]) - U @ U[0]).max() < 1e-5
    for _ in range(30):
        q = U[rng.integers(0, 100)].astype(np.float64) + 1e-3 * rng.normal(size=48)
        qn = q / np.linalg.norm(q)
        exact = (U.astype(np.float64) * qn).sum(axis=1)
        want = sorted(range(len(U)), key=lambda r: (-exact[r], ids[r]))[:7]
        assert [r for r, _ in top_k_by_cosine(U, ids, q, 7)] == want


def test_ids_where_and_forget_where_among(tmp_path):
    X = clustered(30, D, seed=31)
    ids = [f"w{i:02d}" for i in range(30)]
    meta = [{"lang": "en" if i % 2 else "de"} for i in range(30)]
    index = ExampleIndex(3, strategy="similarity", path=tmp_path / "s.db")
    index.add(X, list(range(30)), ids, metadata=meta)
    assert index.ids_where({"lang": "de"}) == [ids[i] for i in range(0, 30, 2)]
    receipt = index.forget_where({"lang": "de"}, among=["w00", "w01", "w02", "nope"])
    assert receipt.ids == ("w00", "w02") and "w01" in index
    keep = [i for i in range(30) if ids[i] not in ("w00", "w02")]
    assert index.digest() == build(X[keep], [ids[i] for i in keep], list(keep), metadata=[meta[i] for i in keep],
                                   strategy="similarity", k=3).digest()
    with pytest.raises(ERASEError):
        index.forget_where({"lang": "de"}, among="w04")
    index.close()


def test_the_readme_block_runs_twice(tmp_path, monkeypatch):
    """The README's ExampleIndex block, as written, on a first and on a later start."""
    import re

    from conftest import REPO_ROOT

    text = (REPO_ROOT / "README.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "open_or_create" in b)
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        namespace: dict = {}
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102
        namespace["index"].close()
    again = ExampleIndex.open_or_create(tmp_path / "examples.sqlite", k=4)
    # each start adds 40, forgets one by id and the 8 of customer-4711 it added (the first
    # start's were already forgotten, so the second start's forget_subject finds only its own)
    assert len(again) == 2 * (40 - 1 - 8) and again.verify()
    again.close()
    with pytest.raises(ERASEError, match="other parameters"):
        ExampleIndex.open_or_create(tmp_path / "examples.sqlite", k=5)


@pytest.mark.parametrize("head_rows", [1, 7, 50, 4000])
def test_top_k_bounded_by_the_first_rows_equals_brute_force(monkeypatch, head_rows):
    """The candidate pass bounds the k-th best by the first rows' k-th best: whether the best
    rows sit inside that head or after it, the ranking is the float64 brute force's."""
    from erase_core import selection

    monkeypatch.setattr(selection, "_HEAD_ROWS", head_rows)
    rng = np.random.default_rng(head_rows)
    U = rng.normal(size=(3000, 32))
    U[2500:2600] = U[:100]  # duplicates after the head: ties broken by id
    U = (U / np.linalg.norm(U, axis=1, keepdims=True)).astype(np.float32)
    ids = [f"h{i:05d}" for i in range(len(U))]
    for k in (1, 5, 60):
        for _ in range(10):
            q = U[rng.integers(0, 3000)].astype(np.float64) + 1e-3 * rng.normal(size=32)
            qn = q / np.linalg.norm(q)
            exact = (U.astype(np.float64) * qn).sum(axis=1)
            want = sorted(range(len(U)), key=lambda r: (-exact[r], ids[r]))[:k]
            assert [r for r, _ in selection.top_k_by_cosine(U, ids, q, k)] == want
