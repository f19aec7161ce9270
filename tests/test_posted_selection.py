"""The posted selection: a handle that catches up on another handle's forget answers
``select()`` from the ``erase`` set the writer posted in the key file, and updates its own
clustering only when something needs it. Every answer must equal a fresh build's."""

from __future__ import annotations

import json
import multiprocessing
import random

import pytest

import mp_workers
from conftest import clustered
from erase_core import ExampleIndex
from erase_core.storage.keyfile import _BOARD_AT, BOARD_CAPACITY, HEADER_SIZE
from erase_core.storage.example_store import keys_path
from test_handles import fresh_build
from test_store import assert_keys_match_rows

PARAMS = dict(k=4, seed=3, epsilon=0.01)  # a fine grid: many forgets move a centroid


def picks(selected) -> list[tuple[str, float]]:
    return [(s.id, s.score) for s in selected]


def build(path, n=240, d=8, **params):
    X = clustered(n, d=d, blobs=4, seed=7)
    ids = [f"e{i:03d}" for i in range(n)]
    index = ExampleIndex(path=path, **{**PARAMS, **params})
    index.add(X, [{"i": i} for i in range(n)], ids=ids)
    return index, X, {i: (X[r], {"i": r}) for r, i in enumerate(ids)}


class CountingModelCalls:
    """Counts ``remove``/``insert``/``fit`` on one handle's clustering object."""

    def __init__(self, model):
        self.calls = []
        for name in ("remove", "insert"):
            original = getattr(model, name)

            def wrapped(*args, _original=original, _name=name, **kwargs):
                self.calls.append(_name)
                return _original(*args, **kwargs)

            setattr(model, name, wrapped)


def test_a_reader_answers_from_the_posted_set_and_settles_later(tmp_path):
    writer, X, truth = build(tmp_path / "pool.sqlite")
    reader = ExampleIndex.open(tmp_path / "pool.sqlite")
    reader.select()
    counted = CountingModelCalls(reader._memory.clustering.fitted)
    rnd = random.Random(0)
    recomputed = 0
    for _ in range(60):
        victim = rnd.choice(sorted(truth))
        receipt = writer.forget([victim])
        recomputed += receipt.recomputed
        del truth[victim]
        want = fresh_build(truth, **PARAMS)
        assert picks(reader.select()) == picks(want.select())
        q = X[rnd.randrange(len(X))]
        assert picks(reader.select(q)) == picks(want.select(q))
        assert picks(reader.select(k=2)) == picks(want.select(k=2))
    assert recomputed >= 3  # the case the posted set exists for
    assert counted.calls == []  # 60 catch-ups, not one clustering update
    assert reader._memory.clustering.lag is not None and len(reader._memory.clustering.lag.gone) == 60
    assert reader.digest() == want.digest() and reader.verify()  # settles: one batched removal
    assert counted.calls == ["remove"] and reader._memory.clustering.lag is None
    assert reader.model.representative_ids_ == want.model.representative_ids_


def test_a_lagging_reader_that_writes_settles_first(tmp_path):
    path = tmp_path / "pool.sqlite"
    a, X, truth = build(path)
    b = ExampleIndex.open(path)
    b.select()
    extra = clustered(30, d=8, blobs=2, seed=11)
    a.forget(["e001", "e002", "e100"])
    a.add(extra[:5], [{"x": j} for j in range(5)], ids=[f"x{j}" for j in range(5)])
    a.forget(["x1", "e050"])  # one added and one original, after the add
    a.upsert(extra[5:7], [{"x": 5}, {"x": 6}], ids=["e010", "x6"])  # replaces e010
    for i in ("e001", "e002", "e100", "e050"):
        del truth[i]
    truth.update({f"x{j}": (extra[j], {"x": j}) for j in (0, 2, 3, 4)})
    truth.update({"e010": (extra[5], {"x": 5}), "x6": (extra[6], {"x": 6})})
    want = fresh_build(truth, **PARAMS)
    assert picks(b.select()) == picks(want.select())
    assert b._memory.clustering.lag is not None
    b.forget(["x0", "e020"])  # b's own forget needs its clustering: it settles, then removes
    del truth["x0"], truth["e020"]
    want = fresh_build(truth, **PARAMS)
    assert b._memory.clustering.lag is None
    assert picks(a.select()) == picks(want.select()) == picks(b.select())
    assert a.digest() == b.digest() == want.digest() and a.verify() and b.verify()
    assert_keys_match_rows(path)


def test_a_torn_or_damaged_board_is_not_used(tmp_path):
    path = tmp_path / "pool.sqlite"
    a, X, truth = build(path)
    b = ExampleIndex.open(path)
    b.select()
    a.forget(["e005"])
    del truth["e005"]
    version = a._replica.store.published_version()
    assert a._replica.store.posted_selection(version) is not None
    with open(keys_path(path), "r+b") as fh:  # flip one bit of the first entry's score
        fh.seek(_BOARD_AT + 32 + 9)
        byte = fh.read(1)
        fh.seek(_BOARD_AT + 32 + 9)
        fh.write(bytes([byte[0] ^ 1]))
    assert b._replica.store.posted_selection(version) is None
    want = fresh_build(truth, **PARAMS)
    assert picks(b.select()) == picks(want.select())
    assert b._memory.clustering.lag is None  # it updated its clustering instead
    assert b.digest() == want.digest()


def board(path) -> bytes:
    with open(keys_path(path), "rb") as fh:
        fh.seek(_BOARD_AT)
        return fh.read(HEADER_SIZE - _BOARD_AT)


def test_a_forgotten_example_leaves_no_trace_on_the_board(tmp_path):
    path = tmp_path / "pool.sqlite"
    a, X, truth = build(path)
    store = a._replica.store
    chosen = [s.id for s in a.select()]
    row_of = dict(a._memory.pool.row_of)
    old = board(path)
    a.forget([chosen[0]])  # a selected example: its row and score were on the board
    posted = store.posted_selection(store.published_version())
    assert posted is not None and row_of[chosen[0]] not in [r for r, _ in posted]
    entry = old[32:48]  # (row, score) of the forgotten example
    assert entry and entry not in board(path)
    with open(keys_path(path), "rb") as fh:
        assert entry not in fh.read()


@pytest.mark.parametrize("case", ["similarity", "too_many", "below_k"])
def test_a_forget_that_posts_nothing_clears_the_board(tmp_path, case):
    path = tmp_path / "pool.sqlite"
    if case == "similarity":
        a, X, truth = build(path, strategy="similarity")
    elif case == "too_many":
        a, X, truth = build(path, n=BOARD_CAPACITY + 20, k=BOARD_CAPACITY + 1)
    else:
        a, X, truth = build(path, n=6)
    b = ExampleIndex.open(path)
    if case == "below_k":
        assert any(board(path))  # posted after the add
        a.forget(["e000", "e001", "e002"])  # 3 left, k = 4: no clustering, nothing to post
    else:
        a.forget(["e000"])
    assert not any(board(path))
    if case != "below_k":
        del truth["e000"]
        want = fresh_build(truth, **{**PARAMS, **({"strategy": "similarity"} if case == "similarity" else {}),
                                     **({"k": BOARD_CAPACITY + 1} if case == "too_many" else {})})
        q = X[3]
        assert picks(b.select(q)) == picks(want.select(q))
        assert b.digest() == want.digest()


@pytest.mark.processes
def test_processes_select_the_writers_set_at_every_version(tmp_path):
    """Selector processes answer ``select()`` while a writer process forgets and adds: every
    answer is the set the writer itself selected at that version, no forgotten example is
    ever returned after its forget returned, and the selectors did answer from posted sets."""
    path = tmp_path / "pool.sqlite"
    X = mp_workers.vectors()
    index = ExampleIndex(k=4, seed=0, epsilon=0.02, path=path)
    index.add(X[: mp_workers.POOL], [{"n": i} for i in range(mp_workers.POOL)],
              ids=[mp_workers.ident(i) for i in range(mp_workers.POOL)])
    index.close()
    log, stop = tmp_path / "forgotten.log", tmp_path / "stop"
    ctx = multiprocessing.get_context("spawn")
    selectors = [ctx.Process(target=mp_workers.erase_selector, args=(str(path), str(log), str(stop),
                                                                     str(tmp_path / f"sel{j}.json")))
                 for j in range(3)]
    writer = ctx.Process(target=mp_workers.writer, args=(str(path), str(log), 5.0, 2, str(tmp_path / "writer.json")),
                         kwargs=dict(add_share=0.2, record=True, pause=0.01, keep=50))
    with mp_workers.running(selectors + [writer], stop):
        writer.join(90)
        assert writer.exitcode == 0
        stop.write_text("stop")
        for p in selectors:
            p.join(60)
            assert p.exitcode == 0
    written = json.loads((tmp_path / "writer.json").read_text())
    by_version = {int(v): ids for v, ids in written["selected"].items()}
    assert written["recomputed"] >= 1
    final = ExampleIndex.open(path)
    seen = 0
    for j in range(3):
        r = json.loads((tmp_path / f"sel{j}.json").read_text())
        assert r["stale"] == [] and r["verify"] and r["digest"] == final.digest()
        for version, ids in r["selected"]:
            if version in by_version:
                assert ids == by_version[version], version
                seen += 1
        assert r["lagged"] > 0  # answered from a posted set at least once
    assert seen > 20
    assert final.verify()
    assert_keys_match_rows(path)

