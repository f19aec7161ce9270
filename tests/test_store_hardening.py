"""Regression tests of the store's hardening (issue 27): no silent no-op on a closed handle,
wrong values and odd input raise our errors with the state unchanged."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest

from erase_core import ERASEError, ExampleIndex
from erase_core.storage import StoreError, keys_path
from erase_core.storage import keyfile as keyfile_module
from conftest import clustered
from test_store import assert_keys_match_rows, key_slots

N = 12


def _pool(path, **params) -> tuple[ExampleIndex, np.ndarray, list[str]]:
    X = clustered(N, d=8, seed=5)
    ids = [f"x{i}" for i in range(N)]
    index = ExampleIndex(k=2, seed=1, path=path, **params)
    index.add(X, [{"i": i} for i in range(N)], ids=ids, subjects=["alice"] * 3 + [None] * (N - 3),
              metadata=[{"t": i % 3} for i in range(N)])
    return index, X, ids


def _files(directory) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


# ---------------------------------------------------------------------- item 1: closed handles
CLOSED_MUTATIONS = {
    "forget": lambda ix, X: ix.forget(["x1"]),
    "forget_subject": lambda ix, X: ix.forget_subject("alice"),
    "forget_where": lambda ix, X: ix.forget_where({"t": 1}),
    "upsert": lambda ix, X: ix.upsert(X[:1], [{"new": 1}], ids=["x1"]),
    "add": lambda ix, X: ix.add(X[:1] * -1, [{"new": 1}], ids=["fresh"]),
    "set_note": lambda ix, X: ix.set_note("model", "m"),
}


@pytest.mark.parametrize("name", sorted(CLOSED_MUTATIONS))
def test_a_closed_handle_refuses_every_mutation(tmp_path, name):
    path = tmp_path / "pool.sqlite"
    index, X, ids = _pool(path)
    digest, keys = index.digest(), key_slots(path)
    index.close()
    before = _files(tmp_path)
    with pytest.raises(ERASEError, match="closed: nothing was changed"):
        CLOSED_MUTATIONS[name](index, X)
    assert _files(tmp_path) == before  # not a byte on disk
    with pytest.raises(ERASEError, match="closed"):  # and memory did not run ahead either
        len(index)
    reopened = ExampleIndex.open(path)
    assert "x1" in reopened and reopened.digest() == digest and key_slots(path) == keys
    assert reopened.note("model") is None
    reopened.close()


def test_a_closed_handle_refuses_reads(tmp_path):
    index, X, _ = _pool(tmp_path / "pool.sqlite")
    index.select()  # leaves a snapshot select_nowait could serve
    index.close()
    assert index.select_nowait() is None
    for read in (lambda: index.select(), lambda: index.get("x1"), lambda: "x1" in index, lambda: index.ids,
                 lambda: index.search(X[0]), lambda: index.verify()):
        with pytest.raises(ERASEError, match="closed"):
            read()
    index.close()  # closing twice is fine


def test_an_in_memory_index_still_works_after_close():
    index = ExampleIndex(k=2)
    index.add(clustered(4, d=4), [1, 2, 3, 4], ids=["a", "b", "c", "d"])
    index.close()
    index.forget(["a"])
    assert len(index) == 3 and index.verify()


# ---------------------------------------------------------------------- item 4: wrong values
def test_vectors_whose_norm_overflows_or_underflows_are_rejected(tmp_path):
    index, X, _ = _pool(tmp_path / "pool.sqlite")
    digest = index.digest()
    with pytest.raises(ERASEError, match=r"vector 0 is too large: its norm overflows"):
        index.add(np.full((1, 8), 1e200), [{}], ids=["big"])
    with pytest.raises(ERASEError, match=r"vector 1 is too small: its norm underflows"):
        index.add(np.vstack([X[0] * -1, np.full(8, 1e-200)]), [{}, {}], ids=["ok", "tiny"])
    with pytest.raises(ERASEError, match="query_vector is too large"):
        index.search(np.full(8, 1e200))
    assert index.digest() == digest and "big" not in index and "ok" not in index
    # a large but representable norm is fine, and stored as the same direction
    index.add(X[:1] * 1e150, [{}], ids=["scaled"])
    assert np.allclose(index.vector("scaled"), index.vector("x0"), atol=1e-6)


def test_complex_vectors_are_rejected(tmp_path):
    index, X, _ = _pool(tmp_path / "pool.sqlite")
    digest = index.digest()
    with pytest.raises(ERASEError, match="complex"):
        index.add(X[:1] + 1j, [{}], ids=["cx"])
    with pytest.raises(ERASEError, match="complex"):
        index.add(X[:1].astype(np.complex64), [{}], ids=["cx"])
    with pytest.raises(ERASEError):
        index.add([[complex(1, 1)] * 8], [{}], ids=["cx"])
    with pytest.raises(ERASEError, match="complex"):
        index.search(X[0] + 0j)
    assert index.digest() == digest and "cx" not in index


# ---------------------------------------------------------------------- item 5: our errors, not Python's
def _deep(n: int):
    value: list = []
    for _ in range(n):
        value = [value]
    return value


BAD_INPUT = {
    "surrogate id": (lambda ix, X: ix.add(X[:1] * -1, [{}], ids=["a\ud800"]), r"ids\[0\] is not valid Unicode"),
    "surrogate payload": (lambda ix, X: ix.add(X[:1] * -1, ["a\udfff"], ids=["p"]), r"payloads\[0\] is not valid Unicode"),
    "surrogate subject": (lambda ix, X: ix.add(X[:1] * -1, [{}], ids=["s"], subjects=["\ud800"]), "not valid Unicode"),
    "surrogate metadata": (lambda ix, X: ix.add(X[:1] * -1, [{}], ids=["m"], metadata=[{"t": "\ud800"}]), "not valid Unicode"),
    "surrogate upsert": (lambda ix, X: ix.upsert(X[:1], [{}], ids=["x0\ud800"]), "not valid Unicode"),
    "surrogate forget_subject": (lambda ix, X: ix.forget_subject("alice\ud800"), "subject is not valid Unicode"),
    "surrogate forget_where": (lambda ix, X: ix.forget_where({"t": "\ud800"}), "filter is not valid Unicode"),
    "surrogate note": (lambda ix, X: ix.set_note("k", "\ud800"), "note's value is not valid Unicode"),
    "deep payload": (lambda ix, X: ix.add(X[:1] * -1, [_deep(100_000)], ids=["deep"]), "nested too deeply"),
    "ids=5": (lambda ix, X: ix.add(X[:1] * -1, [{}], ids=5), "ids must be a sequence of string ids; got int 5"),
    "upsert ids=5": (lambda ix, X: ix.upsert(X[:1] * -1, [{}], ids=5), "got int 5"),
    "payloads=5": (lambda ix, X: ix.add(X[:1] * -1, 5, ids=["p"]), "payloads must be a sequence"),
    "forget(None)": (lambda ix, X: ix.forget(None), "ids are required"),
    "forget(5)": (lambda ix, X: ix.forget(5), "got int 5"),
    "forget_where set": (lambda ix, X: ix.forget_where({"t": {"$in": [{1, 2}]}}), "not a JSON value|unsupported value|set"),
    "forget_where object": (lambda ix, X: ix.forget_where({"t": object()}), "not a JSON value|unsupported value"),
    "forget_where among=5": (lambda ix, X: ix.forget_where({"t": 1}, among=5), "among must be a collection"),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUT))
def test_bad_input_raises_ours_and_changes_nothing(tmp_path, name):
    path = tmp_path / "pool.sqlite"
    index, X, ids = _pool(path)
    other = ExampleIndex.open(path)
    digest, audit = index.digest(), index.audit()
    call, match = BAD_INPUT[name]
    with pytest.raises(ERASEError, match=match):
        call(index, X)
    assert index.digest() == digest and index.audit() == audit and other.digest() == digest
    assert index.verify() and sorted(index.ids) == sorted(ids)
    assert_keys_match_rows(path)
    index.forget(["x2"])  # the handle still works
    assert "x2" not in other
    index.close()
    other.close()


def test_bad_constructor_and_open_arguments_raise_ours(tmp_path):
    with pytest.raises(ERASEError, match="epsilon must be a real number, got 'x'"):
        ExampleIndex(epsilon="x")
    for bad in (None, 5, b"bytes", ""):
        with pytest.raises(StoreError, match="store path must be"):
            ExampleIndex.open(bad)
    with pytest.raises(StoreError, match="store path must be"):
        ExampleIndex(k=2, path=5)
    with pytest.raises(StoreError, match="store path must be"):
        ExampleIndex.open_or_create(None)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO])
@pytest.mark.parametrize("step", ["pwrite", "fsync"])
def test_key_file_errors_before_the_commit_are_store_errors_naming_the_file(tmp_path, monkeypatch, code, step):
    path = tmp_path / "pool.sqlite"
    index, X, ids = _pool(path)
    other = ExampleIndex.open(path)
    digest = index.digest()
    real = getattr(keyfile_module.os, step)

    def failing(fd, *args):
        if step == "pwrite" and len(args[0]) != keyfile_module.KEY_SIZE:
            return real(fd, *args)  # header flags: let them through, fail the key itself
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(keyfile_module.os, step, failing)
    with pytest.raises(StoreError, match=rf"rolled back, nothing was changed: cannot write {keys_path(path)}: {os.strerror(code)}"):
        index.add(X[:2] * -1, [{}, {}], ids=["n1", "n2"])
    monkeypatch.undo()
    assert index.digest() == digest == other.digest() and "n1" not in other
    index.add(X[:2] * -1, [{}, {}], ids=["n1", "n2"])  # a retry works
    assert "n1" in other and other.verify()
    assert_keys_match_rows(path)
    index.close()
    other.close()
