"""The index's parts and the store interface: the SQLite store implements the protocol the
index is written against, the docs name every method of it, and locating a store is one place."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import numpy as np
import pytest

from erase_core import ExampleIndex, StoreError
from erase_core.storage import ExampleStore
from erase_core.storage.example_store import WriteTransaction
from erase_core.storage.interface import Store, Transaction
from erase_core.storage.locate import create_store, open_store, store_exists

ROOT = Path(__file__).resolve().parents[1]


def _members(protocol) -> list[str]:
    return [name for name in vars(protocol) if not name.startswith("_") and name not in ("version",)]


@pytest.mark.parametrize(("protocol", "cls"), [(Store, ExampleStore), (Transaction, WriteTransaction)])
def test_the_sqlite_store_implements_the_store_protocol(protocol, cls):
    assert _members(protocol)
    for name in _members(protocol):
        wanted = getattr(protocol, name)
        if isinstance(wanted, property):  # an attribute of each store (``path``)
            continue
        got = getattr(cls, name, None)
        assert got is not None, f"{cls.__name__} lacks {name}"
        want_params = list(inspect.signature(wanted).parameters)
        got_params = list(inspect.signature(got).parameters)
        assert got_params[: len(want_params)] == want_params, (cls.__name__, name, got_params)


def test_the_storage_page_names_every_method_of_the_interface():
    text = (ROOT / "docs" / "storage.md").read_text()
    section = text.split("## What a store must provide", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`(?:\w+\.)?(\w+)\(", section))
    missing = [f"{p.__name__}.{m}" for p in (Store, Transaction) for m in _members(p)
               if m != "path" and m not in named]
    assert not missing, f"docs/storage.md does not name {missing}"


def test_the_replica_and_the_index_reach_a_store_only_through_the_interface():
    """No part of the index imports a concrete store: a second backend needs no change there."""
    for path in (ROOT / "erase_core" / "index").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert "example_store" not in node.module and "postgres" not in node.module, (path.name, node.module)
                names = {a.name for a in node.names}
                assert "ExampleStore" not in names, (path.name, node.module)


def test_locate_maps_a_path_to_the_sqlite_store(tmp_path):
    path = tmp_path / "pool.sqlite"
    assert not store_exists(path)
    store = create_store(path, {"format_version": 1})
    try:
        assert isinstance(store, ExampleStore) and store_exists(path) and store.path == path
    finally:
        store.close()
    with pytest.raises(StoreError, match="already holds an example store"):
        create_store(path, {"format_version": 1})
    reopened = open_store(path)
    assert reopened.config() == {"format_version": 1}
    reopened.close()
    (tmp_path / "empty").write_bytes(b"")
    assert not store_exists(tmp_path / "empty")  # an empty file may become a store
    with pytest.raises(StoreError, match="store path must be"):
        store_exists(None)


def test_open_reports_its_timings_from_the_image(tmp_path, monkeypatch):
    monkeypatch.setenv("ERASE_IMAGE_MIN_ROWS", "1")
    path = tmp_path / "pool.sqlite"
    X = np.random.default_rng(0).normal(size=(40, 8))
    with ExampleIndex(4, seed=0, path=path) as index:
        index.add(X, [{"i": i} for i in range(40)], ids=[f"x{i}" for i in range(40)])
        digest = index.digest()
    ExampleIndex.open(path).close()  # the long way: writes the image
    timings: dict = {}
    with ExampleIndex.open(path, timings=timings) as index:
        assert index.digest() == digest
    assert 0 <= timings["build_memory_s"] <= timings["open_s"]
    with ExampleIndex.open(path) as index:
        index.forget(["x1"])  # shreds the image
    timings = {}
    with ExampleIndex.open(path, timings=timings) as index:  # the long way again
        assert "x1" not in index
    assert "build_memory_s" not in timings and timings["open_s"] > 0


def test_a_forget_in_memory_equals_a_fresh_build_through_the_parts():
    """The pool, clustering and snapshot after a forget are those of a fresh build."""
    X = np.random.default_rng(3).normal(size=(60, 6))
    ids = [f"e{i}" for i in range(60)]
    index = ExampleIndex(4, seed=3)
    index.add(X, [{"i": i} for i in range(60)], ids=ids)
    first = [s.id for s in index.select()]
    index.forget([first[0], "e7"])
    keep = [i for i in range(60) if ids[i] not in (first[0], "e7")]
    fresh = ExampleIndex(4, seed=3)
    fresh.add(X[keep], [{"i": i} for i in keep], ids=[ids[i] for i in keep])
    assert index.digest() == fresh.digest() and index.fingerprint() == fresh.fingerprint()
    assert index.select() == fresh.select() and index.select_nowait() == fresh.select()
    assert first[0] not in index.ids and len(index) == 58
