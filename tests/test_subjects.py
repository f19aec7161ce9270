"""Forget a person: subjects, metadata filters and the deletion audit log."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from erase_core import ERASEError, ExampleIndex
from conftest import REPO_ROOT, clustered
from killing import kill_after, kill_moments
from residue import all_file_bytes, surviving

N = 60


def pool(seed: int = 0):
    X = clustered(N, d=12, blobs=4, seed=seed)
    ids = [f"record-{i:03d}/customer-data@example.org" for i in range(N)]
    subjects = [f"customer-{i % 7:04d}-with-a-long-name@example.org" if i % 11 else None for i in range(N)]
    metadata = [{"lang": ["en", "de", "fr"][i % 3], "tier": i % 4} if i % 5 else None for i in range(N)]
    payloads = [{"input": f"question {i}", "output": f"answer {i}"} for i in range(N)]
    return X, ids, subjects, metadata, payloads


def fresh(X, ids, subjects, metadata, payloads, keep, **params) -> ExampleIndex:
    index = ExampleIndex(**params)
    keep = sorted(keep)
    index.add(X[keep], [payloads[i] for i in keep], ids=[ids[i] for i in keep],
              subjects=[subjects[i] for i in keep], metadata=[metadata[i] for i in keep])
    return index


def matches(meta, where) -> bool:
    if meta is None:
        return False
    for field, cond in where.items():
        if isinstance(cond, dict) and "$in" in cond:
            if field not in meta or meta[field] not in cond["$in"]:
                return False
        else:
            want = cond["$eq"] if isinstance(cond, dict) else cond
            if field not in meta or meta[field] != want:
                return False
    return True


@pytest.mark.parametrize("persisted", [False, True])
def test_forget_subject_and_where_equal_a_fresh_build(tmp_path, persisted):
    X, ids, subjects, metadata, payloads = pool()
    params = dict(k=4, seed=3, strategy="erase")
    index = ExampleIndex(path=tmp_path / "p.sqlite" if persisted else None, **params)
    index.add(X, payloads, ids=ids, subjects=subjects, metadata=metadata)
    keep = set(range(N))
    victim = subjects[1]
    assert index.ids_of_subject(victim) == sorted(ids[i] for i in keep if subjects[i] == victim)
    receipt = index.forget_subject(victim)
    gone = {i for i in keep if subjects[i] == victim}
    assert sorted(receipt.ids) == sorted(ids[i] for i in gone) and receipt.n_remaining == N - len(gone)
    keep -= gone
    assert index.digest() == fresh(X, ids, subjects, metadata, payloads, keep, **params).digest()
    where = {"lang": "de", "tier": {"$in": [1, 2]}}
    receipt = index.forget_where(where)
    gone = {i for i in keep if matches(metadata[i], where)}
    assert len(receipt.ids) == len(gone) > 0
    keep -= gone
    assert index.digest() == fresh(X, ids, subjects, metadata, payloads, keep, **params).digest()
    assert index.forget_subject("nobody-at-all").ids == ()
    assert index.verify()
    assert index.attributes(ids[2]) == {"subject": subjects[2], "metadata": metadata[2]}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), seed=st.integers(0, 3))
def test_interleaved_subject_filter_and_id_forgets_equal_a_fresh_build(data, seed):
    X, ids, subjects, metadata, payloads = pool(seed)
    params = dict(k=3, seed=seed, strategy="erase", epsilon=0.03)
    index = fresh(X, ids, subjects, metadata, payloads, range(N), **params)
    keep = set(range(N))
    for _ in range(data.draw(st.integers(1, 5))):
        kind = data.draw(st.sampled_from(["subject", "where", "ids"]))
        if kind == "subject":
            s = data.draw(st.sampled_from(sorted({x for x in subjects if x})))
            gone = {i for i in keep if subjects[i] == s}
            if len(keep - gone) < 3:
                continue
            index.forget_subject(s)
        elif kind == "where":
            where = {"lang": data.draw(st.sampled_from(["en", "de", "fr"]))}
            if data.draw(st.booleans()):
                where["tier"] = {"$in": data.draw(st.lists(st.integers(0, 3), min_size=1, max_size=3))}
            gone = {i for i in keep if matches(metadata[i], where)}
            if len(keep - gone) < 3:
                continue
            index.forget_where(where)
        else:
            gone = set(data.draw(st.lists(st.sampled_from(sorted(keep)), min_size=1, max_size=3, unique=True)))
            if len(keep - gone) < 3:
                continue
            index.forget([ids[i] for i in gone])
        keep -= gone
        assert index.digest() == fresh(X, ids, subjects, metadata, payloads, keep, **params).digest()


def test_filtered_similarity_is_exact_top_k_over_the_filtered_pool(tmp_path):
    X, ids, subjects, metadata, payloads = pool(1)
    index = ExampleIndex(k=5, strategy="similarity", path=tmp_path / "p.sqlite")
    index.add(X, payloads, ids=ids, subjects=subjects, metadata=metadata)
    for where in ({"lang": "en"}, {"lang": {"$eq": "fr"}, "tier": {"$in": [0, 3]}}, {"tier": 2}, {"lang": "xx"}):
        allowed = [i for i in range(N) if matches(metadata[i], where)]
        for q in X[:6]:
            got = index.select(q, filter=where)
            ref = ExampleIndex(k=5, strategy="similarity")
            if allowed:
                ref.add(X[allowed], [payloads[i] for i in allowed], ids=[ids[i] for i in allowed])
                want = ref.select(q, k=min(5, len(allowed)))
                assert [(s.id, s.score) for s in got] == [(s.id, s.score) for s in want]
            else:
                assert got == []
    with pytest.raises(ERASEError, match="unsupported"):
        index.select(X[0], filter={"lang": {"$regex": "e.*"}})
    with pytest.raises(ERASEError, match="unsupported"):
        index.select(X[0], filter={"$nor": [{"lang": "en"}]})
    erase = ExampleIndex(k=2, strategy="erase")
    erase.add(X[:5], payloads[:5])
    with pytest.raises(ERASEError, match="similarity"):
        erase.select(X[0], filter={"lang": "en"})


def test_bad_subjects_and_metadata_are_rejected_and_change_nothing():
    index = ExampleIndex(k=2)
    index.add(np.eye(3), [1, 2, 3], ids=["a", "b", "c"])
    digest = index.digest()
    for kwargs in ({"subjects": [""]}, {"subjects": [5]}, {"metadata": ["x"]}, {"metadata": [{1: "x"}]},
                   {"metadata": [{"x": float("nan")}]}, {"subjects": ["a", "b"]}):
        with pytest.raises(ERASEError):
            index.add(np.ones((1, 3)), [0], ids=["d"], **kwargs)
    assert index.digest() == digest and "d" not in index
    with pytest.raises(ERASEError):
        index.forget_where({})
    with pytest.raises(ERASEError):
        index.forget_subject("")


@pytest.mark.processes
def test_audit_log_answers_was_it_forgotten_without_holding_what_was(tmp_path):
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    path = store_dir / "p.sqlite"
    X, ids, subjects, metadata, payloads = pool(2)
    index = ExampleIndex(k=4, seed=1, path=path)
    index.add(X, payloads, ids=ids, subjects=subjects, metadata=metadata)
    victim = subjects[3]
    victim_ids = index.ids_of_subject(victim)
    index.forget_subject(victim)
    index.forget([ids[12]])
    index.forget_where({"lang": "fr", "tier": 1})
    log = index.audit()
    assert [e["request"] for e in log] == ["subject", "ids", "where"]
    assert log[0]["count"] == len(victim_ids) and log[1]["count"] == 1
    assert all(e["digest_before"] != e["digest_after"] for e in log)
    assert log[0]["digest_after"] == log[1]["digest_before"]
    assert len(index.forgotten(subject=victim)) == 1 and index.forgotten(example_id=victim_ids[0])
    assert index.forgotten(example_id=ids[12])[0]["request"] == "ids"
    # an entry names every subject whose examples it removed (here: the filter took some of theirs)
    assert {e["request"] for e in index.forgotten(subject=subjects[4])} <= {"where"}
    assert index.forgotten(subject="someone-else-entirely@example.org") == []
    assert index.forgotten(where={"tier": 1, "lang": "fr"})  # the same filter, keys in any order
    assert index.check_audit().ok
    index.close()
    # the log holds keyed hashes only: no id, subject, payload or metadata of a forgotten example
    audit_text = "\n".join(json.dumps(e) for e in log).encode()
    needles = [i.encode() for i in victim_ids + [ids[12]]] + [victim.encode()]
    assert not surviving({"audit": audit_text}, needles)
    assert not surviving(all_file_bytes(store_dir), needles)
    # the chain survives reopen, and the CLI reads it
    reopened = ExampleIndex.open(path)
    assert reopened.check_audit().ok and len(reopened.audit()) == 3
    reopened.close()
    out = subprocess.run([sys.executable, "-m", "erase_core.cli", "audit", str(path), "--subject", victim],
                         capture_output=True, text=True)
    assert out.returncode == 0 and "forgotten: yes" in out.stderr and "chain OK: 3 entries" in out.stderr
    out = subprocess.run([sys.executable, "-m", "erase_core.cli", "forget", str(path), "--subject", subjects[5]],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["n_remaining"] < N
    out = subprocess.run([sys.executable, "-m", "erase_core.cli", "audit", str(path), "--subject", subjects[5]],
                         capture_output=True, text=True)
    assert "forgotten: yes" in out.stderr


@pytest.mark.processes
def test_an_edited_audit_entry_is_detected(tmp_path):
    path = tmp_path / "p.sqlite"
    X, ids, subjects, metadata, payloads = pool(3)
    index = ExampleIndex(k=4, path=path)
    index.add(X, payloads, ids=ids, subjects=subjects, metadata=metadata)
    for s in sorted({x for x in subjects if x})[:3]:
        index.forget_subject(s)
    index.close()
    con = sqlite3.connect(path)
    entry = json.loads(con.execute("SELECT entry FROM audit WHERE seq = 2").fetchone()[0])
    entry["count"] = 0  # hide how much was deleted
    con.execute("UPDATE audit SET entry = ? WHERE seq = 2", (json.dumps(entry, sort_keys=True, separators=(",", ":")),))
    con.commit()
    con.close()
    with ExampleIndex.open(path) as reopened:
        check = reopened.check_audit()
        assert not check.ok and check.first_bad == 2
    out = subprocess.run([sys.executable, "-m", "erase_core.cli", "audit", str(path)], capture_output=True, text=True)
    assert out.returncode == 1 and "BROKEN at entry 2" in out.stderr
    con = sqlite3.connect(path)
    con.execute("DELETE FROM audit WHERE seq = 2")  # dropping an entry breaks the chain too
    con.commit()
    con.close()
    with ExampleIndex.open(path) as reopened:
        assert reopened.check_audit().first_bad == 3


_KILL_CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {repo!r})
    from erase_core import ExampleIndex
    index = ExampleIndex.open({path!r})
    print("ready", flush=True)
    for s in {subjects!r}:
        index.forget_subject(s)
    """
)


@pytest.mark.processes
def test_kill_during_forget_subject_keeps_the_log_and_the_pool_in_step(tmp_path):
    X = clustered(1500, d=16, seed=5)
    ids = [f"r{i:05d}" for i in range(1500)]
    subjects = [f"s{i % 40:03d}" for i in range(1500)]
    template = tmp_path / "t.sqlite"
    index = ExampleIndex(k=4, path=template)
    index.add(X, [{"x": "y" * 300}] * 1500, ids=ids, subjects=subjects)
    index.close()
    from test_index_persistence import _copy_store

    for trial, delay in enumerate(kill_moments([0.0, 0.1, 0.3], long=[0.0, 0.05, 0.1, 0.15, 0.3, 0.5])):
        path = tmp_path / f"k{trial}.sqlite"
        _copy_store(template, path)
        kill_after(_KILL_CHILD.format(repo=str(REPO_ROOT), path=str(path), subjects=sorted(set(subjects))), delay)
        with ExampleIndex.open(path) as reopened:
            assert reopened.verify() and reopened.check_audit().ok
            log = reopened.audit()
            # every logged request is complete, and every forgotten subject is logged
            present = {s for s in set(subjects) if reopened.ids_of_subject(s)}
            logged = {s for s in set(subjects) if reopened.forgotten(subject=s)}
            assert present | logged == set(subjects) and not present & logged
            assert len(reopened) == 1500 - sum(e["count"] for e in log)
            if log:
                assert log[-1]["digest_after"] == reopened.digest()


def test_filter_values_compare_as_json_values():
    index = ExampleIndex(k=1, strategy="similarity")
    index.add(np.eye(4), [0, 1, 2, 3], ids=["int", "float", "bool", "str"],
              metadata=[{"v": 1}, {"v": 1.0}, {"v": True}, {"v": "1"}])
    q = np.ones(4)
    assert sorted(s.id for s in index.select(q, k=4, filter={"v": 1})) == ["float", "int"]
    assert [s.id for s in index.select(q, k=4, filter={"v": True})] == ["bool"]
    assert [s.id for s in index.select(q, k=4, filter={"v": {"$in": ["1"]}})] == ["str"]
