"""Tests for erase_core.store.SQLiteExampleStore: round trips, atomicity, residue-free deletion, crash safety."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import erase_core
from erase_core._validation import ERASEError
from erase_core.store import APPLICATION_ID, SQLiteExampleStore, StoreError

REPO_ROOT = pathlib.Path(erase_core.__file__).resolve().parent.parent
PAGE = 4096
JOURNAL_MAGIC = bytes.fromhex("d9d505f920a163d7")


# ----------------------------------------------------------------- helpers
def _rows(n: int, d: int = 8, seed: int = 0, prefix: str = "ex"):
    rng = np.random.default_rng(seed)
    ids = [f"{prefix}-{i:04d}" for i in range(n)]
    payloads = [json.dumps({"text": f"payload {prefix} {i}", "n": i}) for i in range(n)]
    vecs = rng.standard_normal((n, d)).astype(np.float32)
    return ids, payloads, vecs


def _snapshot(store: SQLiteExampleStore):
    ids, payloads, vecs = store.load()
    return ids, payloads, None if vecs is None else vecs.tobytes()


def _dir_bytes(directory: pathlib.Path) -> dict[str, bytes]:
    """Raw bytes of every file under ``directory`` (not only the ones the store reports)."""
    out = {}
    for root, _dirs, names in os.walk(directory):
        for name in names:
            p = pathlib.Path(root, name)
            out[str(p)] = p.read_bytes()
    return out


def _occurs(blobs: dict[str, bytes], needle: bytes) -> list[str]:
    return [name for name, data in blobs.items() if needle in data]


def _dir_listing(directory: pathlib.Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


# ------------------------------------------------------------- round trips
def test_round_trip_close_reopen(tmp_path):
    path = tmp_path / "store.db"
    ids, payloads, vecs = _rows(25, d=12, seed=1)
    vecs[3, 0] = np.float32(-0.0)  # sign of zero must survive
    vecs[4, 1] = np.float32(1e-42)  # a subnormal must survive
    with SQLiteExampleStore(path) as store:
        assert store.path == path
        assert len(store) == 0
        assert store.load() == ([], [], None)
        assert store.read_config() is None
        store.add(ids[:10], payloads[:10], vecs[:10])
        store.add(ids[10:], payloads[10:], vecs[10:])
        cfg = {"k": 4, "epsilon": 0.25, "seed": 7, "names": ["a", "b"], "nested": {"x": None}}
        store.write_config(cfg)
        assert len(store) == 25
    assert path.exists()

    with SQLiteExampleStore(str(path)) as store:
        got_ids, got_payloads, got_vecs = store.load()
        assert got_ids == ids
        assert got_payloads == payloads
        assert got_vecs.dtype == np.float32 and got_vecs.shape == (25, 12)
        assert got_vecs.tobytes() == vecs.tobytes()  # bit-exact
        assert store.read_config() == cfg
        assert len(store) == 25
        store.write_config({"k": 5})
        assert store.read_config() == {"k": 5}
    with SQLiteExampleStore(path) as store:
        assert store.read_config() == {"k": 5}


def test_load_keeps_insertion_order_after_deletes(tmp_path):
    ids, payloads, vecs = _rows(10, seed=2)
    with SQLiteExampleStore(tmp_path / "s.db") as store:
        # ids deliberately not in sorted order
        order = [7, 2, 9, 0, 5]
        store.add([ids[i] for i in order], [payloads[i] for i in order], vecs[order])
        store.delete([ids[9]])  # delete the last row: the next seq must still sort after all others
        store.add([ids[1], ids[8]], [payloads[1], payloads[8]], vecs[[1, 8]])
        got_ids, got_payloads, got_vecs = store.load()
        expect = [7, 2, 0, 5, 1, 8]
        assert got_ids == [ids[i] for i in expect]
        assert got_payloads == [payloads[i] for i in expect]
        assert got_vecs.tobytes() == vecs[expect].tobytes()
        assert ids[1] in store and ids[9] not in store


def test_closed_store_refuses(tmp_path):
    store = SQLiteExampleStore(tmp_path / "s.db")
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        len(store)
    with pytest.raises(StoreError):
        store.load()


# --------------------------------------------------------------- atomicity
def test_duplicate_ids_reject_whole_batch(tmp_path):
    ids, payloads, vecs = _rows(6, seed=3)
    with SQLiteExampleStore(tmp_path / "s.db") as store:
        store.add(ids[:3], payloads[:3], vecs[:3])
        before = _snapshot(store)
        assert issubclass(StoreError, ERASEError) and issubclass(StoreError, ValueError)
        # duplicate within the batch
        with pytest.raises(StoreError, match="duplicate"):
            store.add([ids[3], ids[4], ids[3]], payloads[3:6], vecs[3:6])
        assert len(store) == 3 and _snapshot(store) == before
        # duplicate against an existing row (new rows before it must not be kept)
        with pytest.raises(StoreError, match="already"):
            store.add([ids[3], ids[4], ids[1]], payloads[3:6], vecs[3:6])
        assert len(store) == 3 and _snapshot(store) == before
    with SQLiteExampleStore(tmp_path / "s.db") as store:
        assert _snapshot(store) == before


def test_add_rejects_bad_input(tmp_path):
    ids, payloads, vecs = _rows(4, d=8, seed=4)
    with SQLiteExampleStore(tmp_path / "s.db") as store:
        store.add(ids[:2], payloads[:2], vecs[:2])
        before = _snapshot(store)
        with pytest.raises(StoreError, match="dimension"):
            store.add(ids[2:], payloads[2:], np.zeros((2, 5), np.float32))
        with pytest.raises(StoreError):
            store.add(ids[2:], payloads[2:3], vecs[2:])
        with pytest.raises(StoreError):
            store.add(ids[2:], payloads[2:], vecs[2:3])
        with pytest.raises(StoreError, match="JSON"):
            store.add(ids[2:], ["{not json", payloads[3]], vecs[2:])
        with pytest.raises(StoreError):
            store.add([ids[2], 5], payloads[2:], vecs[2:])
        assert _snapshot(store) == before


def test_delete_unknown_id_changes_nothing(tmp_path):
    ids, payloads, vecs = _rows(5, seed=5)
    with SQLiteExampleStore(tmp_path / "s.db") as store:
        store.add(ids, payloads, vecs)
        before = _snapshot(store)
        with pytest.raises(StoreError, match="nope"):
            store.delete([ids[0], "nope", ids[2]])  # known ids before and after the unknown one
        assert len(store) == 5 and _snapshot(store) == before
        with pytest.raises(StoreError, match="duplicate"):
            store.delete([ids[0], ids[0]])
        assert _snapshot(store) == before
        store.delete([])
        assert _snapshot(store) == before
    with SQLiteExampleStore(tmp_path / "s.db") as store:
        assert _snapshot(store) == before
        store.delete([ids[1], ids[3]])
        got_ids, _, got_vecs = store.load()
        assert got_ids == [ids[0], ids[2], ids[4]]
        assert got_vecs.tobytes() == vecs[[0, 2, 4]].tobytes()


def test_threads_share_one_store(tmp_path):
    d = 6
    errors: list[BaseException] = []
    with SQLiteExampleStore(tmp_path / "s.db") as store:

        def worker(t: int) -> None:
            try:
                rng = np.random.default_rng(t)
                for b in range(8):
                    ids = [f"t{t}-b{b}-{j}" for j in range(5)]
                    store.add(ids, ["{}"] * 5, rng.standard_normal((5, d)).astype(np.float32))
                    store.load()
                    if b % 2:
                        store.delete(ids[:2])
                    len(store)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert not errors
        assert len(store) == 4 * (8 * 5 - 4 * 2)
        assert len(set(store.load()[0])) == len(store)


# ------------------------------------------------------- residue-free delete
def _marked_rows(n: int, seed: int, d: int = 32, big_every: int = 25):
    """Rows whose id, payload marker and vector bytes are each distinctive byte strings."""
    rng = np.random.default_rng(seed)
    ids = [f"RESID-{i:04d}-{rng.integers(1 << 62):x}" for i in range(n)]
    markers = [f"MARK{i:04d}Q{rng.integers(1 << 62):x}Z" for i in range(n)]
    big = set(range(0, n, big_every))  # payloads larger than several pages (overflow chains)
    payloads = []
    for i in range(n):
        if i in big:
            body = (markers[i] + " ") * (20_000 // (len(markers[i]) + 1))
            assert len(body) > 4 * PAGE
        else:
            body = f"small {markers[i]} " + "y" * int(rng.integers(10, 300))
        payloads.append(json.dumps({"text": body, "i": i}))
    vecs = rng.standard_normal((n, d)).astype(np.float32)
    return ids, markers, payloads, vecs, big


def _assert_erased(directory, label, gone, present, ids, markers, vecs):
    blobs = _dir_bytes(directory)
    assert blobs, label
    for i in gone:
        assert not _occurs(blobs, ids[i].encode()), (label, "id", i)
        assert not _occurs(blobs, markers[i].encode()), (label, "payload", i)
        assert not _occurs(blobs, vecs[i].tobytes()), (label, "vector", i)
        assert not _occurs(blobs, vecs[i].tobytes()[:16]), (label, "vector prefix", i)
    for i in present:
        assert _occurs(blobs, ids[i].encode()), (label, "kept id", i)
        assert _occurs(blobs, markers[i].encode()), (label, "kept payload", i)
        assert _occurs(blobs, vecs[i].tobytes()), (label, "kept vector", i)


def test_delete_leaves_no_residue_in_any_file(tmp_path):
    n = 300
    ids, markers, payloads, vecs, big = _marked_rows(n, seed=1234)

    path = tmp_path / "s.db"
    store = SQLiteExampleStore(path)
    store.add(ids[: n // 2], payloads[: n // 2], vecs[: n // 2])
    store.add(ids[n // 2 :], payloads[n // 2 :], vecs[n // 2 :])
    store.write_config({"secret": "OLD-CONFIG-MARKER-9f8e7d"})
    store.write_config({"secret": "new"})

    # before deleting: every marker is present (the scan can see what it looks for)
    blobs = _dir_bytes(tmp_path)
    for i in [0, 1, 25, n - 1]:
        assert _occurs(blobs, ids[i].encode()), i
        assert _occurs(blobs, markers[i].encode()), i
        assert _occurs(blobs, vecs[i].tobytes()), i

    deleted = sorted(set(range(0, n, 3)) | {0, 50, 200} | set(range(100, 160)))
    kept = [i for i in range(n) if i not in set(deleted)]
    assert big & set(deleted) and big & set(kept)
    store.delete([ids[i] for i in deleted[:40]])
    store.delete([ids[i] for i in deleted[40:]])

    def check(label: str) -> None:
        _assert_erased(tmp_path, label, deleted, kept, ids, markers, vecs)
        assert not _occurs(_dir_bytes(tmp_path), b"OLD-CONFIG-MARKER-9f8e7d"), (label, "old config")

    # right after delete, store still open
    assert store.files() == [path]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.db"]
    check("open")
    store.close()
    check("closed")
    with SQLiteExampleStore(path) as store:
        ids2, payloads2, vecs2 = store.load()
        assert ids2 == [ids[i] for i in kept]
        assert payloads2 == [payloads[i] for i in kept]
        assert vecs2.tobytes() == vecs[kept].tobytes()
    # delete everything: nothing of any row may remain
    with SQLiteExampleStore(path) as store:
        store.delete([ids[i] for i in kept])
        assert store.load() == ([], [], None)
    _assert_erased(tmp_path, "all deleted", range(n), [], ids, markers, vecs)


def test_churn_of_adds_and_deletes_leaves_no_residue(tmp_path):
    """Interleaved adds and single/multi-row deletes (many b-tree rebalances)."""
    n = 400
    ids, markers, payloads, vecs, _big = _marked_rows(n, seed=99, big_every=37)
    rng = np.random.default_rng(5)
    live: list[int] = []
    gone: list[int] = []
    with SQLiteExampleStore(tmp_path / "s.db") as store:
        for start in range(0, n, 50):
            batch = list(range(start, start + 50))
            store.add([ids[i] for i in batch], [payloads[i] for i in batch], vecs[batch])
            live += batch
            for k in (1, 7, 3):
                victims = sorted(rng.choice(live, size=k, replace=False).tolist())
                store.delete([ids[i] for i in victims])
                live = [i for i in live if i not in victims]
                gone += victims
        _assert_erased(tmp_path, "churn", gone, live, ids, markers, vecs)
        got_ids, got_payloads, got_vecs = store.load()
        assert got_ids == [ids[i] for i in live]
        assert got_payloads == [payloads[i] for i in live]
        assert got_vecs.tobytes() == vecs[live].tobytes()


def test_open_finishes_an_interrupted_scrub(tmp_path):
    """A delete committed by a process that died before its VACUUM: the next open erases the residue."""
    n = 300
    ids, markers, payloads, vecs, _big = _marked_rows(n, seed=1234)
    path = tmp_path / "s.db"
    with SQLiteExampleStore(path) as store:
        store.add(ids[:150], payloads[:150], vecs[:150])
        store.add(ids[150:], payloads[150:], vecs[150:])
    deleted = sorted(set(range(0, n, 3)) | set(range(100, 160)))
    kept = [i for i in range(n) if i not in set(deleted)]
    # what a killed delete() leaves: rows deleted and the flag set, committed; no VACUUM yet
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA secure_delete = ON")
    conn.executemany("DELETE FROM examples WHERE id = ?", [(ids[i],) for i in deleted])
    conn.execute("INSERT INTO meta (key, value) VALUES ('scrub_pending', '1')")
    conn.commit()
    conn.close()
    with SQLiteExampleStore(path) as store:
        assert store.load()[0] == [ids[i] for i in kept]
        _assert_erased(tmp_path, "reopened", deleted, kept, ids, markers, vecs)
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM meta WHERE key = 'scrub_pending'").fetchone()[0] == 0
    conn.close()


# ---------------------------------------------------------- malformed files
def _assert_rejected_untouched(tmp_path: pathlib.Path, path: pathlib.Path, match: str) -> None:
    before = _dir_listing(tmp_path)
    with pytest.raises(StoreError, match=match):
        SQLiteExampleStore(path)
    assert _dir_listing(tmp_path) == before  # same files, same bytes, no side files left


def test_text_file_is_rejected_untouched(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("this is not a database\n" * 50)
    _assert_rejected_untouched(tmp_path, path, "not an ERASE example store")


def test_random_bytes_are_rejected_untouched(tmp_path):
    path = tmp_path / "noise.db"
    path.write_bytes(np.random.default_rng(9).integers(0, 256, 3 * PAGE, dtype=np.uint8).tobytes())
    _assert_rejected_untouched(tmp_path, path, "not an ERASE example store")


def test_unrelated_sqlite_database_is_rejected_untouched(tmp_path):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE people (name TEXT, age INTEGER)")
    conn.execute("INSERT INTO people VALUES ('ada', 36)")
    conn.commit()
    conn.close()
    _assert_rejected_untouched(tmp_path, path, "not an ERASE example store")


def test_unrelated_wal_database_is_rejected_untouched(tmp_path):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    _assert_rejected_untouched(tmp_path, path, "not an ERASE example store")


def test_wrong_schema_version_is_rejected_untouched(tmp_path):
    path = tmp_path / "s.db"
    with SQLiteExampleStore(path) as store:
        store.add(*_rows(3))
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.commit()
    conn.close()
    _assert_rejected_untouched(tmp_path, path, "version 99")


def test_store_tables_damaged_is_rejected_untouched(tmp_path):
    path = tmp_path / "s.db"
    SQLiteExampleStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE examples")
    conn.execute("CREATE TABLE examples (a, b)")
    conn.commit()
    conn.close()
    _assert_rejected_untouched(tmp_path, path, "columns")


def test_directory_and_missing_parent_are_rejected(tmp_path):
    (tmp_path / "adir").mkdir()
    with pytest.raises(StoreError):
        SQLiteExampleStore(tmp_path / "adir")
    with pytest.raises(StoreError):
        SQLiteExampleStore(tmp_path / "missing" / "s.db")
    assert not (tmp_path / "missing").exists()


def test_empty_file_becomes_a_store(tmp_path):
    path = tmp_path / "s.db"
    path.write_bytes(b"")
    with SQLiteExampleStore(path) as store:
        store.add(*_rows(2))
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    conn.close()
    with SQLiteExampleStore(path) as store:
        assert len(store) == 2


# -------------------------------------------------------- model-based check
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["add", "delete", "reopen"]),
            st.lists(st.integers(0, 15), min_size=0, max_size=6),
        ),
        max_size=12,
    )
)
def test_matches_a_dict_model(ops):
    d = 4
    table = {i: np.random.default_rng(i).standard_normal(d).astype(np.float32) for i in range(16)}
    model: dict[str, tuple[str, bytes]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp, "s.db")
        store = SQLiteExampleStore(path)
        try:
            for op, keys in ops:
                names = [f"k{k}" for k in keys]
                if op == "reopen":
                    store.close()
                    store = SQLiteExampleStore(path)
                elif op == "add":
                    payloads = [json.dumps({"k": k}) for k in keys]
                    vecs = np.array([table[k] for k in keys], np.float32).reshape(len(keys), d)
                    ok = len(set(names)) == len(names) and not set(names) & set(model)
                    if ok:
                        store.add(names, payloads, vecs)
                        for nm, p, k in zip(names, payloads, keys):
                            model[nm] = (p, table[k].tobytes())
                    else:
                        with pytest.raises(StoreError):
                            store.add(names, payloads, vecs)
                else:
                    ok = len(set(names)) == len(names) and set(names) <= set(model)
                    if ok:
                        store.delete(names)
                        for nm in names:
                            del model[nm]
                    else:
                        with pytest.raises(StoreError):
                            store.delete(names)
                got_ids, got_payloads, got_vecs = store.load()
                assert got_ids == list(model)  # dict keeps insertion order, like the store
                assert got_payloads == [model[k][0] for k in model]
                assert (got_vecs is None) == (not model)
                if model:
                    assert got_vecs.tobytes() == b"".join(model[k][1] for k in model)
                assert len(store) == len(model)
        finally:
            store.close()


# ------------------------------------------------------ crash during delete
_CHILD = textwrap.dedent(
    """
    import sys, time
    from erase_core.store import SQLiteExampleStore
    path, n = sys.argv[1], int(sys.argv[2])
    store = SQLiteExampleStore(path)
    ids = [f"id-{i:06d}" for i in range(0, n, 2)]
    print("ready", flush=True)
    t0 = time.perf_counter()
    store.delete(ids)
    print("done", time.perf_counter() - t0, flush=True)
    store.close()
    """
)


def _run_child(path: pathlib.Path, n: int, kill_after: float | None):
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path), str(n)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline()
        assert line.strip() == "ready", (line, proc.stderr.read() if proc.poll() is not None else "")
        if kill_after is None:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            return float(out.split()[1])
        time.sleep(kill_after)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
        return None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sigkill_during_delete_leaves_before_or_after_state(tmp_path):
    n, d = 20_000, 8
    rng = np.random.default_rng(77)
    ids = [f"id-{i:06d}" for i in range(n)]
    payloads = [json.dumps({"i": i, "text": f"row {i} " + "p" * 1000}) for i in range(n)]
    vecs = rng.standard_normal((n, d)).astype(np.float32)
    base = tmp_path / "base.db"
    with SQLiteExampleStore(base) as store:
        store.add(ids, payloads, vecs)
        store.write_config({"k": 3})
        before = _snapshot(store)
    keep = list(range(1, n, 2))
    after = ([ids[i] for i in keep], [payloads[i] for i in keep], vecs[keep].tobytes())

    # uninterrupted run: gives the duration of the delete transaction
    work = tmp_path / "run"
    work.mkdir()
    path = work / "s.db"
    shutil.copyfile(base, path)
    duration = _run_child(path, n, None)
    with SQLiteExampleStore(path) as store:
        assert _snapshot(store) == after
        assert store.read_config() == {"k": 3}

    jitter = np.random.default_rng(int(time.time()))
    fractions = [0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.45, 0.6, 0.75, 0.9, 1.5]
    outcomes = []
    mid_transaction = mid_vacuum = 0
    for trial, frac in enumerate(fractions):
        work = tmp_path / f"trial{trial}"
        work.mkdir()
        path = work / "s.db"
        shutil.copyfile(base, path)
        delay = max(0.0, frac * duration * float(jitter.uniform(0.9, 1.1)))
        _run_child(path, n, delay)
        journal = work / "s.db-journal"
        hot_journal = journal.exists() and journal.read_bytes()[:8] == JOURNAL_MAGIC
        with SQLiteExampleStore(path) as store:
            snap = _snapshot(store)
            assert snap == before or snap == after, (trial, delay, len(snap[0]))
            assert store.read_config() == {"k": 3}
            if hot_journal and snap == before:  # killed inside the delete transaction: rolled back
                mid_transaction += 1
            if hot_journal and snap == after:  # killed inside the scrubbing VACUUM
                mid_vacuum += 1
        outcomes.append("before" if snap == before else "after")
        # reopening rolled back / cleaned up: only the database file is left
        assert sorted(p.name for p in work.iterdir()) == ["s.db"], (trial, list(work.iterdir()))
        if snap == after:  # a kill during the scrub is finished by the reopen
            conn = sqlite3.connect(path)
            assert conn.execute("SELECT count(*) FROM meta WHERE key = 'scrub_pending'").fetchone()[0] == 0
            conn.close()
            data = path.read_bytes()
            for i in range(0, n, 2 * 997):
                assert ids[i].encode() not in data
                assert vecs[i].tobytes() not in data
        shutil.rmtree(work)
    # at least one kill landed inside the transaction after the database file was modified
    assert mid_transaction >= 1, (duration, outcomes, mid_vacuum)
    assert outcomes[-1] == "after", outcomes  # killed well after the commit
