#!/usr/bin/env python
"""The PostgreSQL store's costs (``bench_store.py --backend postgres`` runs this), next to the
SQLite store on the same data.

For each pool size n (d = 384 synthetic unit vectors, ~200-byte payloads, k = 4, ``erase``):

* **forget**: ``ExampleIndex.forget`` of one random id, p50/p99, on the PostgreSQL store and on
  a SQLite store of the same data; for PostgreSQL split into the commit (the transaction,
  including the bucket re-key) and the shred step (``VACUUM FULL`` of the key table,
  ``pg_switch_wal()``, ``CHECKPOINT``), and the bucket re-key alone (unwrap + wrap + UPDATE of
  the ~n/1024 rows of the forgotten row's bucket);
* **freshness**: the check a read makes before it starts (``settled_version``: one query on the
  version row, one round trip), p50/p99, beside the SQLite store's memory read;
* **open**: ``ExampleIndex.open`` the long way (decrypt every row, refit, write the open image),
  then again from the open image.

The server is a throwaway cluster (tests/pg_cluster.py: Unix socket, ``fsync = on``,
``wal_recycle = off``, 1 MiB WAL segments) unless ``--dsn`` names one. Writes a table and
``benchmarks/results/store_postgres.json``.

Usage::

    python benchmarks/bench_postgres.py                  # n = 10k, 100k
    python benchmarks/bench_postgres.py --sizes 2000 --forgets 10
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for extra in (ROOT, ROOT / "tests", ROOT / "benchmarks"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from erase_core import ExampleIndex  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
DIM = 384


def pct(values, q) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def summary(values) -> dict:
    return {"p50": pct(values, 50), "p99": pct(values, 99), "mean": float(statistics.fmean(values)), "count": len(values)}


class Timed:
    """Wraps a function (or method) of ``owner`` and records each call's seconds."""

    def __init__(self, owner, name: str):
        self.owner, self.name, self.real, self.seconds = owner, name, getattr(owner, name), []
        real, seconds = self.real, self.seconds

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return real(*args, **kwargs)
            finally:
                seconds.append(time.perf_counter() - start)

        setattr(owner, name, timed)

    def restore(self) -> None:
        setattr(self.owner, self.name, self.real)


def data(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, DIM)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    ids = [f"ex{i:07d}" for i in range(n)]
    payloads = [{"input": f"{i} " + "".join(rng.choice(list("abcdefghij "), 160)), "target": f"label-{i % 7}"}
                for i in range(n)]
    return X, ids, payloads


def build(location, X, ids, payloads) -> ExampleIndex:
    index = ExampleIndex(k=4, seed=0, path=location)
    for lo in range(0, len(ids), 20_000):
        index.add(X[lo:lo + 20_000], payloads[lo:lo + 20_000], ids=ids[lo:lo + 20_000])
    return index


def forget_loop(index: ExampleIndex, victims: list[str]) -> list[float]:
    out = []
    for victim in victims:
        start = time.perf_counter()
        index.forget([victim])
        out.append(time.perf_counter() - start)
    return out


def run_size(n: int, dsn: str, workdir: Path, forgets: int, reads: int) -> dict:
    from erase_core.storage.postgres import shred, store as pg_store

    X, ids, payloads = data(n)
    row: dict = {"n": n, "d": DIM}
    start = time.perf_counter()
    index = build(dsn, X, ids, payloads)
    row["pg_build_s"] = time.perf_counter() - start
    victims = random.Random(n).sample(ids, 2 * forgets)
    purge = Timed(shred, "purge")
    rekey = Timed(pg_store.PgWriteTransaction, "_rekey_buckets")
    total = forget_loop(index, victims[:forgets])
    purge.restore()
    rekey.restore()
    row["pg_forget_s"] = summary(total)
    row["pg_shred_step_s"] = summary(purge.seconds)
    row["pg_commit_s"] = summary([t - s for t, s in zip(total, purge.seconds)])
    row["pg_rekey_one_bucket_s"] = summary(rekey.seconds)
    from erase_core.storage.postgres import PostgresStore

    store = PostgresStore.open(dsn)  # a handle of its own: the check every read of an index makes
    fresh = []
    for _ in range(reads):
        t0 = time.perf_counter()
        store.settled_version()
        fresh.append(time.perf_counter() - t0)
    row["pg_freshness_check_s"] = summary(fresh)
    store.close()
    index.close()
    start = time.perf_counter()
    with ExampleIndex.open(dsn) as reopened:
        row["pg_open_s"] = time.perf_counter() - start  # the long way (it writes the open image)
        row["pg_verify"] = bool(reopened.verify())
    timings: dict = {}
    start = time.perf_counter()
    ExampleIndex.open(dsn, timings=timings).close()
    row["pg_open_image_s"] = time.perf_counter() - start
    row["pg_open_image_used"] = "build_memory_s" in timings
    # the SQLite store on the same data, same forgets
    path = workdir / f"pool-{n}.sqlite"
    lite = build(path, X, ids, payloads)
    row["sqlite_forget_s"] = summary(forget_loop(lite, victims[forgets:]))
    lite.close()
    from erase_core.storage import ExampleStore

    check = []
    with ExampleStore.open(path) as store:
        for _ in range(reads):
            t0 = time.perf_counter()
            store.settled_version()
            check.append(time.perf_counter() - t0)
    row["sqlite_freshness_check_s"] = summary(check)
    return row


def fmt(s: float) -> str:
    return f"{s * 1e3:.2f} ms" if s >= 1e-3 else f"{s * 1e6:.1f} µs"


def table(rows: list[dict]) -> str:
    head = ("n", "PG forget p50", "p99", "commit p50", "shred step p50", "re-key p50", "SQLite forget p50",
            "PG fresh p50", "SQLite fresh p50", "PG open (long)", "PG open (image)")
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    for r in rows:
        lines.append(" | ".join((
            f"{r['n']:,}", fmt(r["pg_forget_s"]["p50"]), fmt(r["pg_forget_s"]["p99"]), fmt(r["pg_commit_s"]["p50"]),
            fmt(r["pg_shred_step_s"]["p50"]), fmt(r["pg_rekey_one_bucket_s"]["p50"]), fmt(r["sqlite_forget_s"]["p50"]),
            fmt(r["pg_freshness_check_s"]["p50"]), fmt(r["sqlite_freshness_check_s"]["p50"]), f"{r['pg_open_s']:.2f} s",
            f"{r['pg_open_image_s']:.2f} s" + ("" if r["pg_open_image_used"] else " (no image)"))))
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--forgets", type=int, default=30)
    p.add_argument("--reads", type=int, default=2000)
    p.add_argument("--dsn", default=None, help="an existing server's DSN (default: a throwaway cluster)")
    p.add_argument("--out", type=Path, default=RESULTS / "store_postgres.json")
    args = p.parse_args(argv)
    cluster = None
    if args.dsn is None:
        from pg_cluster import Cluster

        cluster = Cluster(fsync=True)
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-pg-") as work:
            for n in args.sizes:
                dsn = args.dsn if args.dsn and len(args.sizes) == 1 else (cluster.new_schema() if cluster else args.dsn)
                rows.append(run_size(n, dsn, Path(work), args.forgets, args.reads))
                print(table(rows[-1:]), flush=True)
    finally:
        if cluster is not None:
            cluster.remove()
    print(table(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "machine": platform.platform(), "python": platform.python_version(),
                                    "server": "throwaway PostgreSQL 15 cluster, Unix socket, fsync on" if cluster
                                    else "given DSN", "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
                                   indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
