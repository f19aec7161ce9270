"""Shared test helpers: clustered synthetic data and state comparison."""

from __future__ import annotations

import os
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
    """The default local LLM (SmolLM2-135M GGUF), loaded once per test session."""
    from erase_core.models.llm import LocalCausalLM

    return LocalCausalLM()
