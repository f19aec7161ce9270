"""A store on a disk that fills up: every failed write leaves memory and disk agreeing, and a
retry completes the erasure. Uses a real small tmpfs (skipped where mounting is not allowed;
test_store.py injects the same errors without a mount)."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest

from erase_core import ERASEError, ExampleIndex
from conftest import clustered
from mounts import tmpfs
from test_store import assert_keys_match_rows


@pytest.fixture
def small_disk(tmp_path):
    with tmpfs(tmp_path / "disk", "3m") as mount:
        yield mount


def fill(directory) -> object:
    """Fill the file system to the last byte; returns the filler's path."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 4096, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def test_forget_and_add_on_a_full_disk(small_disk):
    path = small_disk / "pool.sqlite"
    n = 300
    X = clustered(n, d=32, seed=6)
    ids = [f"user-{i:04d}" for i in range(n)]
    a = ExampleIndex(k=4, seed=3, path=path)
    a.add(X, [{"text": f"note {i} " + "z" * 200} for i in range(n)], ids=ids)
    b = ExampleIndex.open(path)
    filler = fill(small_disk)
    failed, done = [], []
    for victim in ids[:40]:
        try:
            a.forget([victim])
            done.append(victim)
        except ERASEError:
            failed.append(victim)
        # whatever happened, both handles agree with the store and with each other
        assert (victim in a) == (victim in b)
        assert a.digest() == b.digest()
    with pytest.raises(ERASEError):
        for j in range(20):  # the disk is full: an add must fail, and change nothing
            a.add(np.tile(X[j], (5, 1)) * (j + 2), [{"big": "q" * 4000}] * 5, ids=[f"new-{j}-{m}" for m in range(5)])
    assert all(f"new-{j}-0" not in b or f"new-{j}-0" in a for j in range(20))
    assert failed, "the disk never filled up: the test did not test anything"
    assert a.verify() and b.verify()
    os.unlink(filler)
    retry = [v for v in failed if v in a]
    if retry:
        a.forget(retry)  # a retry completes the erasure
    for v in failed + done:
        assert v not in a and v not in b
    assert a.verify() and b.digest() == a.digest()
    a.close()
    b.close()
    with ExampleIndex.open(path) as c:
        assert c.verify() and len(c) == n - len(failed) - len(done)
    assert_keys_match_rows(path)
