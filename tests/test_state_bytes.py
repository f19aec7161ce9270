"""The clustering owns its serialised form (QuantizedKMeans.to_state / FittedState.to_bytes):
installing it is the fit, bit for bit; a malformed one is refused; the open image keeps it as
bytes it does not read, and an image of an older format opens the long way. UpdateReport says
whether a recompute rejoined the previous run (what benchmarks/profile_recompute.py counts)."""

from __future__ import annotations

import numpy as np
import pytest

from erase_core import ExampleIndex, QuantizedKMeans
from erase_core.quantized_kmeans import STATE_FORMAT, FittedState
from erase_core.storage import ExampleStore
from erase_core.storage.image import image_path

from conftest import assert_same_state, clustered


def fitted(n: int = 300, d: int = 16, k: int = 4) -> tuple[QuantizedKMeans, np.ndarray, list[str]]:
    X = clustered(n, d=d, blobs=5, seed=n)
    ids = [f"p{i}" for i in range(n)]
    return QuantizedKMeans(k, seed=3).fit(X, ids), X, ids


def test_to_state_installs_as_the_fit_and_stays_exact():
    model, X, ids = fitted()
    blob = model.to_state()
    assert isinstance(blob, bytes) and blob[:8] == b"QKMSTATE"
    installed = QuantizedKMeans(4, seed=3).fit(X, ids, state=blob)
    assert_same_state(installed, model)
    installed.remove(ids[:50])
    model.remove(ids[:50])
    assert_same_state(installed, model)
    assert installed.digest() == QuantizedKMeans(4, seed=3).fit(X[50:], ids[50:]).digest()


def test_the_bytes_round_trip_field_by_field():
    model, _, _ = fitted()
    state = model.export_state()
    back = FittedState.from_bytes(memoryview(state.to_bytes()))
    assert bytes(back) == bytes(state) == state.to_bytes()
    assert (back.params, back.n_rec, back.converged, back.seeds) == (state.params, state.n_rec, state.converged, state.seeds)
    assert back.keys == [tuple(k) for k in state.keys]
    for name in ("centroids", "sums", "counts", "labels"):
        a, b = getattr(back, name), getattr(state, name)
        assert a.shape == b.shape and np.array_equal(a, b), name


@pytest.mark.parametrize("damage", ["truncated", "longer", "magic", "version", "header"])
def test_a_malformed_state_is_refused_and_the_caller_fits(damage):
    model, X, ids = fitted()
    blob = bytearray(model.to_state())
    if damage == "truncated":
        blob = blob[:-3]
    elif damage == "longer":
        blob += b"\0\0"
    elif damage == "magic":
        blob[0] ^= 1
    elif damage == "version":
        blob[8:12] = (STATE_FORMAT + 1).to_bytes(4, "little")
    else:
        blob[16] = ord("[")
    with pytest.raises(ValueError):
        QuantizedKMeans(4, seed=3).fit(X, ids, state=bytes(blob))


def test_an_image_of_another_format_opens_the_long_way_and_is_rewritten(tmp_path, monkeypatch):
    import erase_core.storage.image as image

    monkeypatch.setenv("ERASE_IMAGE_MIN_ROWS", "1")
    path = tmp_path / "s.db"
    X = clustered(200, d=24, blobs=5, seed=1)
    with ExampleIndex(4, seed=3, path=path) as index:
        index.add(X, [{"i": i} for i in range(200)], ids=[f"e{i}" for i in range(200)])
        want = index.digest()
    with monkeypatch.context() as m:
        m.setattr(image, "_FORMAT", image._FORMAT - 1)  # an image as an older release wrote it
        ExampleIndex.open(path).close()
        with ExampleStore.open(path) as store:
            assert store.read_image() is not None  # readable by that release
    with ExampleStore.open(path) as store:
        assert store.read_image() is None  # not by this one
    with ExampleIndex.open(path) as index:  # the long way, which writes a current image
        assert index.digest() == want and index.verify()
    with ExampleStore.open(path) as store:
        img = store.read_image()
        assert img is not None and bytes(img.model)[:8] == b"QKMSTATE"


def test_update_reports_say_when_a_recompute_rejoined():
    """``rejoined`` is what the recompute was told (spied on the private step, here only)."""
    model, _, ids = fitted(n=3000, d=16, k=4)
    told: list[bool] = []
    real = QuantizedKMeans._finish

    def spy(self, *args, rejoined=False, **kwargs):
        told.append(rejoined)
        return real(self, *args, rejoined=rejoined, **kwargs)

    kinds = set()
    with pytest.MonkeyPatch.context() as m:
        m.setattr(QuantizedKMeans, "_finish", spy)
        for victim in np.random.default_rng(0).permutation(len(ids))[:600]:
            told.clear()
            report = model.remove([ids[victim]])
            assert report.rejoined == any(told)
            assert not report.rejoined or report.recomputed
            kinds.add((report.recomputed, report.rejoined))
    assert (True, True) in kinds and (False, False) in kinds
