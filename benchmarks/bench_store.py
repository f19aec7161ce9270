#!/usr/bin/env python
"""Persistence benchmark of the ExampleIndex store (method and results: docs/benchmarks.md).

For every pool size n and payload size (d = 384 synthetic unit vectors, k = 4, strategy
``erase``), on one store (``PATH`` + ``PATH.keys``) built by ``ExampleIndex(path=...)``:

1. **forget**: ``ExampleIndex.forget`` of one random id on the persisted index, interleaved
   with the same forget on an in-memory index holding the same data (one persisted forget,
   one in-memory forget, alternately, the order swapped every pair), p50/p99/mean. Then, in
   a separate loop (its whole-file rewrites would otherwise disturb the fsyncs of the other
   two), the **old VACUUM path (re-implemented baseline)**: plaintext rows in SQLite
   (``journal_mode=DELETE, secure_delete=ON, synchronous=FULL``), one DELETE transaction and
   a ``VACUUM`` per forget, as the store did before the crypto-shredding redesign. Timed for
   the storage part only (the in-memory model update, ~0.6 ms p50 here, is not included), until
   ``--old-budget-s`` is spent (at least ``--old-min`` forgets).
2. **open**: ``ExampleIndex.open`` (median of ``--open-repeats``), split inside the median
   call: ``ExampleStore.open``, ``store.load`` (of which the plain SQL fetch of the sealed
   rows, timed alone) and the rest (rebuilding memory: id maps, hashing, clustering).
3. **select under a concurrent writer**: another *process* opens the same store and forgets
   one random example every ``--writer-interval`` s; this process loops ``index.select()``
   (erase strategy, no query) for ``--select-seconds`` s. p50/p99/max, and the same for the
   selects that had to catch up with a forget. Then, since ten forgets rarely include one that
   recomputes the clustering, forgets by a second handle in this process (at least
   ``--catchup-forgets``, then until ``--catchup-recomputes`` of them recomputed, within
   ``--catchup-max`` forgets / ``--catchup-budget-s``), each followed by one select on the
   first: catch-up cost split by whether the forget recomputed (its receipt says so; the
   reader redoes the same model update). Also ``select()`` p50 with no writer
   (persisted and in-memory) and the cost of the freshness check alone.
4. **kill -9 trials** (``--kill-trials``): copy a template store (both files), start a child
   that opens it and forgets (or adds, alternating) a batch in one call, SIGKILL it after a
   random delay spanning the call (log-uniform, so the early part where the transaction
   commits is well covered), reopen; the digest must equal the before- or the
   after-state digest, ``verify()`` must hold and every non-zero key slot must belong to a row.

Sections run in the order 1, 3, 2: ``ExampleStore.open`` reads the database header with a
plain ``open()``/``close()``, which drops every POSIX lock this process holds on the file; a
later writer *process* then takes itself for the last connection on close and deletes -wal
and -shm under the live handle (see docs/benchmarks.md). The JSON records
``shm_present_after_writer_exit``.

Everything runs on the page cache of a warm machine (no cache drop): fsync costs are real,
reads are not cold-disk reads. numpy's BLAS runs single-threaded (``--threads 1``, as in
``bench_core.py``), in the child processes too: on the shared 2-core VM a 2-thread OpenBLAS
turned a (4 x 5000) @ (5000 x 32) product into 0.32 s instead of 0.2 ms.

The JSON records ``store_loads_per_forget``: how many full ``store.load()`` calls the timed
persisted forgets made (0 expected; before commit 68402c5 every forget reloaded the whole
store once, from ``digest()`` inside ``_after_commit``). The child processes import a copy of
``erase_core`` taken at the start (in the work directory), so a run measures one version of the
code even if the working tree changes meanwhile; the JSON records its hash and git commit.

Usage::

    python benchmarks/bench_store.py                          # n = 10k, 100k x 200 B, 4 KB; 50 kill trials
    python benchmarks/bench_store.py --quick                  # n = 2k smoke run, 5 kill trials
    python benchmarks/bench_store.py --sizes 10000 --payloads 200 --kill-trials 0
    python benchmarks/bench_store.py --parts kill --kill-trials 50
    python benchmarks/bench_store.py --backend postgres [--sizes ...]   # benchmarks/bench_postgres.py
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import random
import shutil
import signal
import sqlite3
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if str(ROOT / "benchmarks") not in sys.path:
    sys.path.insert(0, str(ROOT / "benchmarks"))
_CODE_ENV = "BENCH_STORE_CODE"
if os.environ.get(_CODE_ENV):  # a child process: import the parent's snapshot of erase_core
    sys.path.insert(0, os.environ[_CODE_ENV])

from bench_core import make_embeddings  # noqa: E402
from erase_core import ExampleIndex  # noqa: E402
from erase_core.storage import ExampleStore, keys_path  # noqa: E402
from erase_core.storage.keyfile import HEADER_SIZE, KEY_SIZE  # noqa: E402

ERASE_CORE_DIR = Path(sys.modules["erase_core"].__file__).resolve().parent

try:
    from tqdm.auto import tqdm
except ImportError:  # pragma: no cover
    def tqdm(it=None, **_):
        return it

RESULTS = ROOT / "benchmarks" / "results"
DIM = 384
_THREADS_ENV = "BENCH_STORE_THREADS"


def limit_threads(n: int) -> dict:
    """numpy BLAS threads = n (0: library default). Kept alive on the function object."""
    info: dict = {"threads_requested": n}
    try:
        from threadpoolctl import threadpool_info, threadpool_limits

        if n > 0:
            limit_threads._limits = threadpool_limits(limits=n)
        info["blas"] = [{k: d.get(k) for k in ("internal_api", "num_threads", "version")} for d in threadpool_info()]
    except ImportError:
        info["warning"] = "threadpoolctl not installed: set OPENBLAS_NUM_THREADS instead"
    return info


def _child_setup() -> None:
    limit_threads(int(os.environ.get(_THREADS_ENV, "1")))


PARTS = ("forget", "open", "select", "kill")

TARGETS = {
    "persisted_forget_p50_s_max_at_100k": 5e-3,
    "open_s_max_at_100k": 1.0,
    "freshness_check_s_max": 10e-6,
    "select_wait_on_forget_s_max": 20e-3,
}


# ---------------------------------------------------------------------------- data
def make_payloads(n: int, size: int, seed: int) -> list[dict]:
    """``n`` JSON payloads of about ``size`` bytes each (random lower-case words: no help from
    any compression, unique per row)."""
    rng = np.random.default_rng([seed, size, 0xDA7A])
    text_len = max(8, size - 40)  # '{"input": "...", "target": "label-3"}' overhead
    alphabet = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz     ", dtype=np.uint8)
    out = []
    for lo in range(0, n, 8192):
        hi = min(n, lo + 8192)
        block = alphabet[rng.integers(0, len(alphabet), size=(hi - lo, text_len))]
        for j, row in enumerate(block):
            i = lo + j
            out.append({"input": f"{i} " + row.tobytes().decode("ascii"), "target": f"label-{i % 7}"})
    return out


def make_ids(n: int) -> list[str]:
    return [f"ex{i:07d}" for i in range(n)]


def summary(values) -> dict:
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return {"count": 0}
    return {"count": int(v.size), "p50_s": float(np.median(v)), "p99_s": float(np.percentile(v, 99)),
            "mean_s": float(v.mean()), "max_s": float(v.max()), "min_s": float(v.min())}


# ---------------------------------------------------------------------------- old path (baseline)
class OldVacuumStore:
    """The old VACUUM path (re-implemented baseline): the pre-redesign ``SQLiteExampleStore``
    reduced to what a forget costs. Plaintext rows; rollback journal (``journal_mode=DELETE``),
    ``secure_delete=ON``, ``synchronous=FULL``; a delete is one transaction (DELETE + a
    ``scrub_pending`` mark) then ``VACUUM`` (rewrite the whole file from the live rows) then a
    transaction clearing the mark."""

    SCHEMA = (
        "CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL)",
        "CREATE TABLE examples (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,"
        " dim INTEGER NOT NULL CHECK (dim > 0), vector BLOB NOT NULL, payload TEXT NOT NULL)",
    )

    def __init__(self, path: Path):
        self.path = path
        self.conn = sqlite3.connect(str(path), isolation_level=None)
        for pragma in ("secure_delete = ON", "synchronous = FULL", "temp_store = MEMORY", "cell_size_check = ON",
                       "journal_mode = DELETE"):
            self.conn.execute(f"PRAGMA {pragma}")

    @classmethod
    def build(cls, path: Path, ids, payload_jsons, X: np.ndarray) -> "OldVacuumStore":
        store = cls(path)
        c = store.conn
        c.execute("BEGIN IMMEDIATE")
        for stmt in cls.SCHEMA:
            c.execute(stmt)
        X = np.ascontiguousarray(X, dtype="<f4")
        c.executemany("INSERT INTO examples (id, dim, vector, payload) VALUES (?, ?, ?, ?)",
                      ((i, X.shape[1], X[r].tobytes(), pj) for r, (i, pj) in enumerate(zip(ids, payload_jsons))))
        c.execute("COMMIT")
        return store

    def delete(self, example_id: str) -> None:
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        if c.execute("DELETE FROM examples WHERE id = ?", (example_id,)).rowcount != 1:
            c.execute("ROLLBACK")
            raise KeyError(example_id)
        c.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('scrub_pending', '1')")
        c.execute("COMMIT")
        c.execute("VACUUM")
        c.execute("BEGIN IMMEDIATE")
        c.execute("DELETE FROM meta WHERE key = 'scrub_pending'")
        c.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()


# ---------------------------------------------------------------------------- key-file check
def key_slot_check(path: Path) -> dict:
    """Read-only: which key slots hold a key, which rows own which slot, the shred flag."""
    out: dict = {}
    data = keys_path(path).read_bytes()
    out["shred_pending"] = struct.unpack_from("<Q", data, 40)[0] != 0  # keyfile.py: shred flag at byte 40
    slots = np.frombuffer(data[HEADER_SIZE:HEADER_SIZE + (len(data) - HEADER_SIZE) // KEY_SIZE * KEY_SIZE],
                          dtype=np.uint8).reshape(-1, KEY_SIZE)
    nonzero = set(np.flatnonzero(slots.any(axis=1)).tolist())
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            owned = {slot for _, slot in conn.execute("SELECT row, key_slot FROM examples")}
        finally:
            conn.close()
    except sqlite3.Error as exc:
        out["error"] = repr(exc)
        return out
    out["orphan_keys"] = len(nonzero - owned)  # a key no row owns: a forgotten row's key survived
    out["keyless_rows"] = len(owned - nonzero)  # a row without its key: unreadable
    return out


def fsync_probe(workdir: Path, count: int = 50) -> dict:
    """What one small in-place write + fsync costs on the work directory's disk (the floor of a
    persisted forget: the key-file sync and the WAL commit are two of these)."""
    path = workdir / "fsync_probe"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.pwrite(fd, bytes(8192), 0)
        os.fsync(fd)
        ts = []
        for i in range(count):
            os.pwrite(fd, os.urandom(32), 4096 + 32 * (i % 64))
            t0 = time.perf_counter()
            os.fsync(fd)
            ts.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
        path.unlink()
    return summary(ts)


def copy_store(src: Path, dst: Path) -> None:
    shutil.copy(src, dst)
    shutil.copy(keys_path(src), keys_path(dst))


# ---------------------------------------------------------------------------- child processes
def child_writer(argv: list[str]) -> int:
    """``_writer PATH VICTIMS_JSON SECONDS INTERVAL``: forget one victim every INTERVAL s."""
    path, victims_file, seconds, interval = argv[0], argv[1], float(argv[2]), float(argv[3])
    victims = json.loads(Path(victims_file).read_text())
    index = ExampleIndex.open(path)
    print(f"ready {ERASE_CORE_DIR}", flush=True)
    go = sys.stdin.readline()  # the reader starts its loop, then says go
    assert go.strip() == "go"
    start = time.monotonic()
    events = []
    i = 0
    while True:
        due = start + (i + 0.5) * interval
        if due > start + seconds:
            break
        time.sleep(max(0.0, due - time.monotonic()))
        t0 = time.monotonic()
        index.forget([victims[i]], missing="ignore")
        t1 = time.monotonic()
        events.append([t0, t1])
        i += 1
    index.close()
    print(json.dumps({"events": events}), flush=True)
    return 0


def child_kill(argv: list[str]) -> int:
    """``_killchild PATH OP SPEC_JSON``: open, say ready, run one forget/add call, say done, wait."""
    path, op, spec = argv[0], argv[1], json.loads(argv[2])
    index = ExampleIndex.open(path)
    if op == "add":  # build the batch before saying ready, so the window is the call itself
        rng = np.random.default_rng(spec["seed"])
        X = rng.standard_normal((spec["count"], DIM)).astype(np.float32)
        ids = [f"new{spec['seed']}-{j:05d}" for j in range(spec["count"])]
        payloads = [{"input": f"added {j} " + "z" * spec["payload"], "target": "label-0"} for j in range(spec["count"])]
    print(f"ready {ERASE_CORE_DIR}", flush=True)
    t0 = time.monotonic()
    if op == "forget":
        index.forget(spec["victims"])
    else:
        index.add(X, payloads, ids=ids)
    print(f"done {time.monotonic() - t0:.6f}", flush=True)
    sys.stdin.readline()  # stay alive until killed (or told to exit)
    return 0


_CHILD_ENV: dict = {}


def _child_ready(line: str) -> bool:
    """The child's first line: "ready <the erase_core it imported>" (must be the snapshot)."""
    if not line.startswith("ready"):
        return False
    want = _CHILD_ENV.get(_CODE_ENV)
    if want and not line.split(" ", 1)[-1].startswith(want):
        raise RuntimeError(f"a child imported {line.split(' ', 1)[-1]}, not the snapshot under {want}")
    return True


def _spawn(role: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, role, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, bufsize=1, env={**os.environ, **_CHILD_ENV})


# ---------------------------------------------------------------------------- one configuration
class Config:
    def __init__(self, n: int, payload: int, X: np.ndarray, args, workdir: Path):
        self.n, self.payload, self.args = n, payload, args
        self.dir = workdir / f"n{n}_p{payload}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / "store.sqlite"
        self.X = X[:n]
        self.ids = make_ids(n)
        self.payloads = make_payloads(n, payload, args.seed)
        self.row: dict = {"n": n, "payload_bytes_target": payload, "d": DIM, "k": args.k, "strategy": "erase"}
        pj = [json.dumps(p, sort_keys=True) for p in self.payloads[:1000]]
        self.row["payload_json_bytes_mean"] = float(np.mean([len(s.encode()) for s in pj]))
        self.persisted: ExampleIndex | None = None
        self.memory: ExampleIndex | None = None
        self.forgotten: set[str] = set()

    def build(self) -> None:
        t0 = time.perf_counter()
        self.persisted = ExampleIndex(k=self.args.k, strategy="erase", seed=self.args.seed, path=self.path)
        self.persisted.add(self.X, self.payloads, ids=self.ids)
        self.row["build_persisted_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        self.memory = ExampleIndex(k=self.args.k, strategy="erase", seed=self.args.seed)
        self.memory.add(self.X, self.payloads, ids=self.ids)
        self.row["build_memory_s"] = time.perf_counter() - t0
        self.row["same_digest_after_build"] = self.persisted.digest() == self.memory.digest()
        self.row["store_bytes"] = {p.name: p.stat().st_size for p in self.persisted._replica.store.files()}

    # ------------------------------------------------------------------ 1. forget
    def section_forget(self) -> None:
        args = self.args
        rng = np.random.default_rng([args.seed, self.n, self.payload, 0xF0])
        victims = [self.ids[i] for i in rng.choice(self.n, size=min(args.forgets, self.n - 2 * args.k), replace=False)]
        t_p, t_m, recomputed = [], [], []
        store = self.persisted._replica.store
        loads = [0]
        real_load = store.load

        def counting_load():
            loads[0] += 1
            return real_load()

        store.load = counting_load  # instance attribute: counts full reloads during the forgets
        self.row["fsync_32B_before_forgets"] = fsync_probe(self.dir)  # the disk's state right now
        gc.collect()
        start = time.perf_counter()
        bar = tqdm(victims, desc=f"forget n={self.n} p={self.payload}", leave=False)
        for j, v in enumerate(bar):
            order = ((self.persisted, t_p), (self.memory, t_m))
            if j % 2:
                order = order[::-1]
            for index, sink in order:
                t0 = time.perf_counter()
                receipt = index.forget([v])
                sink.append(time.perf_counter() - t0)
                if index is self.memory:
                    recomputed.append(receipt.recomputed)
            self.forgotten.add(v)
            if j + 1 >= args.forget_min and time.perf_counter() - start > args.forget_budget_s:
                break
        if hasattr(bar, "close"):
            bar.close()
        del store.load
        self.row["store_loads_per_forget"] = loads[0] / max(1, len(t_p))
        self.row["forget_truncated_by_budget"] = len(t_p) < len(victims)
        diffs = np.asarray(t_p) - np.asarray(t_m)
        self.row["forget_persisted"] = summary(t_p)
        self.row["forget_memory"] = summary(t_m)
        self.row["forget_storage_overhead_p50_s"] = float(np.median(diffs))  # paired persisted - in-memory
        self.row["forget_recompute_frac"] = float(np.mean(recomputed)) if recomputed else 0.0
        self.row["same_digest_after_forgets"] = self.persisted.digest() == self.memory.digest()
        self.row["forget_persisted_samples_s"] = t_p
        self.row["forget_memory_samples_s"] = t_m

        # old VACUUM path (re-implemented baseline), its own loop: its whole-file rewrites would
        # otherwise leave the page cache and the disk queue busy for the next persisted forget
        old_path = self.dir / "old_vacuum.sqlite"
        t0 = time.perf_counter()
        old = OldVacuumStore.build(old_path, self.ids, [json.dumps(p, sort_keys=True) for p in self.payloads], self.X)
        self.row["old_build_s"] = time.perf_counter() - t0
        self.row["old_db_bytes"] = old_path.stat().st_size
        t_old = []
        start = time.perf_counter()
        remaining = [i for i in self.ids if i not in self.forgotten]
        old_victims = random.Random(args.seed).sample(remaining, min(len(victims), len(remaining)))
        bar = tqdm(old_victims, desc=f"old VACUUM n={self.n} p={self.payload}", leave=False)
        for v in bar:
            t0 = time.perf_counter()
            old.delete(v)
            t_old.append(time.perf_counter() - t0)
            if len(t_old) >= args.old_min and time.perf_counter() - start > args.old_budget_s:
                break
        if hasattr(bar, "close"):
            bar.close()
        old.close()
        old_path.unlink()
        self.row["forget_old_vacuum"] = summary(t_old)
        self.row["forget_old_vacuum_samples_s"] = t_old

    # ------------------------------------------------------------------ 2. open
    def section_open(self) -> None:
        """``ExampleIndex.open`` (median of a few), split inside each call: ``ExampleStore.open``
        (+ config read) and ``store.load`` are timed by wrapping them for the duration; the SQL
        fetch of the sealed rows is timed alone on a separate handle right after."""
        runs = []
        digest = self.persisted.digest()
        same = True
        orig_open, orig_load = ExampleStore.__dict__["open"], ExampleStore.__dict__["load"]
        spent: dict = {}

        def timed_open(cls, path):
            t = time.perf_counter()
            try:
                return orig_open.__func__(cls, path)
            finally:
                spent["store_open_s"] = time.perf_counter() - t

        def timed_load(store):
            t = time.perf_counter()
            try:
                return orig_load(store)
            finally:
                spent["load_s"] = time.perf_counter() - t

        for _ in range(self.args.open_repeats):
            gc.collect()
            spent.clear()
            ExampleStore.open, ExampleStore.load = classmethod(timed_open), timed_load
            try:
                t0 = time.perf_counter()
                index = ExampleIndex.open(self.path)
                total = time.perf_counter() - t0
            finally:
                ExampleStore.open, ExampleStore.load = orig_open, orig_load
            same &= index.digest() == digest
            index.close()
            del index
            gc.collect()
            store = ExampleStore.open(self.path)
            t0 = time.perf_counter()
            with store._reading() as conn:  # the SQL part of load alone: fetch the sealed rows
                conn.execute("SELECT version, dim FROM state WHERE k = 0").fetchone()
                conn.execute("SELECT row, key_slot, blob FROM examples ORDER BY row").fetchall()
            fetch = time.perf_counter() - t0
            store.close()
            runs.append({"total_s": total, "store_open_s": spent.get("store_open_s", float("nan")),
                         "load_s": spent.get("load_s", float("nan")), "sql_fetch_alone_s": fetch})
        best = sorted(runs, key=lambda r: r["total_s"])[len(runs) // 2]  # the median run, split
        self.row["open"] = {
            "total_s": best["total_s"], "runs": runs, "store_open_s": best["store_open_s"], "load_s": best["load_s"],
            "load_sql_fetch_s": min(best["sql_fetch_alone_s"], best["load_s"]),
            "load_decrypt_parse_s": best["load_s"] - min(best["sql_fetch_alone_s"], best["load_s"]),
            "rest_s": best["total_s"] - best["store_open_s"] - best["load_s"], "same_digest": same,
        }

    # ------------------------------------------------------------------ 3. select
    def section_select(self) -> None:
        args = self.args
        p, m = self.persisted, self.memory
        # no concurrent writer
        out: dict = {}
        for name, index in (("persisted", p), ("memory", m)):
            index.select()
            ts = []
            for _ in range(args.select_samples):
                t0 = time.perf_counter()
                index.select()
                ts.append(time.perf_counter() - t0)
            out[f"select_no_writer_{name}"] = summary(ts)
        # the freshness check alone
        N = args.fresh_calls
        pv = p._replica.store.published_version

        def per_call(fn) -> float:
            best = float("inf")
            for _ in range(5):  # best of 5 bulk loops, minus the bare loop
                t0 = time.perf_counter()
                for _ in range(N):
                    fn()
                best = min(best, time.perf_counter() - t0)
            return best / N

        def bare():
            return None

        base = per_call(bare)
        out["freshness"] = {
            "published_version_s": per_call(pv) - base,
            "published_version_compare_s": per_call(lambda: pv() != p._replica.version) - per_call(lambda: 0 != p._replica.version),
            "sync_noop_s": per_call(p._sync) - base,
            "len_persisted_s": per_call(p.__len__) - base,
            "len_memory_s": per_call(m.__len__) - base,
        }
        out["freshness"]["len_difference_s"] = out["freshness"]["len_persisted_s"] - out["freshness"]["len_memory_s"]

        # a concurrent writer process: one forget per interval
        remaining = [i for i in self.ids if i not in self.forgotten]
        n_forgets = int(args.select_seconds / args.writer_interval) + 2
        wvictims = random.Random(args.seed + 1).sample(remaining, n_forgets)
        vfile = self.dir / "writer_victims.json"
        vfile.write_text(json.dumps(wvictims))
        t_spawn = time.perf_counter()
        child = _spawn("_writer", str(self.path), str(vfile), str(args.select_seconds), str(args.writer_interval))
        line = child.stdout.readline().strip()
        if not _child_ready(line):
            child.kill()
            raise RuntimeError(f"writer did not start: {line!r}")
        out["writer_open_s"] = time.perf_counter() - t_spawn
        p.select()
        n_max = 5_000_000
        starts = np.empty(n_max)
        lat = np.empty(n_max)
        caught = np.zeros(n_max, dtype=bool)
        i = 0
        child.stdin.write("go\n")
        child.stdin.flush()
        begin = time.monotonic()
        end = begin + args.select_seconds + 0.3
        while i < n_max:
            v0 = p._replica.version
            t0 = time.monotonic()
            p.select()
            t1 = time.monotonic()
            starts[i], lat[i], caught[i] = t0, t1 - t0, p._replica.version != v0
            i += 1
            if t1 > end:
                break
        rest = child.stdout.read()
        child.wait(timeout=60)
        shm = self.path.with_name(self.path.name + "-shm")
        out["shm_present_after_writer_exit"] = shm.exists()  # False: the writer thought it was the last handle
        events = json.loads(rest.strip().splitlines()[-1])["events"] if rest.strip() else []
        starts, lat, caught = starts[:i], lat[:i], caught[:i]
        for victim in wvictims[:len(events)]:
            self.forgotten.add(victim)
        # selects that overlapped a writer's forget call (its transaction) in time
        overlap = np.zeros(i, dtype=bool)
        for a, b in events:
            overlap |= (starts < b) & (starts + lat > a)
        out["select_with_writer"] = summary(lat)
        out["select_with_writer"]["over_20ms"] = int((lat > 0.020).sum())
        out["select_with_writer"]["seconds"] = float(starts[-1] + lat[-1] - starts[0]) if i else 0.0
        out["select_catch_up"] = summary(lat[caught])  # the selects that applied another handle's forget
        out["select_no_catch_up"] = summary(lat[~caught])
        out["select_overlapping_a_forget"] = summary(lat[overlap])
        out["select_not_overlapping"] = summary(lat[~overlap & ~caught])
        out["writer_forget"] = summary([b - a for a, b in events])
        top = np.argsort(lat)[::-1][:10]
        out["slowest_selects"] = [{"t_s": float(starts[j] - begin), "latency_s": float(lat[j]),
                                   "caught_up": bool(caught[j]), "overlapped_forget": bool(overlap[j])} for j in top]
        out["catch_up_latencies_s"] = lat[caught].tolist()
        out["writer_events_rel_s"] = [[a - begin, b - begin] for a, b in events]
        out.update(self._catch_up_by_kind())
        out["same_digest_after_writer"] = p.digest() == _rebuilt_digest(p)
        self.row.update(out)
        self.row["_select_latencies"] = lat  # for the plot only (not written to the JSON)

    def _catch_up_by_kind(self) -> dict:
        """What a reader pays on its next select for one forget by another handle, split by
        whether that forget recomputed the clustering (the reader redoes the same update). A
        second handle in this process forgets, with its receipt saying which kind it was."""
        args, p = self.args, self.persisted
        if not args.catchup_forgets:
            return {}
        t0 = time.perf_counter()
        writer = ExampleIndex.open(self.path)
        second_open = time.perf_counter() - t0
        remaining = [i for i in self.ids if i not in self.forgotten]
        most = max(args.catchup_forgets, min(args.catchup_max, len(remaining) // 2))
        victims = random.Random(args.seed + 2).sample(remaining, min(most, len(remaining) - 2 * args.k))
        p.select()
        costs, kinds, forget_s = [], [], []
        start = time.perf_counter()
        bar = tqdm(victims, desc=f"catch-up n={self.n} p={self.payload}", leave=False)
        for v in bar:
            t0 = time.perf_counter()
            receipt = writer.forget([v])
            forget_s.append(time.perf_counter() - t0)
            self.forgotten.add(v)
            t0 = time.perf_counter()
            p.select()
            costs.append(time.perf_counter() - t0)
            kinds.append(bool(receipt.recomputed))
            if len(costs) >= args.catchup_forgets and (
                    sum(kinds) >= args.catchup_recomputes or time.perf_counter() - start > args.catchup_budget_s):
                break
        if hasattr(bar, "close"):
            bar.close()
        writer.close()
        costs_a, kinds_a = np.asarray(costs), np.asarray(kinds, dtype=bool)
        return {
            "second_handle_open_s": second_open,
            "catch_up_by_kind": {
                "forgets": len(costs), "recompute_frac": float(kinds_a.mean()) if len(kinds_a) else 0.0,
                "cheap": summary(costs_a[~kinds_a]), "recompute": summary(costs_a[kinds_a]),
                "writer_forget_cheap": summary(np.asarray(forget_s)[~kinds_a]),
                "writer_forget_recompute": summary(np.asarray(forget_s)[kinds_a]),
            },
        }

    def close(self) -> None:
        for index in (self.persisted, self.memory):
            if index is not None:
                index.close()
        self.persisted = self.memory = None


def _rebuilt_digest(index: ExampleIndex) -> str:
    return index.rebuilt().digest()


# ---------------------------------------------------------------------------- 4. kill -9 trials
def run_kill_trials(args, workdir: Path) -> dict:
    n, batch = args.kill_n, args.kill_batch
    kdir = workdir / "kill"
    kdir.mkdir(parents=True, exist_ok=True)
    X = make_embeddings(n, DIM, seed=args.seed + 7)
    ids = make_ids(n)
    payloads = make_payloads(n, args.kill_payload, args.seed + 7)
    template = kdir / "template.sqlite"
    index = ExampleIndex(k=args.k, seed=args.seed, path=template)
    index.add(X, payloads, ids=ids)
    before = index.digest()
    index.close()
    rng = random.Random(args.seed + 99)
    specs = {
        "forget": {"victims": rng.sample(ids, batch)},
        "add": {"count": batch, "seed": 12345, "payload": args.kill_payload},
    }
    # after-state digests and how long each call takes uninterrupted (the kill-delay window)
    after, call_s = {}, {}
    for op in ("forget", "add"):
        durations = []
        for r in range(3):
            path = kdir / f"calib_{op}{r}.sqlite"
            copy_store(template, path)
            child = _spawn("_killchild", str(path), op, json.dumps(specs[op]))
            line = child.stdout.readline().strip()
            if not _child_ready(line):
                raise RuntimeError(f"kill child did not start: {line!r}")
            t0 = time.perf_counter()
            done = child.stdout.readline().strip()
            durations.append(time.perf_counter() - t0)
            assert done.startswith("done"), done
            child.stdin.write("\n")
            child.stdin.flush()
            child.wait(timeout=60)
            with ExampleIndex.open(path) as reopened:
                d = reopened.digest()
            if r == 0:
                after[op] = d
            elif d != after[op]:
                raise RuntimeError(f"uninterrupted {op} gave two different digests")
            for f in (path, keys_path(path), path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
                f.unlink(missing_ok=True)
        call_s[op] = statistics.median(durations)
    trials = []
    delay_rng = np.random.default_rng([args.seed, 0x4B1])
    for t in tqdm(range(args.kill_trials), desc="kill -9 trials", leave=False):
        op = "forget" if t % 2 == 0 else "add"
        path = kdir / f"trial{t}.sqlite"
        copy_store(template, path)
        # log-uniform: dense near the start of the call, where its transaction commits
        delay = float(np.exp(delay_rng.uniform(np.log(2e-4), np.log(args.kill_window * call_s[op]))))
        child = _spawn("_killchild", str(path), op, json.dumps(specs[op]))
        ready = child.stdout.readline().strip()
        if not _child_ready(ready):
            raise RuntimeError(f"kill child did not start: {ready!r}")
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait()
        tail = child.stdout.read()
        trial = {"trial": t, "op": op, "delay_s": delay, "completed_before_kill": "done" in tail}
        trial["before_reopen"] = key_slot_check(path)
        try:
            t0 = time.perf_counter()
            reopened = ExampleIndex.open(path)
            trial["reopen_s"] = time.perf_counter() - t0
            d = reopened.digest()
            trial["outcome"] = "before" if d == before else ("after" if d == after[op] else "torn")
            trial["verify"] = bool(reopened.verify())
            reopened.close()
        except Exception as exc:  # report, don't stop: this is what the trials are for
            trial["outcome"] = "error"
            trial["error"] = repr(exc)
            trial["verify"] = False
        trial["after_reopen"] = key_slot_check(path)
        a = trial["after_reopen"]
        trial["keys_ok"] = a.get("orphan_keys") == 0 and a.get("keyless_rows") == 0 and not a.get("shred_pending")
        trial["ok"] = trial["outcome"] in ("before", "after") and trial["verify"] and trial["keys_ok"]
        trials.append(trial)
        for f in (path, keys_path(path), path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            f.unlink(missing_ok=True)
    counts: dict = {}
    for tr in trials:
        key = f"{tr['op']}:{tr['outcome']}"
        counts[key] = counts.get(key, 0) + 1
    return {
        "n": n, "batch": batch, "payload_bytes_target": args.kill_payload, "trials": len(trials),
        "uninterrupted_call_s": call_s,
        "delay_window": f"log-uniform(0.2 ms, {args.kill_window} x uninterrupted call)",
        "outcomes": counts,
        "before": sum(tr["outcome"] == "before" for tr in trials),
        "after": sum(tr["outcome"] == "after" for tr in trials),
        "torn": sum(tr["outcome"] == "torn" for tr in trials),
        "errors": sum(tr["outcome"] == "error" for tr in trials),
        "verify_failed": sum(not tr["verify"] for tr in trials),
        "key_check_failed": sum(not tr["keys_ok"] for tr in trials),
        "completed_before_kill": sum(tr["completed_before_kill"] for tr in trials),
        "shred_pending_at_kill": sum(bool(tr["before_reopen"].get("shred_pending")) for tr in trials),
        "orphan_keys_at_kill": sum(bool(tr["before_reopen"].get("orphan_keys")) for tr in trials),
        "all_ok": all(tr["ok"] for tr in trials),
        "trial_list": trials,
    }


# ---------------------------------------------------------------------------- output
def _fmt(s) -> str:
    if s is None or s != s:
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.1f}us" if s < 1e-5 else f"{s * 1e6:.0f}us"
    if s < 1:
        return f"{s * 1e3:.2f}ms" if s < 1e-2 else f"{s * 1e3:.1f}ms"
    return f"{s:.2f}s"


def _g(row: dict, *keys):
    v = row
    for k in keys:
        if not isinstance(v, dict) or k not in v:
            return None
        v = v[k]
    return v


COLUMNS = [
    ("n", lambda r: f"{r['n']:,}"),
    ("payload", lambda r: f"{r['payload_json_bytes_mean']:.0f} B"),
    ("persisted forget p50", lambda r: _fmt(_g(r, "forget_persisted", "p50_s"))),
    ("p99", lambda r: _fmt(_g(r, "forget_persisted", "p99_s"))),
    ("mean", lambda r: _fmt(_g(r, "forget_persisted", "mean_s"))),
    ("in-memory p50", lambda r: _fmt(_g(r, "forget_memory", "p50_s"))),
    ("p99", lambda r: _fmt(_g(r, "forget_memory", "p99_s"))),
    ("mean", lambda r: _fmt(_g(r, "forget_memory", "mean_s"))),
    ("pers-mem p50", lambda r: _fmt(r.get("forget_storage_overhead_p50_s"))),
    ("fsync p50", lambda r: _fmt(_g(r, "fsync_32B_before_forgets", "p50_s"))),
    ("reloads/forget", lambda r: f"{r['store_loads_per_forget']:.1f}" if "store_loads_per_forget" in r else "-"),
    ("old VACUUM p50", lambda r: _fmt(_g(r, "forget_old_vacuum", "p50_s"))),
    ("old mean (runs)", lambda r: f"{_fmt(_g(r, 'forget_old_vacuum', 'mean_s'))} ({_g(r, 'forget_old_vacuum', 'count')})"
     if _g(r, "forget_old_vacuum", "count") else "-"),
    ("open", lambda r: _fmt(_g(r, "open", "total_s"))),
    ("load (sql)", lambda r: f"{_fmt(_g(r, 'open', 'load_s'))} ({_fmt(_g(r, 'open', 'load_sql_fetch_s'))})"
     if _g(r, "open") else "-"),
    ("rest", lambda r: _fmt(_g(r, "open", "rest_s"))),
    ("select p50 mem/pers", lambda r: f"{_fmt(_g(r, 'select_no_writer_memory', 'p50_s'))}/"
     f"{_fmt(_g(r, 'select_no_writer_persisted', 'p50_s'))}" if _g(r, "select_no_writer_memory") else "-"),
    ("no-writer p99/max", lambda r: f"{_fmt(_g(r, 'select_no_writer_persisted', 'p99_s'))}/"
     f"{_fmt(_g(r, 'select_no_writer_persisted', 'max_s'))}" if _g(r, "select_no_writer_persisted") else "-"),
    ("w/ writer p50", lambda r: _fmt(_g(r, "select_with_writer", "p50_s"))),
    ("p99", lambda r: _fmt(_g(r, "select_with_writer", "p99_s"))),
    ("max", lambda r: _fmt(_g(r, "select_with_writer", "max_s"))),
    ("catch-up p50/max (n)", lambda r: f"{_fmt(_g(r, 'select_catch_up', 'p50_s'))}/{_fmt(_g(r, 'select_catch_up', 'max_s'))}"
     f" ({_g(r, 'select_catch_up', 'count')})" if _g(r, "select_catch_up") else "-"),
    ("catch-up cheap p50/max", lambda r: f"{_fmt(_g(r, 'catch_up_by_kind', 'cheap', 'p50_s'))}/"
     f"{_fmt(_g(r, 'catch_up_by_kind', 'cheap', 'max_s'))}" if _g(r, "catch_up_by_kind") else "-"),
    ("recompute p50/max (n)", lambda r: f"{_fmt(_g(r, 'catch_up_by_kind', 'recompute', 'p50_s'))}/"
     f"{_fmt(_g(r, 'catch_up_by_kind', 'recompute', 'max_s'))} ({_g(r, 'catch_up_by_kind', 'recompute', 'count')})"
     if _g(r, "catch_up_by_kind") else "-"),
    ("fresh check", lambda r: _fmt(_g(r, "freshness", "sync_noop_s"))),
]


def format_table(rows: list[dict]) -> str:
    header = [c[0] for c in COLUMNS]
    body = [[fn(r) for _, fn in COLUMNS] for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(header)]
    lines = [" | ".join(h.rjust(w) for h, w in zip(header, widths)), "-+-".join("-" * w for w in widths)]
    lines += [" | ".join(c.rjust(w) for c, w in zip(b, widths)) for b in body]
    return "\n".join(lines)


def markdown_table(rows: list[dict]) -> str:
    out = ["| " + " | ".join(c[0] for c in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    out += ["| " + " | ".join(fn(r) for _, fn in COLUMNS) + " |" for r in rows]
    return "\n".join(out)


def format_kill(k: dict) -> str:
    return (f"kill -9 trials (n={k['n']:,}, batch {k['batch']}, {k['trials']} trials, delay {k['delay_window']}; "
            f"uninterrupted call: forget {_fmt(k['uninterrupted_call_s']['forget'])}, add "
            f"{_fmt(k['uninterrupted_call_s']['add'])}):\n"
            f"  outcomes {k['outcomes']}  before={k['before']} after={k['after']} torn={k['torn']} errors={k['errors']}\n"
            f"  verify failed {k['verify_failed']}, key-slot check failed {k['key_check_failed']}, "
            f"call had completed before the kill {k['completed_before_kill']}, "
            f"shred flag raised at kill {k['shred_pending_at_kill']}, orphan keys at kill (finished by reopen) "
            f"{k['orphan_keys_at_kill']}; all ok: {k['all_ok']}")


def verdicts(rows: list[dict], kill: dict | None) -> list[str]:
    out = []
    for r in rows:
        tag = f"n={r['n']:,} payload {r['payload_json_bytes_mean']:.0f} B"
        if r["n"] >= 100_000:
            p50 = _g(r, "forget_persisted", "p50_s")
            if p50 is not None:
                out.append(f"{tag}: persisted forget p50 {_fmt(p50)} vs target <= 5 ms: "
                           f"{'met' if p50 <= 5e-3 else 'MISSED'}")
            o = _g(r, "open", "total_s")
            if o is not None:
                out.append(f"{tag}: open {_fmt(o)} vs target <= 1 s: {'met' if o <= 1.0 else 'MISSED'}")
        f = _g(r, "freshness", "sync_noop_s")
        if f is not None:
            out.append(f"{tag}: freshness check {_fmt(f)} vs target <= 10 us: {'met' if f <= 10e-6 else 'MISSED'}")
        m = _g(r, "select_with_writer", "max_s")
        if m is not None:
            out.append(f"{tag}: max select under a writer {_fmt(m)} vs target <= 20 ms: {'met' if m <= 0.02 else 'MISSED'}"
                       f" (catch-up selects max {_fmt(_g(r, 'select_catch_up', 'max_s'))}, selects overlapping a "
                       f"forget max {_fmt(_g(r, 'select_overlapping_a_forget', 'max_s'))}, others max "
                       f"{_fmt(_g(r, 'select_not_overlapping', 'max_s'))}; {_g(r, 'select_with_writer', 'over_20ms')}"
                       f" of {_g(r, 'select_with_writer', 'count')} over 20 ms)")
        c = _g(r, "catch_up_by_kind")
        if c:
            worst = max(_g(c, "cheap", "max_s") or 0.0, _g(c, "recompute", "max_s") or 0.0)
            out.append(f"{tag}: catch-up select after one forget by another handle: cheap forgets max "
                       f"{_fmt(_g(c, 'cheap', 'max_s'))}, recomputing forgets ({100 * c['recompute_frac']:.1f}%) p50 "
                       f"{_fmt(_g(c, 'recompute', 'p50_s'))} max {_fmt(_g(c, 'recompute', 'max_s'))}: "
                       f"{'met' if worst <= 0.02 else 'MISSED'} vs 20 ms")
    if kill:
        out.append(f"kill -9: {kill['trials']} trials, torn {kill['torn']}, errors {kill['errors']}, all ok {kill['all_ok']}")
    return out


def plot(rows: list[dict], kill: dict | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(17, 4.8))
    labels = [f"{r['n'] // 1000}k\n{r['payload_json_bytes_mean'] / 1000:.1f} KB" if r['payload_json_bytes_mean'] >= 1000
              else f"{r['n'] // 1000}k\n{r['payload_json_bytes_mean']:.0f} B" for r in rows]
    x = np.arange(len(rows))
    ax = axes[0]
    series = [("forget_memory", "in-memory forget", "tab:green"), ("forget_persisted", "persisted forget", "tab:blue"),
              ("forget_old_vacuum", "old VACUUM path (re-impl.)", "tab:red")]
    w = 0.27
    for s, (key, name, color) in enumerate(series):
        p50 = [(_g(r, key, "p50_s") or np.nan) for r in rows]
        p99 = [(_g(r, key, "p99_s") or np.nan) for r in rows]
        ax.bar(x + (s - 1) * w, p50, w, color=color, label=f"{name} p50")
        ax.scatter(x + (s - 1) * w, p99, marker="_", s=120, color="k", zorder=3, label="p99" if s == 0 else None)
    ax.axhline(5e-3, color="grey", ls="--", lw=0.8)
    ax.text(0.01, 5.6e-3, "5 ms p50 target (100k)", fontsize=7, color="grey", transform=ax.get_yaxis_transform())
    ax.set_yscale("log")
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel("seconds per forget of one example")
    ax.set_title("forget (p50 bar, p99 tick)", fontsize=10)
    ax.legend(fontsize=7, loc="best")
    ax.grid(True, axis="y", which="both", alpha=0.3)

    ax = axes[1]
    parts = [("store_open_s", "ExampleStore.open"), ("load_sql_fetch_s", "load: SQL fetch"),
             ("load_decrypt_parse_s", "load: decrypt + parse"), ("rest_s", "rest (hash, cluster)")]
    bottom = np.zeros(len(rows))
    for key, name in parts:
        vals = np.array([max(0.0, _g(r, "open", key) or 0.0) for r in rows])
        ax.bar(x, vals, 0.6, bottom=bottom, label=name)
        bottom += vals
    ax.scatter(x, [(_g(r, "open", "total_s") or np.nan) for r in rows], marker="x", color="k", zorder=3,
               label="ExampleIndex.open (median)")
    ax.axhline(1.0, color="grey", ls="--", lw=0.8)
    ax.text(0.01, 1.02, "1 s target (100k)", fontsize=7, color="grey", transform=ax.get_yaxis_transform())
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel("seconds")
    ax.set_title("ExampleIndex.open breakdown", fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(True, axis="y", alpha=0.3)

    ax = axes[2]
    for r, lab in zip(rows, labels):
        lat = r.get("_select_latencies")
        if lat is None or not len(lat):
            continue
        v = np.sort(lat)
        ax.plot(v, 1.0 - np.arange(len(v)) / len(v), label=lab.replace("\n", " "))
    ax.axvline(0.02, color="grey", ls="--", lw=0.8)
    ax.text(0.021, 0.5, "20 ms", fontsize=7, color="grey", transform=ax.get_xaxis_transform())
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("select() latency, s")
    ax.set_ylabel("fraction of selects slower")
    ax.set_title("select() while another process forgets 1/s", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    title = "ExampleIndex persistence (d=384, k=4, erase)"
    if kill:
        title += (f"; kill -9: {kill['trials']} trials, before {kill['before']}, after {kill['after']}, "
                  f"torn {kill['torn']}, errors {kill['errors']}")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def erase_core_hash(root: Path = ERASE_CORE_DIR) -> str:
    import hashlib

    h = hashlib.sha256()
    for p in sorted(root.rglob("*.py")):
        h.update(str(p.relative_to(root)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


#: the package this process imported, hashed right after the import
_IMPORTED_HASH = erase_core_hash()


def snapshot_erase_core(workdir: Path) -> dict:
    """Copy erase_core into the work directory; child processes import that copy, so a long run
    measures one version of the code even while the working tree changes."""
    code = workdir / "_code"
    shutil.copytree(ERASE_CORE_DIR, code / "erase_core", ignore=shutil.ignore_patterns("__pycache__"))
    _CHILD_ENV[_CODE_ENV] = str(code)
    snap = erase_core_hash(code / "erase_core")
    if snap != _IMPORTED_HASH:
        raise SystemExit("erase_core changed between this process's import and the snapshot: start again")
    return {"erase_core_sha256": snap, "snapshot": str(code)}


def machine_info(workdir: Path) -> dict:
    import cryptography

    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0],
        "numpy": np.__version__, "sqlite": sqlite3.sqlite_version, "cryptography": cryptography.__version__,
        "loadavg_at_start": os.getloadavg(), "workdir": str(workdir),
    }
    try:
        best = ("", "")
        for line in Path("/proc/mounts").read_text().splitlines():
            dev, mnt, fs = line.split()[:3]
            if str(workdir).startswith(mnt) and len(mnt) >= len(best[0]):
                best = (mnt, f"{fs} on {dev} at {mnt}")
        info["workdir_fs"] = best[1]
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["processor"] = line.split(":", 1)[1].strip()
                break
        info["git_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                            timeout=10).stdout.strip()
        info["erase_core_dirty"] = bool(subprocess.run(["git", "status", "--porcelain", "erase_core"], cwd=ROOT,
                                                       capture_output=True, text=True, timeout=10).stdout.strip())
    except Exception:
        pass
    return info


def write(path: Path, info: dict, args, rows: list[dict], kill: dict | None) -> None:
    opts = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    clean = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
    payload = {"machine": info, "options": opts, "targets": TARGETS,
               "rows": clean, "kill": kill,
               "verdicts": verdicts(rows, kill), "table_markdown": markdown_table(rows)}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    tmp.replace(path)


# ---------------------------------------------------------------------------- main
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run: n = 2k, fewer samples, 5 kill trials")
    p.add_argument("--sizes", type=int, nargs="+", default=None, help="pool sizes (default 10000 100000)")
    p.add_argument("--payloads", type=int, nargs="+", default=None, help="payload JSON bytes (default 200 4096)")
    p.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    p.add_argument("--k", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--forgets", type=int, default=None, help="interleaved persisted/in-memory forgets (default 200)")
    p.add_argument("--forget-budget-s", type=float, default=150.0,
                   help="stop the interleaved forgets of a configuration after this many seconds")
    p.add_argument("--forget-min", type=int, default=20, help="interleaved forgets done whatever the budget")
    p.add_argument("--threads", type=int, default=1, help="numpy BLAS threads, here and in the children (0 = default)")
    p.add_argument("--old-budget-s", type=float, default=None,
                   help="stop the old VACUUM path after this many seconds per configuration (default 40)")
    p.add_argument("--old-min", type=int, default=5, help="old VACUUM forgets done whatever the budget")
    p.add_argument("--open-repeats", type=int, default=3)
    p.add_argument("--select-seconds", type=float, default=None, help="select loop under a writer (default 10)")
    p.add_argument("--writer-interval", type=float, default=1.0, help="seconds between the writer's forgets")
    p.add_argument("--catchup-forgets", type=int, default=None,
                   help="forgets by a second handle, each followed by a timed select (at least this many; "
                        "default 300, --quick 30)")
    p.add_argument("--catchup-recomputes", type=int, default=5,
                   help="...then go on until this many of them recomputed the clustering")
    p.add_argument("--catchup-max", type=int, default=5000, help="...or this many forgets")
    p.add_argument("--catchup-budget-s", type=float, default=90.0, help="...or this many seconds")
    p.add_argument("--select-samples", type=int, default=20_000, help="select() calls timed with no writer")
    p.add_argument("--fresh-calls", type=int, default=200_000, help="calls per bulk loop of the freshness timing")
    p.add_argument("--kill-trials", type=int, default=None, help="kill -9 trials (default 50, --quick 5; 0 = none)")
    p.add_argument("--kill-n", type=int, default=None, help="pool of the kill-trial template (default 10000)")
    p.add_argument("--kill-batch", type=int, default=500, help="ids forgotten / rows added by one killed call")
    p.add_argument("--kill-payload", type=int, default=200)
    p.add_argument("--kill-window", type=float, default=1.2,
                   help="kill delay ~ log-uniform(0.2 ms, W x uninterrupted call)")
    p.add_argument("--workdir", type=Path, default=None, help="where the stores go (default: a temp dir, removed)")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--out", type=Path, default=None, help="JSON (default results/store.json, store_quick.json)")
    p.add_argument("--plot", type=Path, default=None, help="PNG path (default: --out with .png)")
    args = p.parse_args(argv)
    q = args.quick
    args.sizes = args.sizes or ([2000] if q else [10_000, 100_000])
    args.payloads = args.payloads or [200, 4096]
    args.forgets = args.forgets or (50 if q else 200)
    args.old_budget_s = args.old_budget_s if args.old_budget_s is not None else (5.0 if q else 40.0)
    args.select_seconds = args.select_seconds or (3.0 if q else 10.0)
    args.kill_trials = args.kill_trials if args.kill_trials is not None else (5 if q else 50)
    args.kill_n = args.kill_n or (2000 if q else 10_000)
    args.catchup_forgets = args.catchup_forgets if args.catchup_forgets is not None else (30 if q else 300)
    if q:
        args.select_samples = min(args.select_samples, 2000)
        args.fresh_calls = min(args.fresh_calls, 20_000)
    args.out = args.out or RESULTS / ("store_quick.json" if q else "store.json")
    return args


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["--backend", "postgres"]:  # the PostgreSQL store: its own script and options
        from bench_postgres import main as postgres_main

        return postgres_main(argv[2:])
    args = parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    plot_path = args.plot or args.out.with_suffix(".png")
    workdir = Path(tempfile.mkdtemp(prefix="bench_store_", dir=args.workdir))
    info = machine_info(workdir)
    info["code"] = snapshot_erase_core(workdir)
    info["threads"] = limit_threads(args.threads)
    info["fsync_32B"] = fsync_probe(workdir)
    _CHILD_ENV[_THREADS_ENV] = str(args.threads)
    print(f"machine: {info['cpu_count']} cpus, sqlite {info['sqlite']}, load {info['loadavg_at_start']}, "
          f"work dir {workdir} ({info.get('workdir_fs', '?')}), fsync of a 32-byte write p50 "
          f"{_fmt(info['fsync_32B']['p50_s'])}", flush=True)
    rows: list[dict] = []
    kill = None
    try:
        measure = [p for p in args.parts if p != "kill"]
        if measure:
            X = make_embeddings(max(args.sizes), DIM, seed=args.seed)
            bar = tqdm(total=len(args.sizes) * len(args.payloads), desc="configurations")
            for n in args.sizes:
                for payload in args.payloads:
                    cfg = Config(n, payload, X, args, workdir)
                    t0 = time.perf_counter()
                    cfg.build()
                    if "forget" in args.parts:
                        cfg.section_forget()
                    # select before open: ExampleStore.open reads the database header with a plain
                    # open()/close(), which drops this process's POSIX locks on the file; the
                    # writer process's close would then remove -wal/-shm under the live handle
                    if "select" in args.parts:
                        cfg.section_select()
                    if "open" in args.parts:
                        cfg.section_open()
                    cfg.row["config_s"] = time.perf_counter() - t0
                    cfg.row["loadavg_after"] = os.getloadavg()
                    cfg.close()
                    shutil.rmtree(cfg.dir, ignore_errors=True)
                    rows.append(cfg.row)
                    bar.update(1)
                    print("\n" + format_table(rows), flush=True)
                    write(args.out, info, args, rows, kill)
                    del cfg
                    gc.collect()
            bar.close()
        if "kill" in args.parts and args.kill_trials > 0:
            kill = run_kill_trials(args, workdir)
            print("\n" + format_kill(kill), flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    info["loadavg_at_end"] = os.getloadavg()
    info["erase_core_sha256_working_tree_at_end"] = erase_core_hash()
    info["working_tree_changed_during_run"] = info["erase_core_sha256_working_tree_at_end"] != _IMPORTED_HASH
    if info["working_tree_changed_during_run"]:
        print(f"note: erase_core in the working tree changed during this run; every process of the run used the "
              f"version imported at the start (sha256 {_IMPORTED_HASH}, snapshot for the children)", flush=True)
    print()
    if rows:
        print(format_table(rows))
    if kill:
        print(format_kill(kill))
    print()
    for line in verdicts(rows, kill):
        print(line)
    write(args.out, info, args, rows, kill)
    plot(rows, kill, plot_path)
    print(f"\nwrote {args.out} and {plot_path}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_writer":
        _child_setup()
        sys.exit(child_writer(sys.argv[2:]))
    if len(sys.argv) > 1 and sys.argv[1] == "_killchild":
        _child_setup()
        sys.exit(child_kill(sys.argv[2:]))
    sys.exit(main())
