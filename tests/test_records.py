"""Sealed records (erase_core.records, storage/records.py): kept in the store under their own
shredded keys, deleted in the transaction that deletes the rows they are bound to, by any
forget of any handle or process; nothing of a record in clear, and nothing left of a replaced
or deleted one."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from erase_core import ERASEError, ExampleIndex
from erase_core.records import ExampleRecords
from erase_core.storage import CorruptStoreError, StoreError, keys_path
from erase_core.storage.keyfile import KeyFile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from residue import all_file_bytes, surviving  # noqa: E402
from test_store import key_slots  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SECRET = "record-value-that-must-not-survive-0123456789"


def pool(path) -> ExampleIndex:
    rng = np.random.default_rng(4)
    index = ExampleIndex(k=2, path=path, seed=2)
    index.add(rng.normal(size=(6, 5)), [{"t": f"text {i}"} for i in range(6)], ids=[f"x{i}" for i in range(6)],
              subjects=["ann", "ann", "bob", "bob", None, None], metadata=[{"n": i} for i in range(6)])
    return index


def owned(path) -> set[int]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {s for (s,) in con.execute("SELECT key_slot FROM examples UNION ALL SELECT key_slot FROM records")}
    finally:
        con.close()


def test_every_forget_deletes_the_bound_records_and_only_those(tmp_path):
    path = tmp_path / "pool.sqlite"
    index = pool(path)
    records = ExampleRecords(index)
    records.put("a", [("x0", "by id", "x0"), ("doc-bob", "by subject", "bob"), ("x4", "upserted", "x4"),
                      ("x5", "by filter", "x5"), ("free", "unbound", None), ("ann", "not this namespace's row", "zed")])
    records.put("b", [("x0", "other namespace", "x0")])
    assert set(key_slots(path)) == owned(path)
    index.forget(["x0"])
    assert sorted(records.get("a")) == ["ann", "doc-bob", "free", "x4", "x5"] and records.get("b") == {}
    index.forget_subject("bob")
    assert "doc-bob" not in records.get("a")
    index.upsert(np.ones((1, 5)), [{"t": "new"}], ["x4"])  # a replaced row takes its records with it
    assert "x4" not in records.get("a")
    index.forget_where({"n": 5})
    assert sorted(records.get("a")) == ["ann", "free"]
    assert set(key_slots(path)) == owned(path)  # freed record slots are zero
    records.close()
    index.close()


def test_nothing_of_a_record_is_in_clear_and_nothing_survives_its_deletion(tmp_path):
    path = tmp_path / "pool.sqlite"
    index = pool(path)
    records = ExampleRecords(index)
    records.put("namespace-name-that-is-long-enough-to-scan", [("key-name-that-is-long-enough-to-scan", SECRET, "x1")])
    files = all_file_bytes(tmp_path)
    needles = [b"namespace-name-that-is-long-enough-to-scan", b"key-name-that-is-long-enough-to-scan", SECRET.encode()]
    assert surviving(files, needles) == []  # sealed while present
    slot = (owned(path) - {s for s in owned(path) if s < 6}).pop()
    key = key_slots(path)[slot]
    records.put("namespace-name-that-is-long-enough-to-scan", [("key-name-that-is-long-enough-to-scan", "v2", "x1")])
    assert slot not in key_slots(path)  # replaced: the old key is zeroed
    index.forget(["x1"])
    assert records.get("namespace-name-that-is-long-enough-to-scan") == {}
    assert surviving(all_file_bytes(tmp_path), [key]) == [] and set(key_slots(path)) == owned(path)
    records.close()
    index.close()


def test_a_failure_after_the_commit_is_finished_by_the_next_write(tmp_path, monkeypatch):
    path = tmp_path / "pool.sqlite"
    index = pool(path)
    records = ExampleRecords(index)
    records.put("ns", [("k", SECRET, None)])
    real = KeyFile.shred

    def failing(self, slots):
        raise OSError(5, "I/O error")

    monkeypatch.setattr(KeyFile, "shred", failing)
    with pytest.raises(StoreError, match="committed"):
        records.delete("ns", ["k"])
    monkeypatch.setattr(KeyFile, "shred", real)
    assert records.get("ns") == {}
    assert set(key_slots(path)) != owned(path)  # the key is still there ...
    index.add(np.ones((1, 5)), [{"t": "later"}], ids=["later"])  # ... until the next write finishes the erasure
    assert set(key_slots(path)) == owned(path)
    records.close()
    index.close()


@pytest.mark.processes
def test_a_forget_in_another_process_deletes_the_records(tmp_path):
    path = tmp_path / "pool.sqlite"
    index = pool(path)
    records = ExampleRecords(index)
    records.put("ns", [("x2", SECRET, "x2"), ("x3", "kept", "x3")])
    code = textwrap.dedent(f"""
        from erase_core import ExampleIndex
        index = ExampleIndex.open({str(path)!r})
        index.forget(["x2"])
        index.close()
    """)
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    assert records.get("ns") == {"x3": "kept"}
    assert surviving(all_file_bytes(tmp_path), [SECRET.encode()]) == []
    records.close()
    index.close()


def test_records_persist_and_a_moved_record_does_not_open(tmp_path):
    path = tmp_path / "pool.sqlite"
    index = pool(path)
    records = ExampleRecords(index)
    records.put("ns", [("a", "1", None), ("b", "2", None)])
    records.close()
    index.close()
    reopened = ExampleIndex.open(path)
    again = ExampleRecords(reopened)
    assert again.get("ns") == {"a": "1", "b": "2"} and again.get("ns", ["b", "zz"]) == {"b": "2"}
    again.close()
    reopened.close()
    con = sqlite3.connect(path)  # swap two records' blobs and key slots: their names no longer match
    (n1, s1, b1), (n2, s2, b2) = con.execute("SELECT name, key_slot, blob FROM records").fetchall()
    con.execute("UPDATE records SET key_slot = -1, blob = ? WHERE name = ?", (b2, n1))
    con.execute("UPDATE records SET key_slot = ?, blob = ? WHERE name = ?", (s1, b1, n2))
    con.execute("UPDATE records SET key_slot = ? WHERE name = ?", (s2, n1))
    con.commit()
    con.close()
    reopened = ExampleIndex.open(path)
    damaged = ExampleRecords(reopened)
    with pytest.raises(CorruptStoreError, match="record"):
        damaged.get("ns")
    damaged.close()
    reopened.close()
    assert keys_path(path).exists()


def test_in_memory_records_follow_the_index_s_forgets():
    index = pool(None)
    records = ExampleRecords(index)
    records.put("ns", [("x4", "v", "x4"), ("doc", "v", "ann"), ("other", "v", "bob"), ("free", "v", None)])
    index.forget(["x4"])
    assert sorted(records.get("ns")) == ["doc", "free", "other"]
    index.forget(["x0"])  # one of ann's examples: her subject's records go
    assert sorted(records.get("ns")) == ["free", "other"]
    records.put("ns", [("doc", "v", "ann")])  # put after that forget: kept until ann's next forget
    index.forget_subject("bob")
    assert sorted(records.get("ns")) == ["doc", "free"]
    index.forget(["x1"])
    assert sorted(records.get("ns")) == ["free"]
    records.put("ns", [("x5", "v", "x5")])
    records.close()
    index.forget(["x5"])  # no longer listening
    assert sorted(records.get("ns")) == ["free", "x5"]


def test_bad_input_changes_nothing(tmp_path):
    index = pool(tmp_path / "pool.sqlite")
    records = ExampleRecords(index)
    with pytest.raises(ERASEError, match="ExampleIndex"):
        ExampleRecords(object())  # type: ignore[arg-type]
    with pytest.raises(ERASEError, match="namespace"):
        records.get("")
    with pytest.raises(ERASEError, match="tuple"):
        records.put("ns", [("k", "v")])  # type: ignore[list-item]
    with pytest.raises(ERASEError, match="string"):
        records.put("ns", [("k", "v", None), ("k2", 3, None)])  # type: ignore[list-item]
    with pytest.raises(ERASEError, match="single string"):
        records.delete("ns", "k")
    assert records.get("ns") == {}
    records.close()
    index.close()


@pytest.mark.parametrize("on_disk", [True, False], ids=["store", "memory"])
def test_tags_read_one_group(tmp_path, on_disk):
    index = pool(tmp_path / "pool.sqlite" if on_disk else None)
    records = ExampleRecords(index)
    records.put("ns", [("a", "1", "x0", "g1"), ("b", "2", None, "g2"), ("c", "3", None, "g1"), ("d", "4", None)])
    records.put("other", [("e", "5", None, "g1")])
    assert records.get("ns", tags=["g1"]) == {"a": "1", "c": "3"}
    assert records.get("ns", tags=["g1", "g2", "nope"]) == {"a": "1", "b": "2", "c": "3"}
    assert records.get("ns", tags=[]) == {}
    records.put("ns", [("c", "3", None, "g2")])  # re-tagged
    index.forget(["x0"])
    assert records.get("ns", tags=["g1"]) == {} and records.get("ns", tags=["g2"]) == {"b": "2", "c": "3"}
    with pytest.raises(ERASEError, match="not both"):
        records.get("ns", ["a"], tags=["g1"])
    records.close()
    index.close()
