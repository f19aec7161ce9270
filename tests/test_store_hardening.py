"""Regression tests of the store's hardening (issue 27): no silent no-op on a closed handle,
wrong values and odd input raise our errors with the state unchanged."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest

from erase_core import ERASEError, ExampleIndex, IndexClosedError, payload_json
from erase_core.storage import StoreError, keys_path
from erase_core.storage import keyfile as keyfile_module
from conftest import clustered
from residue import assert_sealed, vector_windows
from test_store import assert_keys_match_rows, key_slots

N = 12


def _pool(path, **params) -> tuple[ExampleIndex, np.ndarray, list[str]]:
    X = clustered(N, d=8, seed=5)
    ids = [f"x{i}" for i in range(N)]
    index = ExampleIndex(k=2, seed=1, path=path, **params)
    index.add(X, [{"i": i} for i in range(N)], ids=ids, subjects=["alice"] * 3 + [None] * (N - 3),
              metadata=[{"t": i % 3} for i in range(N)])
    return index, X, ids


def _files(directory) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


# ---------------------------------------------------------------------- item 1: closed handles
CLOSED_MUTATIONS = {
    "forget": lambda ix, X: ix.forget(["x1"]),
    "forget_subject": lambda ix, X: ix.forget_subject("alice"),
    "forget_where": lambda ix, X: ix.forget_where({"t": 1}),
    "upsert": lambda ix, X: ix.upsert(X[:1], [{"new": 1}], ids=["x1"]),
    "add": lambda ix, X: ix.add(X[:1] * -1, [{"new": 1}], ids=["fresh"]),
    "set_note": lambda ix, X: ix.set_note("model", "m"),
}


@pytest.mark.parametrize("name", sorted(CLOSED_MUTATIONS))
def test_a_closed_handle_refuses_every_mutation(tmp_path, name):
    path = tmp_path / "pool.sqlite"
    index, X, ids = _pool(path)
    digest, keys = index.digest(), key_slots(path)
    index.close()
    before = _files(tmp_path)
    with pytest.raises(IndexClosedError, match="closed: nothing was changed"):
        CLOSED_MUTATIONS[name](index, X)
    assert _files(tmp_path) == before  # not a byte on disk
    with pytest.raises(ERASEError, match="closed"):  # and memory did not run ahead either
        len(index)
    reopened = ExampleIndex.open(path)
    assert "x1" in reopened and reopened.digest() == digest and key_slots(path) == keys
    assert reopened.note("model") is None
    reopened.close()


def test_a_closed_handle_refuses_reads(tmp_path):
    index, X, _ = _pool(tmp_path / "pool.sqlite")
    index.select()  # leaves a snapshot select_nowait could serve
    index.close()
    assert index.select_nowait() is None
    for read in (lambda: index.select(), lambda: index.get("x1"), lambda: "x1" in index, lambda: index.ids,
                 lambda: index.search(X[0]), lambda: index.verify()):
        with pytest.raises(ERASEError, match="closed"):
            read()
    index.close()  # closing twice is fine


def test_an_in_memory_index_still_works_after_close():
    index = ExampleIndex(k=2)
    index.add(clustered(4, d=4), [1, 2, 3, 4], ids=["a", "b", "c", "d"])
    index.close()
    index.forget(["a"])
    assert len(index) == 3 and index.verify()


# ---------------------------------------------------------------------- item 4: wrong values
def test_vectors_whose_norm_overflows_or_underflows_are_rejected(tmp_path):
    index, X, _ = _pool(tmp_path / "pool.sqlite")
    digest = index.digest()
    with pytest.raises(ERASEError, match=r"vector 0 is too large: its norm overflows"):
        index.add(np.full((1, 8), 1e200), [{}], ids=["big"])
    with pytest.raises(ERASEError, match=r"vector 1 is too small: its norm underflows"):
        index.add(np.vstack([X[0] * -1, np.full(8, 1e-200)]), [{}, {}], ids=["ok", "tiny"])
    with pytest.raises(ERASEError, match="query_vector is too large"):
        index.search(np.full(8, 1e200))
    assert index.digest() == digest and "big" not in index and "ok" not in index
    # a large but representable norm is fine, and stored as the same direction
    index.add(X[:1] * 1e150, [{}], ids=["scaled"])
    assert np.allclose(index.vector("scaled"), index.vector("x0"), atol=1e-6)


def test_complex_vectors_are_rejected(tmp_path):
    index, X, _ = _pool(tmp_path / "pool.sqlite")
    digest = index.digest()
    with pytest.raises(ERASEError, match="complex"):
        index.add(X[:1] + 1j, [{}], ids=["cx"])
    with pytest.raises(ERASEError, match="complex"):
        index.add(X[:1].astype(np.complex64), [{}], ids=["cx"])
    with pytest.raises(ERASEError):
        index.add([[complex(1, 1)] * 8], [{}], ids=["cx"])
    with pytest.raises(ERASEError, match="complex"):
        index.search(X[0] + 0j)
    assert index.digest() == digest and "cx" not in index


# ---------------------------------------------------------------------- item 5: our errors, not Python's
def _deep(n: int):
    value: list = []
    for _ in range(n):
        value = [value]
    return value


BAD_INPUT = {
    "surrogate id": (lambda ix, X: ix.add(X[:1] * -1, [{}], ids=["a\ud800"]), r"ids\[0\] is not valid Unicode"),
    "surrogate payload": (lambda ix, X: ix.add(X[:1] * -1, ["a\udfff"], ids=["p"]), r"payloads\[0\] is not valid Unicode"),
    "surrogate subject": (lambda ix, X: ix.add(X[:1] * -1, [{}], ids=["s"], subjects=["\ud800"]), "not valid Unicode"),
    "surrogate metadata": (lambda ix, X: ix.add(X[:1] * -1, [{}], ids=["m"], metadata=[{"t": "\ud800"}]), "not valid Unicode"),
    "surrogate upsert": (lambda ix, X: ix.upsert(X[:1], [{}], ids=["x0\ud800"]), "not valid Unicode"),
    "surrogate forget_subject": (lambda ix, X: ix.forget_subject("alice\ud800"), "subject is not valid Unicode"),
    "surrogate forget_where": (lambda ix, X: ix.forget_where({"t": "\ud800"}), "filter is not valid Unicode"),
    "surrogate note": (lambda ix, X: ix.set_note("k", "\ud800"), "note's value is not valid Unicode"),
    "deep payload": (lambda ix, X: ix.add(X[:1] * -1, [_deep(100_000)], ids=["deep"]), "nested too deeply"),
    "ids=5": (lambda ix, X: ix.add(X[:1] * -1, [{}], ids=5), "ids must be a sequence of string ids; got int 5"),
    "upsert ids=5": (lambda ix, X: ix.upsert(X[:1] * -1, [{}], ids=5), "got int 5"),
    "payloads=5": (lambda ix, X: ix.add(X[:1] * -1, 5, ids=["p"]), "payloads must be a sequence"),
    "forget(None)": (lambda ix, X: ix.forget(None), "ids are required"),
    "forget(5)": (lambda ix, X: ix.forget(5), "got int 5"),
    "forget_where set": (lambda ix, X: ix.forget_where({"t": {"$in": [{1, 2}]}}), "not a JSON value|unsupported value|set"),
    "forget_where object": (lambda ix, X: ix.forget_where({"t": object()}), "not a JSON value|unsupported value"),
    "forget_where among=5": (lambda ix, X: ix.forget_where({"t": 1}, among=5), "among must be a collection"),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUT))
def test_bad_input_raises_ours_and_changes_nothing(tmp_path, name):
    path = tmp_path / "pool.sqlite"
    index, X, ids = _pool(path)
    other = ExampleIndex.open(path)
    digest, audit = index.digest(), index.audit()
    call, match = BAD_INPUT[name]
    with pytest.raises(ERASEError, match=match):
        call(index, X)
    assert index.digest() == digest and index.audit() == audit and other.digest() == digest
    assert index.verify() and sorted(index.ids) == sorted(ids)
    assert_keys_match_rows(path)
    index.forget(["x2"])  # the handle still works
    assert "x2" not in other
    index.close()
    other.close()


def test_bad_constructor_and_open_arguments_raise_ours(tmp_path):
    with pytest.raises(ERASEError, match="epsilon must be a real number, got 'x'"):
        ExampleIndex(epsilon="x")
    for bad in (None, 5, b"bytes", ""):
        with pytest.raises(StoreError, match="store path must be"):
            ExampleIndex.open(bad)
    with pytest.raises(StoreError, match="store path must be"):
        ExampleIndex(k=2, path=5)
    with pytest.raises(StoreError, match="store path must be"):
        ExampleIndex.open_or_create(None)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO])
@pytest.mark.parametrize("step", ["pwrite", "fsync"])
def test_key_file_errors_before_the_commit_are_store_errors_naming_the_file(tmp_path, monkeypatch, code, step):
    path = tmp_path / "pool.sqlite"
    index, X, ids = _pool(path)
    other = ExampleIndex.open(path)
    digest = index.digest()
    real = getattr(keyfile_module.os, step)

    def failing(fd, *args):
        if step == "pwrite" and len(args[0]) != keyfile_module.KEY_SIZE:
            return real(fd, *args)  # header flags: let them through, fail the key itself
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(keyfile_module.os, step, failing)
    with pytest.raises(StoreError, match=rf"rolled back, nothing was changed: cannot write {keys_path(path)}: {os.strerror(code)}"):
        index.add(X[:2] * -1, [{}, {}], ids=["n1", "n2"])
    monkeypatch.undo()
    assert index.digest() == digest == other.digest() and "n1" not in other
    index.add(X[:2] * -1, [{}, {}], ids=["n1", "n2"])  # a retry works
    assert "n1" in other and other.verify()
    assert_keys_match_rows(path)
    index.close()
    other.close()


# ---------------------------------------------------------------------- item 2: no stale window
# The writer's steps after its COMMIT, in order, as the KeyFile method entered at each one
# (the process is killed, fails or pauses on entering it): "shred" is right after the commit.
STEPS_AFTER_COMMIT = ["shred", "shred_image_key", "clear_selection", "sync", "post_selection", "publish", "lower"]

_WRITER = r"""
import errno, os, signal, sys
from erase_core import ExampleIndex
from erase_core.storage import keyfile
step, mode, victim = sys.argv[1:4]
index = ExampleIndex.open(sys.argv[4])
method = "set_shred_pending" if step == "lower" else step
real = getattr(keyfile.KeyFile, method)
armed = [False]

def hooked(self, *args):
    if armed[0] and (step != "lower" or args == (False,)):
        armed[0] = False
        if mode == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if mode == "fail":
            raise OSError(errno.EIO, "Input/output error")
        print("paused", flush=True)  # mode "pause": hold the writer lock until told to go on
        sys.stdin.readline()
    return real(self, *args)

setattr(keyfile.KeyFile, method, hooked)
print("ready", flush=True)
sys.stdin.readline()
armed[0] = True
try:
    index.forget([victim])
    print("returned", flush=True)
except Exception as exc:
    print("failed", type(exc).__name__, exc, flush=True)
    sys.stdin.readline()  # stay alive, lock released, until the reader has checked
"""


def _gone_everywhere(reader, X, ids, victim) -> None:
    """No read of ``reader`` returns ``victim``, whichever path it takes."""
    j = ids.index(victim)
    if reader.strategy == "erase":
        now = reader.select_nowait()
        assert now is None or victim not in [s.id for s in now]
    assert victim not in [s.id for s in (reader.select() if reader.strategy == "erase" else reader.select(X[j]))]
    assert victim not in [s.id for s in reader.search(X[j], k=3)]
    assert victim not in reader and victim not in reader.ids
    with pytest.raises(ERASEError):
        reader.get(victim)


def _victim(index, ids) -> str:
    return index.select()[0].id  # a selected example: its forget changes the posted set


@pytest.mark.processes
@pytest.mark.parametrize("mode", ["kill", "fail", "pause"])
@pytest.mark.parametrize("step", STEPS_AFTER_COMMIT)
def test_no_handle_reads_a_forgotten_example_once_its_commit_happened(tmp_path, step, mode):
    import subprocess
    import sys

    path = tmp_path / "pool.sqlite"
    strategy = "similarity" if step == "clear_selection" else "erase"  # similarity posts no selection
    index, X, ids = _pool(path, strategy=strategy)
    if strategy == "erase":
        victim = _victim(index, ids)
    else:
        victim = "x4"
    reader = ExampleIndex.open(path)  # opened before: it holds the victim in memory
    assert victim in reader and reader.select(X[0])  # and an erase handle a select_nowait snapshot
    victim_key = key_slots(path)[_slot_of(path, victim, reader)]
    victim_plain = [payload_json(reader.get(victim)).encode("utf-8"), *vector_windows(reader.vector(victim).tobytes())]
    child = subprocess.Popen([sys.executable, "-c", _WRITER, step, mode, victim, str(path)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        child.stdin.write("go\n")
        child.stdin.flush()
        if mode == "kill":
            child.wait(timeout=60)
            assert child.returncode == -9
        else:
            line = child.stdout.readline()
            assert line.startswith("paused" if mode == "pause" else ("failed", "returned")), line
        # the commit happened: whatever the writer does now, no read returns the example
        _gone_everywhere(reader, X, ids, victim)
        if mode != "pause":  # the reader finished the interrupted erasure itself
            assert victim_key not in keys_path(path).read_bytes()
            assert_keys_match_rows(path)
            late = ExampleIndex.open(path)  # (open would wait for a live writer's lock)
            _gone_everywhere(late, X, ids, victim)
            late.close()
        if mode != "kill":
            child.stdin.write("go on\n")
            child.stdin.flush()
        if mode == "pause":
            assert child.stdout.readline().startswith("returned")
        if mode != "kill":
            child.stdin.close()
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert victim_key not in keys_path(path).read_bytes()
    assert_keys_match_rows(path)
    _gone_everywhere(reader, X, ids, victim)
    assert reader.verify() and index.verify() and reader.digest() == index.digest()
    assert index.forgotten(example_id=victim)  # the audit entry committed with the forget
    # every file under the directory, in 32-byte windows: neither the example nor its key
    kept_key = key_slots(path)[_slot_of(path, next(i for i in ids if i != victim), reader)]
    for handle in (reader, index):
        handle.close()
    assert_sealed(tmp_path, path, victim_plain, live_keys=[kept_key], shredded_keys=[victim_key])


def _slot_of(path, victim, handle) -> int:
    from erase_core.storage import ExampleStore
    from test_store import owned_slots

    with ExampleStore.open(path) as store:
        row = {r.id: r.row for r in store.load()[2]}[victim]
    return owned_slots(path)[row]


def test_a_failed_add_after_its_commit_says_what_failed(tmp_path, monkeypatch):
    path = tmp_path / "pool.sqlite"
    index, X, ids = _pool(path)
    other = ExampleIndex.open(path)

    def broken(self, version):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(keyfile_module.KeyFile, "publish", broken)
    with pytest.raises(StoreError, match="committed, but publishing its version failed") as info:
        index.add(X[:1] * -1, [{"new": 1}], ids=["new"])
    assert "forgotten" not in str(info.value) and "zeroing" not in str(info.value)
    assert "new" in other  # committed: every handle reads it already
    monkeypatch.undo()
    assert "new" in index and index.verify() and other.digest() == index.digest()


# ---------------------------------------------------------------------- item 3: the audit secret and file modes
def _downgrade_to_layout_2(path) -> bytes:
    """Rewrite a store as layout 2 wrote it (the audit secret in ``meta``, no row-set digest,
    key file format 1 with no secret in its header); returns the secret."""
    import sqlite3
    import struct

    raw = bytearray(keys_path(path).read_bytes())
    secret = bytes(raw[96:128])
    raw[96:128] = bytes(32)
    raw[8:12] = struct.pack("<I", 1)
    keys_path(path).write_bytes(bytes(raw))
    con = sqlite3.connect(path)
    con.execute("INSERT INTO meta (key, value) VALUES ('audit_key', ?)", (secret.hex(),))
    con.execute("ALTER TABLE state DROP COLUMN rows_digest")
    con.execute("PRAGMA user_version = 2")
    con.commit()
    con.close()
    return secret


def _every_byte(directory) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file() and not p.name.endswith(".keys"))


def test_the_audit_secret_lives_in_the_key_file_not_the_database(tmp_path):
    path = tmp_path / "pool.sqlite"
    index, X, ids = _pool(path)
    index.forget(["x5"])
    index.forget_subject("alice")
    secret = keys_path(path).read_bytes()[96:128]
    assert secret != bytes(32)
    db_bytes = _every_byte(tmp_path)  # the database, its WAL and shared memory, while open
    assert secret not in db_bytes and secret.hex().encode() not in db_bytes
    import sqlite3

    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    assert [k for (k,) in con.execute("SELECT key FROM meta")] == ["format", "uuid"]
    con.close()
    index.close()
    reopened = ExampleIndex.open(path)
    assert reopened.forgotten(example_id="x5") and reopened.forgotten(subject="alice")
    assert not reopened.forgotten(example_id="x6")
    reopened.close()


def test_every_store_file_is_created_owner_only(tmp_path, monkeypatch):
    monkeypatch.setenv("ERASE_IMAGE_MIN_ROWS", "4")  # an image is written at the first long open
    old = os.umask(0o022)
    try:
        path = tmp_path / "pool.sqlite"
        index, X, ids = _pool(path)
        index.forget(["x1"])
        other = ExampleIndex.open(path)  # writes the open image
        files = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
        assert {"pool.sqlite", "pool.sqlite.keys", "pool.sqlite-wal", "pool.sqlite-shm", "pool.sqlite.image"} <= set(files)
        assert files == {name: 0o600 for name in files}
        other.close()
        index.close()
        empty = tmp_path / "made-by-hand.sqlite"  # an empty file the caller created is narrowed
        empty.touch(0o644)
        ExampleIndex(k=2, path=empty).close()
        assert empty.stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)


def test_a_layout_2_store_is_migrated_on_open(tmp_path):
    import sqlite3

    path = tmp_path / "pool.sqlite"
    index, X, ids = _pool(path)
    index.forget(["x7"])
    digest = index.digest()
    index.close()
    secret = _downgrade_to_layout_2(path)
    migrated = ExampleIndex.open(path)
    assert migrated.digest() == digest and migrated.verify()
    assert migrated.forgotten(example_id="x7")  # old entries, hashed under the old secret
    assert keys_path(path).read_bytes()[96:128] == secret
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    assert con.execute("PRAGMA user_version").fetchone()[0] == 4
    assert con.execute("SELECT count(*) FROM meta WHERE key = 'audit_key'").fetchone()[0] == 0
    con.close()
    assert secret.hex().encode() not in _every_byte(tmp_path)  # nor in the WAL
    migrated.forget(["x8"])
    second = ExampleIndex.open(path)  # a second open finds layout 4
    assert "x8" not in second and second.forgotten(example_id="x8")
    second.close()
    migrated.close()


def test_an_interrupted_migration_is_done_again(tmp_path):
    path = tmp_path / "pool.sqlite"
    index, X, ids = _pool(path)
    digest = index.digest()
    index.close()
    secret = _downgrade_to_layout_2(path)
    raw = bytearray(keys_path(path).read_bytes())  # the key file step happened, the database step did not
    raw[96:128] = secret
    raw[8:12] = (2).to_bytes(4, "little")
    keys_path(path).write_bytes(bytes(raw))
    again = ExampleIndex.open(path)
    assert again.digest() == digest and again.verify()
    again.close()


def test_a_newer_layout_is_refused_with_its_version(tmp_path):
    import sqlite3

    path = tmp_path / "pool.sqlite"
    _pool(path)[0].close()
    con = sqlite3.connect(path)
    con.execute("PRAGMA user_version = 5")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="layout version 5; this code reads version 4"):
        ExampleIndex.open(path)


# ---------------------------------------------------------------------- item 6: read-only mounts and symlinks
def test_a_store_opened_through_a_symlink_uses_the_real_files(tmp_path):
    real_dir, link_dir = tmp_path / "real", tmp_path / "links"
    real_dir.mkdir()
    link_dir.mkdir()
    path = real_dir / "pool.sqlite"
    index, X, ids = _pool(path)
    link = link_dir / "link.sqlite"
    link.symlink_to(path)
    through = ExampleIndex.open(link)
    assert sorted(through.ids) == sorted(ids) and through.verify()
    victim_key = key_slots(path)[_slot_of(path, "x3", through)]
    through.forget(["x3"])
    assert "x3" not in index and victim_key not in keys_path(path).read_bytes()
    assert sorted(p.name for p in link_dir.iterdir()) == ["link.sqlite"]  # no link.sqlite.keys, WAL or image
    through.close()
    index.close()
    created = link_dir / "new.sqlite"  # create through a dangling link: the files go where it points
    created.symlink_to(real_dir / "target.sqlite")
    ExampleIndex(k=2, path=created).close()
    assert (real_dir / "target.sqlite.keys").exists()
    assert sorted(p.name for p in link_dir.iterdir()) == ["link.sqlite", "new.sqlite"]


@pytest.fixture
def read_only_mount(tmp_path):
    from mounts import tmpfs

    with tmpfs(tmp_path / "disk", "4m") as mount:
        yield mount


def test_a_store_on_a_read_only_mount_says_so(read_only_mount, capsys):
    import subprocess

    from erase_core.cli import main

    path = read_only_mount / "pool.sqlite"
    _pool(path)[0].close()
    done = subprocess.run(["mount", "-o", "remount,ro", str(read_only_mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot remount read-only here: {done.stderr.decode().strip()}")
    with pytest.raises(StoreError, match="read-only file system; an ERASE store needs write access even to be read"):
        ExampleIndex.open(path)
    assert main(["info", str(path)]) == 2
    err = capsys.readouterr().err
    assert "read-only file system" in err and "unable to open database file" not in err


# ---------------------------------------------------------------------- item 7: loose ends
def test_open_removes_image_temporaries_of_dead_processes(tmp_path):
    path = tmp_path / "pool.sqlite"
    _pool(path)[0].close()
    pid_max = int(open("/proc/sys/kernel/pid_max").read())
    dead = tmp_path / f"pool.sqlite.image.tmp-{pid_max + 1}-0badc0de"  # no process can have this pid
    alive = tmp_path / f"pool.sqlite.image.tmp-{os.getppid()}-0badc0de"
    mine = tmp_path / f"pool.sqlite.image.tmp-{os.getpid()}-0badc0de"
    other_store = tmp_path / f"other.sqlite.image.tmp-{pid_max + 1}-0badc0de"
    for p in (dead, alive, mine, other_store):
        p.write_bytes(b"half an image")
    ExampleIndex.open(path).close()
    assert not dead.exists() and alive.exists() and mine.exists() and other_store.exists()


def test_a_row_deleted_with_plain_sql_is_caught(tmp_path):
    import sqlite3

    from erase_core.storage import CorruptStoreError

    path = tmp_path / "pool.sqlite"
    index, X, ids = _pool(path)
    assert index.verify()
    con = sqlite3.connect(path)
    con.execute("DELETE FROM examples WHERE row = 4")
    con.commit()
    con.close()
    with pytest.raises(CorruptStoreError, match="row-set digest"):
        index.verify()  # a handle that was open
    with pytest.raises(CorruptStoreError, match="row-set digest"):
        ExampleIndex.open(path)
    index.close()


def test_the_row_set_record_cannot_be_adjusted_without_the_key(tmp_path):
    import sqlite3

    from erase_core.storage import CorruptStoreError

    path = tmp_path / "pool.sqlite"
    index, X, ids = _pool(path)
    index.forget(["x1", "x2"])
    index.upsert(X[:1] * -1, [{"new": 1}], ids=["x3"])
    assert index.verify()  # the record followed every write
    index.close()
    con = sqlite3.connect(path)
    record = con.execute("SELECT rows_digest FROM state").fetchone()[0]
    digest, count, mac = record.split(".")
    con.execute("DELETE FROM examples WHERE row = 5")
    con.execute("UPDATE state SET rows_digest = ?", (f"{digest}.{int(count) - 1}.{mac}",))  # the count, not the seal
    con.commit()
    con.close()
    with pytest.raises(CorruptStoreError, match="row-set digest"):
        ExampleIndex.open(path)
