"""The storage layer on its own: ExampleStore (SQLite rows sealed under per-row keys + key file)."""

from __future__ import annotations

import errno
import os
import sqlite3
import struct
from pathlib import Path

import numpy as np
import pytest

from erase_core.hashing import id_hash
from erase_core.storage import CorruptStoreError, ExampleStore, NewRow, StoreError, keys_path
from erase_core.storage import example_store as example_store_module
from erase_core.storage import keyfile as keyfile_module
from erase_core.storage.keyfile import HEADER_SIZE, KEY_SIZE

CONFIG = {"format_version": 1, "k": 2, "strategy": "erase", "epsilon": 0.07, "n_iter": 10, "seed": 0,
          "projection_dim": None, "dim": None}


def new_rows(n: int, d: int = 8, prefix: str = "example", seed: int = 0) -> list[NewRow]:
    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((n, d)).astype("<f4")
    return [
        NewRow(f"{prefix}-{i:04d}", f'{{"text": "{prefix} payload {i}"}}', vecs[i].tobytes(), id_hash(f"{prefix}-{i:04d}"), i)
        for i in range(n)
    ]


def add(store: ExampleStore, rows: list[NewRow]) -> list[int]:
    with store.transaction() as txn:
        return txn.add(rows, len(rows[0].vector) // 4)


def delete(store: ExampleStore, numbers: list[int]) -> None:
    with store.transaction() as txn:
        txn.delete(numbers)


def by_id(store: ExampleStore) -> dict[str, tuple]:
    _, _, rows = store.load()
    return {r.id: (r.row, r.payload_json, r.vector, r.id_hash, r.example_hash) for r in rows}


def key_slots(path: Path) -> dict[int, bytes]:
    """Every non-zero key slot of the store's key file."""
    raw = keys_path(path).read_bytes()[HEADER_SIZE:]
    return {s: raw[s * KEY_SIZE : (s + 1) * KEY_SIZE] for s in range(len(raw) // KEY_SIZE)
            if raw[s * KEY_SIZE : (s + 1) * KEY_SIZE] != bytes(KEY_SIZE)}


def owned_slots(path: Path) -> dict[int, int]:
    """row -> key slot, read straight from the database."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return dict(con.execute("SELECT row, key_slot FROM examples"))
    finally:
        con.close()


def assert_keys_match_rows(path: Path) -> None:
    """Invariant after any completed transaction: exactly the slots that rows own hold keys."""
    assert set(key_slots(path)) == set(owned_slots(path).values())


@pytest.fixture
def path(tmp_path) -> Path:
    return tmp_path / "store.sqlite"


def test_round_trip_and_reopen(path):
    rows = new_rows(30)
    with ExampleStore.create(path, CONFIG) as store:
        numbers = add(store, rows)
        assert numbers == list(range(1, 31))
        delete(store, numbers[5:8])
        version = store.published_version()
        assert version == 33  # one log entry per row changed
    with ExampleStore.open(path) as store:
        assert store.config() == CONFIG
        got = by_id(store)
        want = {r.id: r for i, r in enumerate(rows) if i not in (5, 6, 7)}
        assert set(got) == set(want)
        for i, r in want.items():
            assert got[i][1:] == (r.payload_json, r.vector, r.id_hash, r.example_hash)
        assert store.load()[0] == version and len(store) == 27
    assert_keys_match_rows(path)


def test_row_numbers_and_key_slots_are_reused_safely(path):
    with ExampleStore.create(path, CONFIG) as store:
        first = add(store, new_rows(10))
        delete(store, first[2:6])
        second = add(store, new_rows(3, prefix="later"))
        assert second == [11, 12, 13]  # row numbers are never reused
        slots = owned_slots(path)
        assert sorted(slots[r] for r in second) == [2, 3, 4]  # freed key slots are
        assert keys_path(path).stat().st_size == HEADER_SIZE + 10 * KEY_SIZE
    assert_keys_match_rows(path)


def test_changes_since_tells_another_handle_what_changed(path):
    with ExampleStore.create(path, CONFIG) as a, ExampleStore.open(path) as b:
        numbers = add(a, new_rows(10))
        v1 = b.published_version()
        delete(a, numbers[:3])
        add(a, new_rows(2, prefix="new"))
        delete(a, [12])  # added and forgotten within the window: b never sees it
        assert b.published_version() == a.published_version() != v1
        changes = b.changes_since(v1)
        assert changes.since == v1 and changes.version == b.published_version()
        assert changes.removed == numbers[:3] + [12]
        assert [r.id for r in changes.added] == ["new-0000"]
        assert not b.changes_since(changes.version)


def test_a_handle_behind_the_pruned_log_is_told_to_reload(path, monkeypatch):
    monkeypatch.setattr(example_store_module, "LOG_RETAIN", 4)
    with ExampleStore.create(path, CONFIG) as store:
        numbers = add(store, new_rows(12))
        for n in numbers[:6]:
            delete(store, [n])
        assert store.changes_since(0) is None  # pruned: reload
        assert store.changes_since(store.published_version() - 2) is not None


def test_failed_transaction_changes_nothing_and_zeroes_its_keys(path):
    with ExampleStore.create(path, CONFIG) as store:
        add(store, new_rows(5))
        before = by_id(store), store.published_version(), keys_path(path).read_bytes()
        with pytest.raises(RuntimeError):
            with store.transaction() as txn:
                txn.add(new_rows(3, prefix="doomed"), 8)
                raise RuntimeError("caller failed")
        assert (by_id(store), store.published_version()) == before[:2]
        assert_keys_match_rows(path)
        with pytest.raises(StoreError, match="dimension"):
            with store.transaction() as txn:
                txn.add(new_rows(1, d=4, prefix="narrow"), 4)
        with pytest.raises(StoreError, match="not in"):
            delete(store, [1, 99])
        assert by_id(store) == before[0]


def test_injected_write_error_while_sealing_keys_rolls_back(path, monkeypatch):
    with ExampleStore.create(path, CONFIG) as store:
        add(store, new_rows(5))
        before = by_id(store)
        real = os.fsync

        def full(fd):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(keyfile_module.os, "fsync", full)
        with pytest.raises(StoreError, match=r"rolled back, nothing was changed: cannot write .*\.keys: No space left"):
            add(store, new_rows(2, prefix="more"))
        monkeypatch.setattr(keyfile_module.os, "fsync", real)
        assert by_id(store) == before
        add(store, new_rows(2, prefix="more"))  # retry works
        assert len(store) == 7
    with ExampleStore.open(path):
        assert_keys_match_rows(path)


def test_key_shredding_that_fails_after_the_commit_is_finished_later(path, monkeypatch):
    with ExampleStore.create(path, CONFIG) as store, ExampleStore.open(path) as other:
        numbers = add(store, new_rows(6))
        victim_slot = owned_slots(path)[numbers[2]]
        victim_key = key_slots(path)[victim_slot]
        real = keyfile_module.KeyFile.shred

        def broken(self, slots):
            raise OSError(errno.EIO, "Input/output error")

        monkeypatch.setattr(keyfile_module.KeyFile, "shred", broken)
        with pytest.raises(StoreError, match="committed"):
            delete(store, [numbers[2]])
        monkeypatch.setattr(keyfile_module.KeyFile, "shred", real)
        assert victim_slot in key_slots(path)  # not yet shredded ...
        assert numbers[2] not in {r.row for r in other.load()[2]}  # ... but gone for every handle
        add(other, new_rows(1, prefix="next"))  # the next write finishes the erasure
        assert victim_key not in keys_path(path).read_bytes()
        assert_keys_match_rows(path)


def test_open_finishes_an_erasure_a_crashed_writer_left(path, monkeypatch):
    with ExampleStore.create(path, CONFIG) as store:
        numbers = add(store, new_rows(4))
        slot = owned_slots(path)[numbers[1]]
        monkeypatch.setattr(keyfile_module.KeyFile, "shred", lambda self, slots: None)  # "crash" before the shred
        monkeypatch.setattr(keyfile_module.KeyFile, "set_shred_pending", lambda self, v: os.pwrite(self._fd, struct.pack("<Q", 1), 40))
        delete(store, [numbers[1]])
        monkeypatch.undo()
        assert slot in key_slots(path)
    with ExampleStore.open(path) as store:
        assert slot not in key_slots(path)
        assert_keys_match_rows(path)
        assert len(store) == 3


# ---------------------------------------------------------------------- damage and foreign files
def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def _assert_rejected_untouched(path: Path, match: str) -> None:
    before = _files(path.parent)
    with pytest.raises(StoreError, match=match):
        ExampleStore.open(path)
    assert _files(path.parent) == before


def test_foreign_files_are_rejected_untouched(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("just some text, not a database\n" * 10)
    _assert_rejected_untouched(text, "not an ERASE example store")
    noise = tmp_path / "noise.bin"
    noise.write_bytes(np.random.default_rng(0).bytes(8192))
    _assert_rejected_untouched(noise, "not an ERASE example store")
    empty = tmp_path / "empty.sqlite"
    empty.write_bytes(b"")
    _assert_rejected_untouched(empty, "not an ERASE example store")
    other = tmp_path / "other.sqlite"
    con = sqlite3.connect(other)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE t (x)")
    con.execute("INSERT INTO t VALUES (1)")
    con.commit()
    con.close()
    _assert_rejected_untouched(other, "not an ERASE example store")
    with pytest.raises(StoreError, match="no example store"):
        ExampleStore.open(tmp_path / "missing.sqlite")
    with pytest.raises(StoreError, match="not a regular file"):
        ExampleStore.open(tmp_path)


def test_old_plaintext_layout_is_rejected_with_its_version(tmp_path):
    old = tmp_path / "v1.sqlite"
    con = sqlite3.connect(old)
    con.execute(f"PRAGMA application_id = {example_store_module.APPLICATION_ID}")
    con.execute("PRAGMA user_version = 1")
    con.execute("CREATE TABLE examples (seq INTEGER PRIMARY KEY)")
    con.commit()
    con.close()
    _assert_rejected_untouched(old, "layout version 1")


def test_create_refuses_existing_content(path):
    path.write_text("keep me")
    with pytest.raises(StoreError, match="not empty"):
        ExampleStore.create(path, CONFIG)
    assert path.read_text() == "keep me" and not keys_path(path).exists()
    path.unlink()
    ExampleStore.create(path, CONFIG).close()
    with pytest.raises(StoreError):
        ExampleStore.create(path, CONFIG)


def test_missing_or_foreign_key_file_is_an_error(tmp_path):
    a, b = tmp_path / "a.sqlite", tmp_path / "b.sqlite"
    ExampleStore.create(a, CONFIG).close()
    ExampleStore.create(b, CONFIG).close()
    keys_path(a).rename(tmp_path / "saved.keys")
    with pytest.raises(StoreError, match="key file .* is missing"):
        ExampleStore.open(a)
    os.replace(keys_path(b), keys_path(a))
    with pytest.raises(StoreError, match="another store"):
        ExampleStore.open(a)


def test_a_damaged_row_is_an_error_not_a_silent_change(path):
    with ExampleStore.create(path, CONFIG) as store:
        add(store, new_rows(5))
    con = sqlite3.connect(path)
    blob = bytearray(con.execute("SELECT blob FROM examples WHERE row = 3").fetchone()[0])
    blob[30] ^= 0x01  # one bit of the sealed vector
    con.execute("UPDATE examples SET blob = ? WHERE row = 3", (bytes(blob),))
    con.commit()
    con.close()
    with ExampleStore.open(path) as store:
        with pytest.raises(CorruptStoreError, match="row 3"):
            store.load()


def test_rows_cannot_be_swapped_between_positions(path):
    with ExampleStore.create(path, CONFIG) as store:
        add(store, new_rows(3))
    con = sqlite3.connect(path)
    (s1, b1), (s2, b2) = con.execute("SELECT key_slot, blob FROM examples WHERE row IN (1, 2) ORDER BY row").fetchall()
    con.execute("UPDATE examples SET key_slot = -1, blob = ? WHERE row = 1", (b2,))
    con.execute("UPDATE examples SET key_slot = ?, blob = ? WHERE row = 2", (s1, b1))
    con.execute("UPDATE examples SET key_slot = ? WHERE row = 1", (s2,))
    con.commit()
    con.close()
    with ExampleStore.open(path) as store, pytest.raises(CorruptStoreError):
        store.load()


def test_delete_then_add_in_one_transaction_keeps_the_new_rows_keys(path):
    """A replace (upsert) deletes and adds in one transaction: the added rows must not take the
    key slots that are zeroed after the commit."""
    with ExampleStore.create(path, CONFIG) as store:
        numbers = add(store, new_rows(4))
        with store.transaction() as txn:
            txn.delete(numbers[:2])
            txn.add(new_rows(2, prefix="replacement"), 8)
        assert_keys_match_rows(path)
        assert sorted(by_id(store)) == ["example-0002", "example-0003", "replacement-0000", "replacement-0001"]
        add(store, new_rows(2, prefix="later"))  # the freed slots are reused by the next transaction
        assert_keys_match_rows(path)
        assert max(owned_slots(path).values()) == 5
