"""ExampleIndex on disk: reopen to the same digest, forget erases from every file, crash safety."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from erase_core import ERASEError, ExampleIndex
from erase_core.storage import CorruptStoreError, keys_path
from conftest import REPO_ROOT, clustered
from residue import all_file_bytes, decryptable_ids, sealed_rows, surviving
from killing import kill_after, kill_moments
from test_store import assert_keys_match_rows, key_slots, owned_slots


def make_index(path, n=120, k=4, strategy="erase"):
    X = clustered(n, d=10, blobs=4, seed=8)
    ids = [f"person-{i:04d}@example.org" for i in range(n)]
    payloads = [{"input": f"secret question {i} MARKER{i:04d}X", "output": f"answer {i}"} for i in range(n)]
    index = ExampleIndex(k=k, strategy=strategy, seed=5, path=path)
    index.add(X, payloads, ids=ids)
    return index, X, ids


def test_reopen_gives_identical_index(tmp_path):
    path = tmp_path / "pool.sqlite"
    index, X, ids = make_index(path)
    index.forget(ids[:7])
    digest, selected = index.digest(), [s.id for s in index.select()]
    index.close()
    reopened = ExampleIndex.open(path)
    assert reopened.digest() == digest
    assert [s.id for s in reopened.select()] == selected
    assert reopened.get(ids[50])["output"] == "answer 50"
    assert np.array_equal(reopened.vector(ids[50]), (X[50] / np.linalg.norm(X[50])).astype(np.float32))
    assert reopened.verify()
    reopened.forget([ids[8]])
    digest = reopened.digest()
    reopened.close()
    again = ExampleIndex.open(path)
    assert again.digest() == digest and ids[8] not in again and again.verify()


def test_reopened_index_keeps_accepting_mutations(tmp_path):
    path = tmp_path / "pool.sqlite"
    index, X, ids = make_index(path)
    index.close()
    reopened = ExampleIndex.open(path)
    reopened.forget(ids[:3])
    reopened.add(X[:2] * 2, [{"input": "new"}] * 2, ids=["n1", "n2"])
    digest = reopened.digest()
    reopened.close()
    assert ExampleIndex.open(path).digest() == digest
    fresh = ExampleIndex(k=4, seed=5)
    keep = list(range(3, 120))
    fresh.add(X[keep], [{"input": f"secret question {i} MARKER{i:04d}X", "output": f"answer {i}"} for i in keep], ids=[ids[i] for i in keep])
    fresh.add(X[:2] * 2, [{"input": "new"}] * 2, ids=["n1", "n2"])
    assert fresh.digest() == digest


def _plaintexts(index_or_payloads, ids, X):
    """Everything an example contains, as it would be written: id, payload JSON, vector bytes."""
    out = []
    for i, ident in enumerate(ids):
        unit = (X[i] / np.linalg.norm(X[i])).astype("<f4").tobytes()
        payload = json.dumps(index_or_payloads[i], sort_keys=True, ensure_ascii=False).encode()
        out.append([ident.encode(), payload, unit])
    return out


def test_no_plaintext_ever_reaches_disk_and_forgotten_keys_are_gone(tmp_path):
    store_dir, backup = tmp_path / "store", tmp_path / "backup"
    store_dir.mkdir()
    backup.mkdir()
    path = store_dir / "pool.sqlite"
    n = 60
    X = clustered(n, d=384, blobs=4, seed=8)
    ids = [f"person-{i:04d}@example.org/customer-record" for i in range(n)]
    # some payloads over 4 KB, so SQLite spreads rows over overflow pages
    payloads = [{"input": f"secret question {i} " + ("MARKER%04dX " % i) * (400 if i % 3 == 0 else 5),
                 "output": f"answer {i}"} for i in range(n)]
    index = ExampleIndex(k=4, seed=5, path=path)
    index.add(X, payloads, ids=ids)
    secrets = _plaintexts(payloads, ids, X)
    for f in store_dir.iterdir():
        if not f.name.endswith(".keys"):
            shutil.copy(f, backup / f.name)  # a backup of the database taken before the forget
    slots = owned_slots(path)
    keys_before = key_slots(path)
    row_of = {r.id: r.row for r in index._replica.store.load()[2]}
    victims = [0, 3, 17, 31, 59]
    victim_keys = [keys_before[slots[row_of[ids[i]]]] for i in victims]
    kept_keys = [keys_before[slots[row_of[ids[i]]]] for i in (1, 2, 40)]
    index.forget([ids[i] for i in victims])
    other = ExampleIndex.open(path)  # a second handle, so the WAL and shared memory exist
    assert ids[0] not in other
    for when in ("open", "closed"):
        files = all_file_bytes(store_dir)
        assert any(name.endswith("-wal") for name in files) or when == "closed"
        leaks = surviving(files, [piece for parts in secrets for piece in parts])
        assert not leaks, (when, leaks[:5])
        assert not surviving(files, victim_keys), when
        # the scan can fail: the keys of kept examples are there
        assert all(surviving(files, [key]) for key in kept_keys), when
        other.close()
        index.close()
    # The old copy of the database still holds the forgotten rows' ciphertext, but with the
    # current key file it opens only the kept ones.
    shutil.copy(backup / "pool.sqlite", path)
    for side in ("pool.sqlite-wal", "pool.sqlite-shm"):
        (store_dir / side).unlink(missing_ok=True)
        if (backup / side).exists():
            shutil.copy(backup / side, store_dir / side)
    with pytest.raises(CorruptStoreError):
        ExampleIndex.open(path)
    opened = decryptable_ids(path)
    assert opened == {ids[i] for i in range(n) if i not in victims}


def test_open_rejects_what_is_not_an_index(tmp_path):
    with pytest.raises(ERASEError, match="no example store"):
        ExampleIndex.open(tmp_path / "absent.sqlite")
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"definitely not sqlite" * 100)
    with pytest.raises(ERASEError):
        ExampleIndex.open(junk)
    assert junk.read_bytes() == b"definitely not sqlite" * 100
    path = tmp_path / "pool.sqlite"
    make_index(path, n=10)[0].close()
    with pytest.raises(ERASEError, match="ExampleIndex.open"):
        ExampleIndex(k=4, path=path)


def test_failed_add_writes_nothing(tmp_path):
    path = tmp_path / "pool.sqlite"
    index, X, ids = make_index(path, n=20)
    digest = index.digest()
    with pytest.raises(ERASEError):
        index.add(X[:2], ["a", "b"], ids=["fresh", ids[0]])
    index.close()
    reopened = ExampleIndex.open(path)
    assert reopened.digest() == digest and "fresh" not in reopened


_CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {repo!r})
    import numpy as np
    from erase_core import ExampleIndex
    index = ExampleIndex.open({path!r})
    print("ready", flush=True)
    if {op!r} == "forget":
        index.forget({victims!r})
    else:
        rng = np.random.default_rng(7)
        index.add(rng.standard_normal((len({victims!r}), 16)), [{{"input": "y" * 400}}] * len({victims!r}),
                  ids=["new-" + v for v in {victims!r}])
    print("done", flush=True)
    """
)


_READER = textwrap.dedent(
    """
    import json, pathlib, sys
    sys.path.insert(0, {repo!r})
    from erase_core import ExampleIndex
    index = ExampleIndex.open({path!r})
    print("ready", flush=True)
    stop = pathlib.Path({stop!r})
    reads = 0
    while not stop.exists():
        len(index)
        index.select()
        reads += 1
    print(json.dumps({{"digest": index.digest(), "verify": index.verify(), "reads": reads}}), flush=True)
    index.close()
    """
)


def board_rows(path) -> list[int]:
    """The row numbers on the key file's posted-selection board, whatever version it is for."""
    from erase_core.storage.keyfile import _BOARD_AT, _BOARD_ENTRY, _BOARD_HEAD

    header = keys_path(path).read_bytes()[:4096]
    _, count, _, _ = _BOARD_HEAD.unpack_from(header, _BOARD_AT)
    start = _BOARD_AT + _BOARD_HEAD.size
    return [row for row, _ in _BOARD_ENTRY.iter_unpack(header[start : start + count * _BOARD_ENTRY.size])]


@contextlib.contextmanager
def _reader_process(path, stop):
    """A process holding the store at ``path`` open and selecting until ``stop`` exists; it is
    stopped (killed if need be) however the block ends, so a failing test leaves none running."""
    reader = subprocess.Popen(
        [sys.executable, "-c", _READER.format(repo=str(REPO_ROOT), path=str(path), stop=str(stop))],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert reader.stdout.readline().strip() == "ready"
        yield reader
    finally:
        if reader.poll() is None:
            Path(stop).write_text("stop")
            try:
                reader.wait(timeout=30)
            except subprocess.TimeoutExpired:
                reader.kill()
                reader.wait()


def _copy_store(src, dst) -> None:
    shutil.copy(src, dst)
    shutil.copy(keys_path(src), keys_path(dst))


@pytest.mark.parametrize("op", ["forget", "add"])
@pytest.mark.processes
def test_kill_during_a_write_leaves_before_or_after_state(tmp_path, op):
    n = 2000
    X = clustered(n, d=16, blobs=6, seed=2)
    ids = [f"k{i:05d}" for i in range(n)]
    payloads = [{"input": "x" * 400 + str(i)} for i in range(n)]
    victims = ids[::2]
    template = tmp_path / "template.sqlite"
    index = ExampleIndex(k=4, seed=1, path=template)
    index.add(X, payloads, ids=ids)
    before = index.digest()
    index.close()
    scratch = tmp_path / "after.sqlite"
    _copy_store(template, scratch)
    subprocess.run(
        [sys.executable, "-c", _CHILD.format(repo=str(REPO_ROOT), path=str(scratch), victims=victims, op=op)],
        capture_output=True, text=True, check=True,
    )
    with ExampleIndex.open(scratch) as done:
        after = done.digest()
    assert after != before
    # what must never be on disk in clear, and the keys a finished forget must have shredded
    sealed = sealed_rows(template)
    plaintext = [piece for key, row in sealed.values() for piece in (row.payload_json.encode(), row.vector)]
    plaintext += [b'{"input": "' + b"y" * 400]  # the added rows' payload
    victim_keys = [sealed[v][0] for v in victims[:200]]
    kept_keys = [sealed[i][0] for i in ids[1:40:2]]
    outcomes = set()
    for trial, delay in enumerate(kill_moments([0.0, 0.05, 0.2], long=[0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5])):
        work = tmp_path / f"trial{trial}"
        work.mkdir()
        path = work / "pool.sqlite"
        _copy_store(template, path)
        stop = work / "stop"
        with _reader_process(path, stop) as reader:  # another process holds the store open through the kill
            # the reader's open went the long way and wrote the open image (tests lower its threshold),
            # so the child opens from it and the kill lands on a store that has one
            image_key = keys_path(path).read_bytes()[64:96]
            assert any(image_key) and (work / "pool.sqlite.image").is_file()
            kill_after(_CHILD.format(repo=str(REPO_ROOT), path=str(path), victims=victims, op=op), delay)
            reopened = ExampleIndex.open(path)
            digest = reopened.digest()
            assert digest in (before, after), f"trial {trial}: torn state"
            assert reopened.verify()
            assert_keys_match_rows(path)  # an interrupted erasure was finished on open
            # the posted selection in the key file's header names only rows that are still there
            assert set(board_rows(path)) <= set(reopened._memory.pool.row_of.values()), f"trial {trial}: a deleted row on the board"
            outcomes.add("before" if digest == before else "after")
            reopened.close()
            # every file (database, WAL and shared memory of the live reader, key file), in
            # 32-byte windows: no plaintext ever; after a finished forget, no victim's key
            files = all_file_bytes(work)
            assert any(name.endswith("-wal") for name in files)
            assert not surviving(files, plaintext), f"trial {trial}: plaintext on disk"
            assert all(surviving(files, [key]) for key in kept_keys)  # the scan can fail
            if op == "forget" and digest == after:
                assert not surviving(files, victim_keys), f"trial {trial}: a forgotten key survived"
                # the image held the victims too: its key went with theirs
                assert not surviving(files, [image_key]), f"trial {trial}: the open image's key survived"
            stop.write_text("stop")
            report = json.loads(reader.communicate(timeout=60)[0].strip().splitlines()[-1])
            assert reader.returncode == 0 and report["reads"] > 0
            assert report["digest"] == digest and report["verify"]
    print(f"kill during {op}: outcomes", sorted(outcomes))


_ONE_BY_ONE = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {repo!r})
    from erase_core import ExampleIndex, QuantizedKMeans
    finish, rejoins = QuantizedKMeans._finish, []
    def spy(self, *args, rejoined=False, **kwargs):  # which recomputes stopped where they rejoined the last run
        rejoins.append(rejoined)
        return finish(self, *args, rejoined=rejoined, **kwargs)
    QuantizedKMeans._finish = spy
    index = ExampleIndex.open({path!r})
    print("ready", flush=True)
    for victim in {victims!r}:
        rejoins.clear()
        if index.forget([victim]).recomputed:  # one id per transaction: mostly the one-point fast path
            kind = "table" if index.model._table is not None else "full"
            print(kind + (" rejoined" if any(rejoins) else ""), flush=True)
    print("done", flush=True)
    """
)


@pytest.mark.processes
def test_kill_during_single_forgets_leaves_a_fresh_build(tmp_path):
    """A writer process forgets one id per transaction (the removal fast path) while a reader
    process selects; SIGKILL lands somewhere in that sequence. On reopen the store equals a
    fresh build on whatever remains (so does the digest the last committed forget logged),
    every forgotten example's key is gone and no forgotten payload or vector is in any file.
    The writer reports its recomputes: kills must land after recomputes through its score table,
    some of which stopped where they rejoined the previous run."""
    n = 1500
    X = clustered(n, d=16, blobs=6, seed=5)
    ids = [f"s{i:05d}" for i in range(n)]
    payloads = [{"input": "z" * 300 + str(i)} for i in range(n)]
    victims = ids[1::3][:300]
    template = tmp_path / "template.sqlite"
    index = ExampleIndex(k=4, seed=1, path=template)
    index.add(X, payloads, ids=ids)
    before = index.digest()
    index.close()
    sealed = sealed_rows(template)
    forgotten_counts, recomputes, rejoined = set(), [], []
    for trial, delay in enumerate(kill_moments([0.1, 0.7, 2.0], long=[0.1, 0.4, 0.7, 1.0, 1.5, 2.0, 3.0])):
        work = tmp_path / f"trial{trial}"
        work.mkdir()
        path = work / "pool.sqlite"
        _copy_store(template, path)
        stop = work / "stop"
        with _reader_process(path, stop) as reader:
            child = kill_after(_ONE_BY_ONE.format(repo=str(REPO_ROOT), path=str(path), victims=victims), delay)
            printed = child.stdout.read().split()
            recomputes.append(printed.count("table"))
            rejoined.append(printed.count("rejoined"))
            with ExampleIndex.open(path) as reopened:
                digest = reopened.digest()
                assert reopened.verify()
                remaining = set(reopened._memory.pool.slot_of)
                rows = set(reopened._memory.pool.row_of.values())
                log = reopened.audit()
            gone = [i for i in ids if i not in remaining]
            assert set(gone) <= set(victims) and gone == [v for v in victims[: len(gone)]]  # a prefix, in order
            forgotten_counts.add(len(gone))
            keep = [r for r, i in enumerate(ids) if i in remaining]
            fresh = ExampleIndex(k=4, seed=1)
            fresh.add(X[keep], [payloads[r] for r in keep], ids=[ids[r] for r in keep])
            assert digest == fresh.digest(), f"trial {trial}: not a fresh build after {len(gone)} forgets"
            assert len(log) == len(gone) and (not log or log[-1]["digest_after"] == digest)
            assert log[0]["digest_before"] == before if log else digest == before
            assert_keys_match_rows(path)
            assert set(board_rows(path)) <= rows, f"trial {trial}: a deleted row on the board"
            files = all_file_bytes(work)
            plaintext = [piece for i in ids for piece in (sealed[i][1].payload_json.encode(), sealed[i][1].vector)]
            assert not surviving(files, plaintext), f"trial {trial}: plaintext on disk"
            assert not surviving(files, [sealed[i][0] for i in gone]), f"trial {trial}: a forgotten key survived"
            assert all(surviving(files, [sealed[i][0]]) for i in ids[0:30:3])  # kept keys: the scan can fail
            stop.write_text("stop")
            report = json.loads(reader.communicate(timeout=60)[0].strip().splitlines()[-1])
            assert reader.returncode == 0 and report["reads"] > 0
            assert report["digest"] == digest and report["verify"]
    print("single forgets before the kill:", sorted(forgotten_counts), "recomputes through the score table:", recomputes,
          "of which rejoined the previous run:", rejoined)
    assert len(forgotten_counts) > 1, forgotten_counts  # the kills landed at different points
    assert max(recomputes) >= 2, recomputes  # and after recomputes through the writer's score table
    assert max(rejoined) >= 1, rejoined  # some of which stopped where they rejoined the previous run
