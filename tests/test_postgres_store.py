"""The PostgreSQL store (erase_core/storage/postgres): exactness against a fresh build,
replicas that share nothing but the DSN, kill -9 mid-forget, the residue left in the cluster's
files after a forget, and bad input. Runs on a throwaway cluster (tests/pg_cluster.py)."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from erase_core import ERASEError, ExampleIndex
from erase_core.storage import CorruptStoreError, StoreError
from conftest import REPO_ROOT, clustered
from killing import kill_after, kill_moments
from residue import all_file_bytes, surviving
from test_handles import fresh_build
import mp_workers

pytest.importorskip("psycopg", reason='psycopg is not installed (pip install "erase-icl[postgres]")')

from erase_core.storage.postgres import PostgresStore  # noqa: E402
from erase_core.storage.postgres.keys import BUCKET_ROWS, Unwrapper  # noqa: E402


def payload(i: int) -> dict:
    return {"input": f"secret question {i} MARKER{i:04d}X", "output": f"answer {i}"}


def build(location, n=120, seed=5, strategy="erase"):
    X = clustered(n, d=10, blobs=4, seed=8)
    ids = [f"person-{i:04d}@example.org" for i in range(n)]
    index = ExampleIndex(k=4, strategy=strategy, seed=seed, path=location)
    index.add(X, [payload(i) for i in range(n)], ids=ids)
    return index, X, ids


def rows_of(dsn) -> dict[str, int]:
    """Each example's row number, read through a store handle of the test's own."""
    with PostgresStore.open(dsn) as store:
        return {r.id: r.row for r in store.load()[2]}


def settled(cluster, dsn) -> bool:
    """Whether no shred step is pending (the state row, read with plain SQL)."""
    return not cluster.sql("SELECT shred_pending FROM erase_state", dsn=dsn)[0][0]


def fresh(X, ids, keep, seed=5, extra=()):
    index = ExampleIndex(k=4, seed=seed)
    index.add(X[keep], [payload(i) for i in keep], ids=[ids[i] for i in keep])
    for vectors, payloads, new_ids in extra:
        index.upsert(vectors, payloads, ids=new_ids)
    return index


def test_add_forget_upsert_are_a_fresh_build_in_every_handle(pg_dsn):
    index, X, ids = build(pg_dsn)
    other = ExampleIndex.open(pg_dsn)
    assert other.digest() == index.digest()
    index.forget(ids[:5])
    other.forget([ids[7]])
    index.upsert(X[:2] * 2, [{"input": "new"}] * 2, ids=[ids[10], "n2"])  # one replaced, one new
    keep = [i for i in range(120) if i not in (0, 1, 2, 3, 4, 7, 10)]
    expected = fresh(X, ids, keep, extra=[(X[:2] * 2, [{"input": "new"}] * 2, [ids[10], "n2"])])
    assert index.digest() == other.digest() == expected.digest()
    assert [s.id for s in other.select()] == [s.id for s in expected.select()]
    assert ids[0] not in other and other.get(ids[10]) == {"input": "new"}
    assert other.verify() and index.verify()
    index.close()
    other.close()
    with ExampleIndex.open(pg_dsn) as reopened:
        assert reopened.digest() == expected.digest() and reopened.verify()
        assert [e["count"] for e in reopened.audit()] == [5, 1, 1]  # the upsert replaced one


def test_open_or_create_takes_a_dsn(pg_dsn):
    X = clustered(30, d=6, seed=1)
    with ExampleIndex.open_or_create(pg_dsn, k=3, seed=2) as first:
        first.add(X, [payload(i) for i in range(30)], ids=[f"e{i}" for i in range(30)])
        digest = first.digest()
        first.set_note("model", "test-embedder")
    with ExampleIndex.open_or_create(pg_dsn, k=3, seed=2) as again:
        assert again.digest() == digest and len(again) == 30 and again.note("model") == "test-embedder"
    with pytest.raises(ERASEError, match="other parameters"):
        ExampleIndex.open_or_create(pg_dsn, k=5)
    with pytest.raises(ERASEError, match="already holds an example store"):
        ExampleIndex(k=3, path=pg_dsn)


def test_changes_since_and_the_pruned_log(pg_dsn, monkeypatch):
    index, X, ids = build(pg_dsn, n=40)
    store = PostgresStore.open(pg_dsn)
    version = store.published_version()
    rows = rows_of(pg_dsn)
    index.forget(ids[:3])
    index.add(X[:1] * 3, [{"input": "x"}], ids=["x1"])
    changes = store.changes_since(version)
    assert changes.version == version + 4 and len(changes.added) == 1 and changes.added[0].id == "x1"
    assert sorted(changes.removed) == sorted(rows[i] for i in ids[:3])
    assert store.changes_since(changes.version).version == changes.version
    from erase_core.storage.postgres import store as pg_store

    monkeypatch.setattr(pg_store, "LOG_RETAIN", 2)
    index.forget(ids[3:8])  # the log now exceeds twice LOG_RETAIN: pruned
    assert store.changes_since(version) is None  # too far behind: reload
    rows = rows_of(pg_dsn)
    assert [r.id for r in store.load()[2]] == sorted(index.ids, key=lambda i: rows[i])
    store.close()
    index.close()


_REPLICA = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, {repo!r})
    from erase_core import ExampleIndex
    index = ExampleIndex.open({dsn!r})
    print("ready", flush=True)
    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        if cmd == "forget":
            index.forget([arg])
            print(json.dumps("ok"), flush=True)
        elif cmd == "read":
            print(json.dumps({{"ids": sorted(index.ids), "digest": index.digest(),
                               "select": [s.id for s in index.select()]}}), flush=True)
    """
)


@pytest.mark.processes
def test_two_replicas_sharing_only_the_dsn_see_each_others_forgets(pg_dsn, tmp_path):
    """Two processes in separate directories, sharing nothing but the DSN: once a forget
    returns in one, the very next read in the other does not return the example."""
    index, X, ids = build(pg_dsn, n=80)
    index.close()
    replicas = []
    for name in ("a", "b"):
        home = tmp_path / name
        home.mkdir()
        proc = subprocess.Popen([sys.executable, "-c", _REPLICA.format(repo=str(REPO_ROOT), dsn=pg_dsn)], cwd=home,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        replicas.append(proc)

    def ask(proc, line):
        proc.stdin.write(line + "\n")
        proc.stdin.flush()
        return json.loads(proc.stdout.readline())

    try:
        gone = []
        for turn, victim in enumerate(ids[:6]):
            writer, reader = replicas[turn % 2], replicas[1 - turn % 2]
            assert ask(writer, f"forget {victim}") == "ok"
            gone.append(victim)
            seen = ask(reader, "read")
            assert victim not in seen["ids"] and victim not in seen["select"]
        keep = [i for i in range(80) if ids[i] not in gone]
        assert seen["digest"] == ask(replicas[0], "read")["digest"] == fresh(X, ids, keep).digest()
    finally:
        for proc in replicas:
            proc.stdin.close()
            proc.wait(timeout=60)
        for f in tmp_path.rglob("*"):  # shared nothing: neither replica wrote a file
            assert f.is_dir(), f


_FORGETTER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {repo!r})
    from erase_core import ExampleIndex
    index = ExampleIndex.open({dsn!r})
    print("ready", flush=True)
    index.forget({victims!r})
    print("done", flush=True)
    """
)


def bucket_keys(cluster, dsn) -> dict[int, bytes]:
    return {b: bytes(k) for b, k in cluster.sql("SELECT bucket, key FROM erase_keys", dsn=dsn)}


def row_keys(cluster, dsn) -> dict[int, bytes]:
    """Every row's own key, unwrapped (what the test can know; the library never writes it in clear)."""
    store = PostgresStore.open(dsn)
    try:
        unwrap = Unwrapper(store._uuid, bucket_keys(cluster, dsn))
        rows = cluster.sql("SELECT row, wrapped FROM erase_keywraps", dsn=dsn)
        return {r: unwrap(r, r // BUCKET_ROWS, bytes(w)) for r, w in rows}
    finally:
        store.close()


@pytest.mark.processes
def test_kill_during_a_forget_leaves_before_or_after_and_the_shred_is_finished(pg_cluster):
    n = 600
    X = clustered(n, d=16, blobs=6, seed=2)
    ids = [f"k{i:05d}" for i in range(n)]
    victims = ids[::2]
    keep = list(range(1, n, 2))
    before = fresh(X, ids, list(range(n)), seed=1)
    before_digest, after_digest = before.digest(), fresh(X, ids, keep, seed=1).digest()
    outcomes = set()
    for trial, delay in enumerate(kill_moments([0.0, 0.1, 0.3], long=[0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8])):
        dsn = pg_cluster.new_schema()
        with ExampleIndex(k=4, seed=1, path=dsn) as index:
            index.add(X, [payload(i) for i in range(n)], ids=ids)
        rows = rows_of(dsn)
        old_keys = bucket_keys(pg_cluster, dsn)
        kill_after(_FORGETTER.format(repo=str(REPO_ROOT), dsn=dsn, victims=victims), delay)
        with ExampleIndex.open(dsn) as reopened:  # the open finishes a pending shred
            digest = reopened.digest()
            assert digest in (before_digest, after_digest), f"trial {trial}: torn state"
            assert reopened.verify()
        assert settled(pg_cluster, dsn), f"trial {trial}: shred left pending"
        outcomes.add("before" if digest == before_digest else "after")
        if digest == after_digest:
            files = all_file_bytes(pg_cluster.data)
            replaced = {rows[v] // BUCKET_ROWS for v in victims}
            assert not surviving(files, [old_keys[b] for b in replaced]), f"trial {trial}: a replaced key survived"
    print("kill during forget: outcomes", sorted(outcomes))


def test_after_a_forget_no_file_of_the_cluster_holds_what_opens_it(pg_cluster, pg_dsn):
    """The residue scan: after a forget returns (its shred step done), no 32-byte window of the
    forgotten payload, vector, row key or its bucket's old key is in any file under the data
    directory (heap, indexes, WAL, pg_xact, ...); the live keys are (the scan can fail)."""
    index, X, ids = build(pg_dsn, n=300)
    victims = [ids[0], ids[1], ids[200]]  # two buckets
    rows = rows_of(pg_dsn)
    ExampleIndex.open(pg_dsn).close()  # a long open: it writes the open image, which holds the victims too
    keys_before = bucket_keys(pg_cluster, pg_dsn)
    assert -3 in keys_before
    row_key = row_keys(pg_cluster, pg_dsn)
    wrapped_before = {v: bytes(pg_cluster.sql("SELECT wrapped FROM erase_keywraps WHERE row = %s", (rows[v],),
                                              dsn=pg_dsn)[0][0]) for v in victims}
    pg_cluster.sql("CHECKPOINT")
    files = all_file_bytes(pg_cluster.data)
    old = [keys_before[rows[v] // BUCKET_ROWS] for v in victims] + [keys_before[-2], keys_before[-3]]  # board, image
    assert all(surviving(files, [key]) for key in old)  # before the forget: on disk, in clear
    index.forget(victims)
    keys_after = bucket_keys(pg_cluster, pg_dsn)
    assert -3 not in keys_after  # the forget deleted the image's key
    files = all_file_bytes(pg_cluster.data)
    assert any(name.startswith("pg_wal/") for name in files) and any(name.startswith("pg_xact/") for name in files)
    plaintext = []
    for v in victims:
        i = ids.index(v)
        plaintext += [json.dumps(payload(i), sort_keys=True).encode(),
                      (X[i] / np.linalg.norm(X[i])).astype("<f4").tobytes(), row_key[rows[v]]]
    assert not surviving(files, plaintext), "a forgotten payload, vector or row key is on disk"
    assert not surviving(files, old), "a replaced bucket key survived the shred step"
    live = [keys_after[b] for b in (rows[victims[0]] // BUCKET_ROWS, rows[ids[-1]] // BUCKET_ROWS)]
    assert all(surviving(files, [key]) for key in live)  # the scan finds keys that are there
    # the forgotten rows' dead tuples are still in the heap pages (read raw, with pageinspect):
    # their wrapped keys open under no key the database holds now
    schema = pg_dsn.rsplit("%3D", 1)[1]
    pg_cluster.sql("CREATE EXTENSION IF NOT EXISTS pageinspect SCHEMA public")
    pages = pg_cluster.sql(f"SELECT public.get_raw_page('{schema}.erase_keywraps', p) FROM generate_series(0, "
                           f"pg_relation_size('{schema}.erase_keywraps') / 8192 - 1) p")
    raw = b"".join(bytes(p[0]) for p in pages)
    with PostgresStore.open(pg_dsn) as store:
        uuid = store._uuid
    dead = [v for v in victims if wrapped_before[v] in raw]
    assert dead, "no dead tuple left to check (the heap was pruned): the check below would prove nothing"
    for v in dead:
        row, bucket, w = rows[v], rows[v] // BUCKET_ROWS, wrapped_before[v]
        assert Unwrapper(uuid, {bucket: keys_before[bucket]})(row, bucket, w) == row_key[row]  # the old key opens it
        for key in keys_after.values():  # no key the database holds now does
            with pytest.raises(CorruptStoreError):
                Unwrapper(uuid, {bucket: key})(row, bucket, w)
    assert all(v not in index for v in victims) and index.verify()
    index.close()


def test_a_failed_shred_step_is_finished_by_the_next_open(pg_cluster, pg_dsn, monkeypatch):
    index, X, ids = build(pg_dsn, n=60)
    from erase_core.storage.postgres import shred

    real = shred.purge

    def broken(conn):
        raise StoreError("injected: CHECKPOINT failed")

    monkeypatch.setattr(shred, "purge", broken)
    with pytest.raises(StoreError, match="committed"):
        index.forget([ids[0]])
    assert not settled(pg_cluster, pg_dsn)
    monkeypatch.setattr(shred, "purge", real)
    with ExampleIndex.open(pg_dsn) as other:
        assert ids[0] not in other
    assert settled(pg_cluster, pg_dsn)
    assert ids[0] not in index and index.verify()
    index.close()


def test_a_server_that_is_down_is_a_clear_error_naming_it_without_a_hang(pg_cluster, tmp_path):
    down = f"postgresql:///postgres?host={tmp_path}&port=5999&user=postgres"
    start = time.monotonic()
    with pytest.raises(ERASEError, match=f"socket {tmp_path}, port 5999"):
        ExampleIndex.open(down)
    with pytest.raises(ERASEError, match="host 127.0.0.1, port 9"):
        ExampleIndex(k=3, path="postgresql://postgres@127.0.0.1:9/postgres")
    assert time.monotonic() - start < 30
    with pytest.raises(ERASEError, match="no example store"):
        ExampleIndex.open(pg_cluster.new_schema())


def test_foreign_tables_and_future_layouts_are_refused_untouched(pg_cluster):
    dsn = pg_cluster.new_schema()
    pg_cluster.sql("CREATE TABLE erase_meta (something int)", dsn=dsn)
    with pytest.raises(ERASEError, match="not an ERASE"):
        ExampleIndex(k=3, path=dsn)
    with pytest.raises(ERASEError, match="not an ERASE"):
        ExampleIndex.open(dsn)
    assert pg_cluster.sql("SELECT count(*) FROM erase_meta", dsn=dsn) == [(0,)]
    dsn = pg_cluster.new_schema()
    ExampleIndex(k=3, path=dsn).close()
    pg_cluster.sql("UPDATE erase_meta SET value = '99' WHERE key = 'schema_version'", dsn=dsn)
    with pytest.raises(ERASEError, match="layout version 99"):
        ExampleIndex.open(dsn)


def test_a_row_deleted_behind_the_librarys_back_is_caught(pg_dsn, pg_cluster):
    index, X, ids = build(pg_dsn, n=30)
    index.close()
    pg_cluster.sql("DELETE FROM erase_examples WHERE row = 3", dsn=pg_dsn)
    with pytest.raises(ERASEError, match="row-set"):
        ExampleIndex.open(pg_dsn)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), seed=st.integers(0, 3))
def test_interleaved_handles_on_postgres_always_equal_a_fresh_build(pg_cluster, data, seed):
    dsn = pg_cluster.new_schema()
    X = clustered(30, d=6, blobs=3, seed=seed)
    params = dict(k=3, strategy="erase", seed=seed, epsilon=0.02)
    first = ExampleIndex(path=dsn, **params)
    first.add(X[:12], [{"i": i} for i in range(12)], ids=[f"x{i:02d}" for i in range(12)])
    handles = [first, ExampleIndex.open(dsn), ExampleIndex.open(dsn)]
    truth = {f"x{i:02d}": (X[i], {"i": i}) for i in range(12)}
    next_i = 12
    for _ in range(data.draw(st.integers(2, 6))):
        h = handles[data.draw(st.integers(0, 2))]
        if next_i < 30 and data.draw(st.booleans()):
            new = [f"x{i:02d}" for i in range(next_i, min(30, next_i + data.draw(st.integers(1, 3))))]
            h.add(X[next_i:next_i + len(new)], [{"i": int(i[1:])} for i in new], ids=new)
            truth.update({i: (X[int(i[1:])], {"i": int(i[1:])}) for i in new})
            next_i += len(new)
        elif len(truth) > 3:
            victims = data.draw(st.lists(st.sampled_from(sorted(truth)), min_size=1, max_size=2, unique=True))
            h.forget(victims)
            for v in victims:
                del truth[v]
        reader = handles[data.draw(st.integers(0, 2))]
        want = fresh_build(truth, **params)
        assert [(s.id, s.score) for s in reader.select()] == [(s.id, s.score) for s in want.select()]
        assert reader.digest() == want.digest()
    for h in handles:
        h.close()


@pytest.mark.processes
def test_the_cli_takes_a_dsn(pg_dsn):
    index, X, ids = build(pg_dsn, n=40)
    index.close()

    def erase(*args):
        return subprocess.run([sys.executable, "-m", "erase_core.cli", *args], capture_output=True, text=True,
                              timeout=120)

    assert erase("forget", pg_dsn, ids[3]).returncode == 0
    verified = erase("verify", pg_dsn)
    assert verified.returncode == 0 and "OK: 39 examples" in verified.stdout
    info = erase("info", pg_dsn)
    assert info.returncode == 0 and ids[3] not in info.stdout
    down = erase("info", "postgresql://postgres@127.0.0.1:9/postgres")
    assert down.returncode != 0 and "host 127.0.0.1, port 9" in down.stderr


_ONE_AT_A_TIME = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {repo!r})
    from erase_core import ExampleIndex
    index = ExampleIndex.open({dsn!r})
    print("ready", flush=True)
    try:
        for victim in {victims!r}:
            index.forget([victim])
            print("forgot", victim, flush=True)
    except Exception as exc:
        print("error", " ".join(str(exc).split()), flush=True)
        sys.exit(3)
    """
)


@pytest.mark.processes
def test_the_server_stopped_mid_forget_then_restarted(pg_cluster):
    """`pg_ctl stop -m immediate` while a process forgets one id at a time: the writer gets a
    clear error naming the server (no hang); after the restart every handle, one opened before
    the crash included, reads a fresh build on what remains, with no shred left pending."""
    n = 300
    dsn = pg_cluster.new_schema()
    index, X, ids = build(dsn, n=n)
    victims = ids[::3]
    child = subprocess.Popen([sys.executable, "-c", _ONE_AT_A_TIME.format(repo=str(REPO_ROOT), dsn=dsn, victims=victims)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        time.sleep(1.0)
        pg_cluster.stop("immediate")
        out, _ = child.communicate(timeout=60)  # no hang
    finally:
        pg_cluster.start()
    assert child.returncode == 3
    last = out.strip().splitlines()[-1]
    assert last.startswith("error") and f"socket {pg_cluster.socket_dir}, port 5432" in last, last
    returned = [line.split()[1] for line in out.splitlines() if line.startswith("forgot")]
    assert returned  # the stop landed during the forgets
    remaining = set(index.ids)  # the handle from before the crash reconnects
    gone = [i for i in ids if i not in remaining]
    assert gone == victims[:len(gone)] and len(returned) <= len(gone) <= len(returned) + 1
    expected = fresh(X, ids, [i for i in range(n) if ids[i] in remaining])
    assert index.digest() == expected.digest() and index.verify()
    index.close()
    with ExampleIndex.open(dsn) as reopened:
        assert reopened.digest() == expected.digest()
    assert settled(pg_cluster, dsn)


@pytest.mark.processes
def test_four_selecting_replicas_never_serve_what_a_fifth_forgot(pg_cluster, pg_dsn, tmp_path):
    """Four selector processes and a writer process (adds and forgets) on one DSN: no read that
    starts after a forget returned serves the forgotten example, and all end on one digest."""
    X = mp_workers.vectors()
    index = ExampleIndex(k=4, strategy="similarity", seed=0, path=pg_dsn)
    index.add(X[: mp_workers.POOL], [{"n": i} for i in range(mp_workers.POOL)],
              ids=[mp_workers.ident(i) for i in range(mp_workers.POOL)])
    index.close()
    log, stop = tmp_path / "forgotten.log", tmp_path / "stop"
    ctx = multiprocessing.get_context("spawn")
    selectors = [ctx.Process(target=mp_workers.selector, args=(pg_dsn, str(log), str(stop), str(tmp_path / f"sel{j}.json"), j))
                 for j in range(4)]
    writer = ctx.Process(target=mp_workers.writer, args=(pg_dsn, str(log), 8.0, 1, str(tmp_path / "writer.json")))
    with mp_workers.running(selectors + [writer], stop):
        writer.join(120)
        assert writer.exitcode == 0, "the writer failed (its traceback is on stderr)"
        stop.write_text("stop")
        for p in selectors:
            p.join(120)
            assert p.exitcode == 0, "a selector failed (its traceback is on stderr)"
    reports = [json.loads((tmp_path / f"sel{j}.json").read_text()) for j in range(4)]
    written = json.loads((tmp_path / "writer.json").read_text())
    assert written["ops"] >= 5, written  # a loaded machine forgets slowly (a checkpoint each)
    with ExampleIndex.open(pg_dsn) as final:
        assert settled(pg_cluster, pg_dsn)  # a shred step the writer left pending was finished
        for r in reports:
            summary = {key: r[key] for key in ("stale", "verify", "reads")}
            assert r["stale"] == [] and r["verify"] and r["reads"] >= 10, summary
            assert r["digest"] == final.digest()
        assert final.verify()


def test_a_role_without_the_shred_privileges_is_refused_and_the_documented_grants_suffice(pg_cluster):
    role = "erase_app_" + pg_cluster.new_schema().rsplit("s_", 1)[1]
    schema = pg_cluster.new_schema().rsplit("%3D", 1)[1]
    pg_cluster.sql(f"CREATE ROLE {role} LOGIN")
    pg_cluster.sql(f"GRANT USAGE, CREATE ON SCHEMA {schema} TO {role}")
    dsn = pg_cluster.dsn(schema).replace("user=postgres", f"user={role}")
    with pytest.raises(ERASEError) as refused:
        ExampleIndex(k=3, path=dsn)
    for grant in ("pg_checkpoint", "pg_switch_wal()", "pg_read_all_stats"):
        assert grant in str(refused.value)
    assert pg_cluster.sql("SELECT count(*) FROM pg_tables WHERE schemaname = %s", (schema,)) == [(0,)]  # nothing written
    pg_cluster.sql(f"GRANT pg_checkpoint, pg_read_all_stats TO {role}")
    pg_cluster.sql(f"GRANT EXECUTE ON FUNCTION pg_switch_wal() TO {role}")
    index, X, ids = build(dsn, n=40)
    index.forget(ids[:2])
    assert settled(pg_cluster, dsn) and index.verify() and ids[0] not in index
    index.close()


def test_a_sqlite_store_moves_into_postgres_and_back(pg_dsn, tmp_path):
    index, X, ids = build(tmp_path / "pool.sqlite", n=80)
    index.forget(ids[:4])
    index.save(pg_dsn)  # the move: one transaction into the new store
    with ExampleIndex.open(pg_dsn) as moved:
        assert moved.digest() == index.digest() and moved.verify()
        assert [s.id for s in moved.select()] == [s.id for s in index.select()]
        moved.save(tmp_path / "back.sqlite")
    with ExampleIndex.open(tmp_path / "back.sqlite") as back:
        assert back.digest() == index.digest()
    index.close()


def test_writers_post_their_selection_and_a_forget_without_one_clears_it(pg_cluster, pg_dsn):
    index, X, ids = build(pg_dsn, n=80)
    reader = PostgresStore.open(pg_dsn)
    rows = rows_of(pg_dsn)
    version = reader.published_version()
    posted = reader.posted_selection(version)  # the add posted after its commit
    assert posted is not None and {r for r, _ in posted} == {rows[s.id] for s in index.select()}
    index.forget([ids[5]])  # posted inside its transaction
    version = reader.published_version()
    posted = reader.posted_selection(version)
    assert posted is not None and rows[ids[5]] not in {r for r, _ in posted}
    assert reader.posted_selection(version - 1) is None  # for another version: ignored
    with reader.transaction() as txn:  # a deleting write that posts nothing clears the board
        txn.delete([rows[ids[6]]])
    assert reader.posted_selection(reader.published_version()) is None
    assert pg_cluster.sql("SELECT board FROM erase_state", dsn=pg_dsn) == [(None,)]
    expected = fresh(X, ids, [i for i in range(80) if i not in (5, 6)])
    assert index.digest() == expected.digest() and [s.id for s in index.select()] == [s.id for s in expected.select()]
    reader.close()
    index.close()


def test_the_open_image_is_used_kept_by_adds_and_dropped_by_a_forget(pg_cluster, pg_dsn):
    index, X, ids = build(pg_dsn, n=60)
    timings: dict = {}
    ExampleIndex.open(pg_dsn, timings=timings).close()
    assert "build_memory_s" not in timings  # the long way, which writes the image
    assert pg_cluster.sql("SELECT version FROM erase_image", dsn=pg_dsn) == [(index.version,)]
    index.add(X[:2] * -1, [{"input": "new"}] * 2, ids=["n1", "n2"])  # adds keep it: they are replayed
    timings = {}
    with ExampleIndex.open(pg_dsn, timings=timings) as again:
        assert "build_memory_s" in timings and again.digest() == index.digest() and again.verify()
        assert again.get(ids[3]) == payload(3)  # payloads are read from the rows on demand
    index.forget([ids[0]])
    assert pg_cluster.sql("SELECT count(*) FROM erase_image", dsn=pg_dsn) == [(0,)]
    assert pg_cluster.sql("SELECT count(*) FROM erase_keys WHERE bucket = -3", dsn=pg_dsn) == [(0,)]
    timings = {}
    with ExampleIndex.open(pg_dsn, timings=timings) as third:
        assert "build_memory_s" not in timings and third.digest() == index.digest()
    index.close()
