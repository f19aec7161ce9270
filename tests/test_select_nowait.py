"""A select of the fixed ``erase`` set is not held up by a forget running in another thread
(the forget's clustering update can take tens of milliseconds at 100k examples): until the
forget returns, the set before it is the answer; once it returned, never the forgotten example."""

from __future__ import annotations

import numpy as np
import pytest

from blocking import BlockedForget, call_in_thread
from conftest import clustered
from erase_core import ExampleIndex
from test_handles import fresh_build

PARAMS = dict(k=4, seed=5)


def build(path=None, n=120):
    X = clustered(n, d=8, blobs=4, seed=2)
    ids = [f"e{i:03d}" for i in range(n)]
    index = ExampleIndex(path=path, **PARAMS)
    index.add(X, [{"i": i} for i in range(n)], ids=ids)
    return index, {i: (X[r], {"i": r}) for r, i in enumerate(ids)}


@pytest.mark.parametrize("persisted", [False, True])
def test_select_during_a_forget_answers_with_the_set_before_it(tmp_path, persisted):
    index, truth = build(tmp_path / "pool.sqlite" if persisted else None)
    before = [(s.id, s.score) for s in index.select()]
    victim = before[0][0]  # a selected example: the set must change
    blocked = BlockedForget(index, lambda: index.forget([victim]))
    try:
        during = call_in_thread(index.select)
        assert [(s.id, s.score) for s in during] == before
        assert call_in_thread(lambda: index.select(k=2))[0].id == victim
        assert index.select_nowait() is not None
    finally:
        blocked.finish()
    del truth[victim]
    want = fresh_build(truth, **PARAMS)
    assert index.select_nowait() is None  # the forget returned: the old set is gone
    assert [(s.id, s.score) for s in index.select()] == [(s.id, s.score) for s in want.select()]
    assert victim not in [s.id for s in index.select_nowait()]
    assert index.digest() == want.digest()


def test_select_nowait_follows_other_handles(tmp_path):
    a, truth = build(tmp_path / "pool.sqlite")
    b = ExampleIndex.open(tmp_path / "pool.sqlite")
    b.select()
    assert b.select_nowait() is not None
    victim = a.select()[0].id
    a.forget([victim])
    assert b.select_nowait() is None  # another handle committed: b must catch up first
    assert victim not in [s.id for s in b.select()]
    assert b.select_nowait() is not None


def test_select_nowait_never_answers_for_other_strategies_or_bigger_k(tmp_path):
    index, _ = build()
    assert index.select_nowait() is None  # nothing selected yet
    index.select()
    assert index.select_nowait(k=5) is None  # more than the set holds: select() raises
    sim = ExampleIndex(k=3, strategy="similarity")
    sim.add(np.eye(4), [{}] * 4, ids=list("abcd"))
    assert sim.select_nowait() is None



def test_selected_payloads_are_fresh_copies_of_every_kind():
    """The cached set hands out copies: editing a returned payload (flat dict, nested dict,
    list) changes nothing that a later select returns; immutable payloads may be shared."""
    payloads = [{"text": "a", "tags": ["x"]}, {"t": "b", "n": 1}, ["l", {"d": 1}], "plain", None, 3.5]
    X = np.eye(6) + 0.01
    index = ExampleIndex(k=6, seed=0)
    index.add(X, payloads, ids=[f"p{i}" for i in range(6)])
    for _ in range(3):
        chosen = index.select()
        assert {s.id: s.payload for s in chosen} == {f"p{i}": payloads[i] for i in range(6)}
        for s in chosen:
            if isinstance(s.payload, dict):
                s.payload["t"] = "edited"
                for v in s.payload.values():
                    if isinstance(v, list):
                        v.append("edited")
            elif isinstance(s.payload, list):
                s.payload.append("edited")
                s.payload[1]["d"] = 2
    assert index.get("p0") == payloads[0] and index.verify()
