"""QuantizedKMeans.export_state / fit(state=...): installing a fit's records instead of rerunning
it gives the bit-identical model, and later removals and insertions stay exact."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from erase_core.quantized_kmeans import QuantizedKMeans

from conftest import assert_same_state, clustered


@pytest.mark.parametrize("n, d, k, proj", [(400, 16, 4, None), (1500, 64, 7, 8), (60, 8, 5, None)])
def test_an_installed_state_is_the_fit_and_stays_exact(n, d, k, proj):
    X = clustered(n, d=d, blobs=5, seed=n)
    ids = [f"p{i}" for i in range(n)]
    fitted = QuantizedKMeans(k, seed=3, projection_dim=proj).fit(X, ids)
    state = fitted.export_state()
    installed = QuantizedKMeans(k, seed=3, projection_dim=proj).fit(X, ids, state=state)
    assert_same_state(installed, fitted)
    assert installed.digest() == fitted.digest()
    rng = np.random.default_rng(0)
    gone = set()
    for i in rng.permutation(n)[: n // 3]:  # removals, recomputes included, on both
        if n - len(gone) - 1 < k:
            break
        for model in (installed, fitted):
            model.remove([ids[i]])
        gone.add(ids[i])
    assert installed.digest() == fitted.digest()
    keep = [j for j in range(n) if ids[j] not in gone]
    fresh = QuantizedKMeans(k, seed=3, projection_dim=proj).fit(X[keep], [ids[j] for j in keep])
    assert installed.digest() == fresh.digest()
    extra = clustered(20, d=d, blobs=5, seed=99)
    installed.insert(extra, [f"x{i}" for i in range(20)])
    fitted.insert(extra, [f"x{i}" for i in range(20)])
    assert_same_state(installed, fitted)


def test_a_state_that_does_not_fit_is_refused():
    X = clustered(300, d=16, seed=1)
    ids = [f"p{i}" for i in range(300)]
    state = QuantizedKMeans(4, seed=3).fit(X, ids).export_state()
    bad = {
        "other seed": QuantizedKMeans(4, seed=4),
        "other k": QuantizedKMeans(5, seed=3),
    }
    for why, model in bad.items():
        with pytest.raises(ValueError):
            model.fit(X, ids, state=state)
    with pytest.raises(ValueError):  # other rows
        QuantizedKMeans(4, seed=3).fit(X[:-1], ids[:-1], state=state)
    labels = state.labels.copy()
    labels[0, 0] = (labels[0, 0] + 1) % 4  # one label moved: the counts no longer agree
    with pytest.raises(ValueError, match="counts"):
        QuantizedKMeans(4, seed=3).fit(X, ids, state=dataclasses.replace(state, labels=labels))
    with pytest.raises(ValueError, match="unknown ids"):
        QuantizedKMeans(4, seed=3).fit(X, [f"q{i}" for i in range(300)], state=state)
