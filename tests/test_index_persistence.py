"""ExampleIndex on disk: reopen to the same digest, forget erases from every file, crash safety."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from erase_core import ERASEError, ExampleIndex
from conftest import REPO_ROOT, clustered


def make_index(path, n=120, k=4, strategy="erase"):
    X = clustered(n, d=10, blobs=4, seed=8)
    ids = [f"person-{i:04d}@example.org" for i in range(n)]
    payloads = [{"input": f"secret question {i} MARKER{i:04d}X", "output": f"answer {i}"} for i in range(n)]
    index = ExampleIndex(k=k, strategy=strategy, seed=5, path=path)
    index.add(X, payloads, ids=ids)
    return index, X, ids


def all_bytes(directory) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file())


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


def test_forget_leaves_no_residue_in_any_file(tmp_path):
    path = tmp_path / "pool.sqlite"
    index, X, ids = make_index(path)
    victims = [3, 17, 64, 119]
    index.forget([ids[i] for i in victims])
    for when in ("open", "closed"):
        blob = all_bytes(tmp_path)
        for i in victims:
            assert f"MARKER{i:04d}X".encode() not in blob, (when, i)
            assert ids[i].encode() not in blob, (when, i)
            unit = (X[i] / np.linalg.norm(X[i])).astype("<f4").tobytes()
            assert unit not in blob, (when, i)
        for i in (0, 5, 118):  # kept examples are still there, so the scan can fail
            assert f"MARKER{i:04d}X".encode() in blob and ids[i].encode() in blob
        index.close()


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
    from erase_core import ExampleIndex
    index = ExampleIndex.open({path!r})
    print("ready", flush=True)
    index.forget({victims!r})
    print("done", flush=True)
    """
)


def test_kill_during_forget_leaves_before_or_after_state(tmp_path):
    n = 3000
    X = clustered(n, d=16, blobs=6, seed=2)
    ids = [f"k{i:05d}" for i in range(n)]
    payloads = [{"input": "x" * 400 + str(i)} for i in range(n)]
    victims = ids[::2]
    master = tmp_path / "master.sqlite"
    index = ExampleIndex(k=4, seed=1, path=master)
    index.add(X, payloads, ids=ids)
    before = index.digest()
    index.forget(victims)
    after = index.digest()
    index.close()
    # Rebuild the pre-forget store once and copy it for each trial.
    template = tmp_path / "template.sqlite"
    index = ExampleIndex(k=4, seed=1, path=template)
    index.add(X, payloads, ids=ids)
    index.close()
    outcomes = set()
    for trial, delay in enumerate([0.0, 0.01, 0.03, 0.06, 0.1, 0.2, 0.4]):
        work = tmp_path / f"trial{trial}"
        work.mkdir()
        path = work / "pool.sqlite"
        path.write_bytes(template.read_bytes())
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD.format(repo=str(REPO_ROOT), path=str(path), victims=victims)],
            stdout=subprocess.PIPE, text=True,
        )
        assert child.stdout.readline().strip() == "ready"
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait()
        reopened = ExampleIndex.open(path)
        digest = reopened.digest()
        assert digest in (before, after), f"trial {trial}: torn state"
        assert reopened.verify()
        outcomes.add("before" if digest == before else "after")
        reopened.close()
    print("kill outcomes:", sorted(outcomes))
