#!/usr/bin/env python
"""Forgetting a person: ``forget_subject`` cost by how many examples the subject has.

At n examples (d = 384 synthetic unit vectors, k = 4, strategy ``erase``), subjects own 1, 10,
100 and 1,000 examples. For each size, ``forget_subject`` runs on a persisted index (store on
disk, one transaction with the audit entry) and on an in-memory index holding the same data,
interleaved (persisted, memory, memory, persisted, ...), and the cost is compared with a
rebuild from scratch on the remaining pool (``ExampleIndex.rebuilt()``, the fit a retraining-style
deletion would pay). Prints a table, writes ``benchmarks/results/subjects.json`` and a PNG.

    python benchmarks/bench_subjects.py [--n 100000] [--repeats 5] [--quick]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_core import make_embeddings  # noqa: E402
from erase_core import ExampleIndex  # noqa: E402

SIZES = (1, 10, 100, 1000)


def assign_subjects(n: int, repeats: int, rng) -> tuple[list[str | None], dict[int, list[str]]]:
    """Subjects owning exactly 1, 10, 100, 1000 examples (``repeats`` of each), the rest None."""
    subjects: list[str | None] = [None] * n
    order = rng.permutation(n)
    at = 0
    owners: dict[int, list[str]] = {}
    for size in SIZES:
        for r in range(repeats):
            name = f"subject-{size}-{r}"
            for i in order[at : at + size]:
                subjects[int(i)] = name
            at += size
            owners.setdefault(size, []).append(name)
    assert at <= n, "pool too small for the subject sizes"
    return subjects, owners


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--repeats", type=int, default=5, help="subjects of each size (each forgotten once)")
    p.add_argument("--rebuilds", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="n = 10k, 3 repeats")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "subjects.json")
    args = p.parse_args()
    if args.quick:
        args.n, args.repeats, args.rebuilds = 10_000, 3, 1
    rng = np.random.default_rng(0)
    X = make_embeddings(args.n, 384, seed=2)
    ids = [f"ex{i:07d}" for i in range(args.n)]
    payloads = [{"input": f"question {i}", "output": f"answer {i}"} for i in range(args.n)]
    subjects, owners = assign_subjects(args.n, args.repeats, rng)
    work = Path(tempfile.mkdtemp(prefix="bench_subjects_"))
    try:
        with threadpool_limits(1):
            disk = ExampleIndex(k=4, path=work / "pool.sqlite")
            memory = ExampleIndex(k=4)
            for index in tqdm([disk, memory], desc="build"):
                index.add(X, payloads, ids=ids, subjects=subjects)
            times: dict[str, dict[int, list[float]]] = {"persisted": {}, "memory": {}}
            counts: dict[int, list[int]] = {}
            steps = [(size, name) for size in SIZES for name in owners[size]]
            for j, (size, name) in enumerate(tqdm(steps, desc="forget_subject")):
                pair = [("persisted", disk), ("memory", memory)]
                if j % 2:
                    pair.reverse()
                for label, index in pair:
                    start = time.perf_counter()
                    receipt = index.forget_subject(name)
                    times[label].setdefault(size, []).append(time.perf_counter() - start)
                    counts.setdefault(size, []).append(len(receipt.ids))
            assert disk.digest() == memory.digest(), "persisted and in-memory indexes diverged"
            rebuild = []
            for _ in tqdm(range(args.rebuilds), desc="rebuild"):
                start = time.perf_counter()
                memory.rebuilt()
                rebuild.append(time.perf_counter() - start)
            audit_ok = disk.check_audit().ok and len(disk.audit()) == len(steps)
            disk.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rebuild_s = statistics.median(rebuild)
    rows = []
    for size in SIZES:
        assert set(counts[size]) == {size}
        per = {label: statistics.median(times[label][size]) for label in times}
        rows.append({
            "subject_examples": size, "forgets": len(times["memory"][size]),
            "memory_p50_s": per["memory"], "persisted_p50_s": per["persisted"],
            "memory_max_s": max(times["memory"][size]), "persisted_max_s": max(times["persisted"][size]),
            "rebuild_s": rebuild_s, "rebuild_over_persisted": rebuild_s / per["persisted"],
        })
    header = f"{'examples':>8} | {'memory p50':>10} | {'persisted p50':>13} | {'persisted max':>13} | {'rebuild':>8} | {'rebuild/persisted':>17}"
    print(f"forget_subject at n = {args.n:,} (d = 384, k = 4, erase), medians over {args.repeats} subjects each")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['subject_examples']:>8} | {r['memory_p50_s'] * 1e3:>8.2f}ms | {r['persisted_p50_s'] * 1e3:>11.2f}ms | "
              f"{r['persisted_max_s'] * 1e3:>11.2f}ms | {r['rebuild_s']:>7.2f}s | {r['rebuild_over_persisted']:>16.0f}x")
    result = {"n": args.n, "d": 384, "k": 4, "strategy": "erase", "repeats": args.repeats, "rows": rows,
              "rebuild_samples_s": rebuild, "audit_chain_ok": audit_ok, "blas_threads": 1,
              "samples_s": {label: {str(s): v for s, v in t.items()} for label, t in times.items()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        xs = [r["subject_examples"] for r in rows]
        ax.loglog(xs, [r["memory_p50_s"] for r in rows], "o-", label="forget_subject, in memory")
        ax.loglog(xs, [r["persisted_p50_s"] for r in rows], "s-", label="forget_subject, persisted")
        ax.axhline(rebuild_s, color="gray", ls="--", label="rebuild from scratch")
        ax.set_xlabel("examples of the subject")
        ax.set_ylabel("seconds (median)")
        ax.set_title(f"Forgetting a person at n = {args.n:,}")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.out.with_suffix(".png"), dpi=120)
    except ImportError:
        pass
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
