"""Many handles on one store: threads, processes and the CLI see one pool, exactly."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mp_workers
from erase_core import ERASEError, ExampleIndex, UnknownIdError
from erase_core.quantized_kmeans import QuantizedKMeans
from conftest import REPO_ROOT, clustered
from test_store import assert_keys_match_rows


def fresh_build(rows: dict[str, tuple[np.ndarray, object]], **params) -> ExampleIndex:
    index = ExampleIndex(**params)
    if rows:
        ids = sorted(rows)
        index.add(np.stack([rows[i][0] for i in ids]), [rows[i][1] for i in ids], ids=ids)
    return index


def test_every_handle_sees_every_forget_and_add(store_location):
    path = store_location  # a SQLite file, and a PostgreSQL schema
    X = clustered(80, d=12, seed=3)
    ids = [f"ex{i:03d}" for i in range(80)]
    a = ExampleIndex(k=4, strategy="similarity", seed=2, path=path)
    a.add(X, [{"i": i} for i in range(80)], ids=ids)
    b = ExampleIndex.open(path)  # opened before the forget: must not serve stale examples
    assert [s.id for s in b.select(X[10], k=1)] == [ids[10]]
    a.forget([ids[10]])
    assert ids[10] not in b and ids[10] not in b.ids
    assert ids[10] not in [s.id for s in b.select(X[10], k=5)]
    with pytest.raises(UnknownIdError):
        b.get(ids[10])
    with pytest.raises(UnknownIdError):  # already forgotten by a: nothing to do, and it says so
        b.forget([ids[10]])
    assert b.forget([ids[10]], missing="ignore").ids == ()
    b.add(X[:2] * -1, [{"new": 1}, {"new": 2}], ids=["new1", "new2"])
    assert a.get("new1") == {"new": 1}
    a.forget(["new2"])  # any handle forgets what another added
    assert "new2" not in b and len(a) == len(b) == 80
    assert a.digest() == b.digest() and a.verify() and b.verify()


def test_payloads_returned_are_copies(tmp_path):
    index = ExampleIndex(k=2, path=tmp_path / "p.sqlite")
    index.add(np.eye(3), [{"text": "a", "tags": ["x"]}, {"text": "b"}, {"text": "c"}], ids=["a", "b", "c"])
    digest = index.digest()
    index.get("a")["tags"].append("edited")
    for s in index.select():
        s.payload["text"] = "edited"
    assert index.get("a") == {"text": "a", "tags": ["x"]}
    assert {s.payload["text"] for s in index.select()} <= {"a", "b", "c"}
    assert index.digest() == digest and index.verify()


def test_a_failure_after_the_commit_leaves_the_handle_consistent(tmp_path, monkeypatch):
    path = tmp_path / "pool.sqlite"
    X = clustered(60, d=8, seed=4)
    index = ExampleIndex(k=3, seed=1, path=path)
    index.add(X[:50], [{"i": i} for i in range(50)], ids=[f"e{i}" for i in range(50)])

    def broken(self, *args, **kwargs):
        raise MemoryError("simulated")

    monkeypatch.setattr(QuantizedKMeans, "insert", broken)
    with pytest.raises(ERASEError, match="committed"):
        index.add(X[50:52], [{"i": 50}, {"i": 51}], ids=["e50", "e51"])
    monkeypatch.undo()
    # the add reached the store, and the handle now agrees with it
    assert "e50" in index and len(index) == 52 and index.verify()
    other = ExampleIndex.open(path)
    assert other.digest() == index.digest()


def test_bad_parameters_are_rejected_before_a_file_is_written(tmp_path):
    for bad in ({"epsilon": 1e30}, {"n_iter": 10**12}, {"projection_dim": 10**10}, {"k": 0}, {"seed": 1.5}):
        path = tmp_path / "never.sqlite"
        with pytest.raises(ERASEError):
            ExampleIndex(path=path, **bad)
        assert not path.exists() and not list(tmp_path.iterdir())


@pytest.mark.processes
def test_open_never_writes_to_an_empty_or_foreign_file(tmp_path):
    empty = tmp_path / "empty.sqlite"
    empty.write_bytes(b"")
    with pytest.raises(ERASEError, match="not an ERASE example store"):
        ExampleIndex.open(empty)
    assert empty.read_bytes() == b"" and sorted(p.name for p in tmp_path.iterdir()) == ["empty.sqlite"]
    result = subprocess.run([sys.executable, "-m", "erase_core.cli", "info", str(empty)], capture_output=True, text=True)
    assert result.returncode == 2 and "not an ERASE example store" in result.stderr
    assert empty.read_bytes() == b"" and sorted(p.name for p in tmp_path.iterdir()) == ["empty.sqlite"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), seed=st.integers(0, 3), strategy=st.sampled_from(["erase", "similarity"]))
def test_interleaved_handles_always_equal_a_fresh_build(tmp_path_factory, data, seed, strategy):
    path = tmp_path_factory.mktemp("h") / "pool.sqlite"
    X = clustered(40, d=6, blobs=3, seed=seed)
    X[5] = X[6]  # identical embeddings: rankings must not depend on row positions
    params = dict(k=3, strategy=strategy, seed=seed, epsilon=0.02)
    first = ExampleIndex(path=path, **params)
    first.add(X[:12], [{"i": i} for i in range(12)], ids=[f"x{i:02d}" for i in range(12)])
    handles = [first, ExampleIndex.open(path), ExampleIndex.open(path)]
    truth = {f"x{i:02d}": (X[i], {"i": i}) for i in range(12)}
    next_i = 12
    for _ in range(data.draw(st.integers(3, 12))):
        h = handles[data.draw(st.integers(0, 2))]
        if next_i < 40 and data.draw(st.booleans()):
            m = data.draw(st.integers(1, 3))
            new = [f"x{i:02d}" for i in range(next_i, min(40, next_i + m))]
            h.add(X[next_i : next_i + len(new)], [{"i": int(i[1:])} for i in new], ids=new)
            truth.update({i: (X[int(i[1:])], {"i": int(i[1:])}) for i in new})
            next_i += len(new)
        elif len(truth) > 3:
            victims = data.draw(st.lists(st.sampled_from(sorted(truth)), min_size=1, max_size=min(3, len(truth) - 3), unique=True))
            h.forget(victims)
            for v in victims:
                del truth[v]
        reader = handles[data.draw(st.integers(0, 2))]
        want = fresh_build(truth, **params)
        q = X[data.draw(st.integers(0, 39))]
        # reads first: a reader may answer from the set the writer posted, its clustering lagging
        if strategy == "erase":
            assert [(s.id, s.score) for s in reader.select()] == [(s.id, s.score) for s in want.select()]
        assert [(s.id, s.score) for s in reader.select(q)] == [(s.id, s.score) for s in want.select(q)]
        assert reader.digest() == want.digest()
    for h in handles:
        h.close()
    assert_keys_match_rows(path)


@pytest.mark.processes
def test_processes_and_the_cli_never_serve_a_forgotten_example(tmp_path):
    path = tmp_path / "pool.sqlite"
    log, stop = tmp_path / "forgotten.log", tmp_path / "stop"
    X = mp_workers.vectors()
    index = ExampleIndex(k=4, strategy="similarity", seed=0, path=path)
    index.add(X[: mp_workers.POOL], [{"n": i} for i in range(mp_workers.POOL)],
              ids=[mp_workers.ident(i) for i in range(mp_workers.POOL)])
    index.close()
    ctx = multiprocessing.get_context("spawn")
    selectors = [
        ctx.Process(target=mp_workers.selector, args=(str(path), str(log), str(stop), str(tmp_path / f"sel{j}.json"), j))
        for j in range(4)
    ]
    writer = ctx.Process(target=mp_workers.writer, args=(str(path), str(log), 6.0, 1, str(tmp_path / "writer.json")))
    with mp_workers.running(selectors + [writer], stop):
        time.sleep(2.0)
        # a forget from the command line, while the others run
        cli_victim = mp_workers.ident(mp_workers.POOL - 1)
        result = subprocess.run([sys.executable, "-m", "erase_core.cli", "forget", str(path), cli_victim, "--missing", "ignore"],
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        with open(log, "a") as fh:
            fh.write(cli_victim + "\n")
        writer.join(60)
        assert writer.exitcode == 0
        stop.write_text("stop")
        for p in selectors:
            p.join(60)
            assert p.exitcode == 0
    reports = [json.loads((tmp_path / f"sel{j}.json").read_text()) for j in range(4)]
    written = json.loads((tmp_path / "writer.json").read_text())
    assert written["ops"] > 20
    final = ExampleIndex.open(path)
    for r in reports:
        assert r["stale"] == [] and r["verify"] and r["reads"] > 20
        assert r["digest"] == final.digest()
    assert final.verify() and cli_victim not in final
    assert_keys_match_rows(path)


@pytest.mark.processes
def test_a_second_handle_in_the_same_process_keeps_the_first_ones_locks(tmp_path):
    """Opening (and closing) a second handle must not drop this process's SQLite locks on the
    database: POSIX locks die with ANY close() of the file, so another process's exit would then
    delete the WAL under a live handle, and later handles fail or miss changes."""
    path = tmp_path / "pool.sqlite"
    X = clustered(200, d=16, seed=1)
    a = ExampleIndex(k=4, path=path)
    a.add(X, [{"i": i} for i in range(200)], ids=[f"e{i}" for i in range(200)])
    ExampleIndex.open(path).close()
    assert ExampleIndex(k=4, path=tmp_path / "other.sqlite") is not None  # creating another store is harmless too
    with pytest.raises(ERASEError, match="already holds"):
        ExampleIndex(k=4, path=path)  # its header check runs while `a` is open
    child = ("import sys; sys.path.insert(0, %r); from erase_core import ExampleIndex; "
             "i = ExampleIndex.open(%r); i.forget(['e5']); i.close()") % (str(REPO_ROOT), str(path))
    subprocess.run([sys.executable, "-c", child], check=True)
    assert (tmp_path / "pool.sqlite-wal").exists() and (tmp_path / "pool.sqlite-shm").exists()
    assert "e5" not in a
    a.forget(["e7"])
    b = ExampleIndex.open(path)
    assert "e5" not in b and "e7" not in b and b.verify() and b.digest() == a.digest()
