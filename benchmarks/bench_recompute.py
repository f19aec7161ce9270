#!/usr/bin/env python
"""The mean cost of a forget, recomputes included: the full recompute against the score table.

Two models are fitted to the same data (``bench_core.make_embeddings``, d = 384, k = 4, the
library defaults): ``full`` recomputes every later Lloyd iteration over every point (the
behaviour before the score table; ``_table_ready`` is patched to say no), ``table`` recomputes
through :class:`erase_core.score_table.ScoreTable`. Both forget the same random victims one at a
time, interleaved in blocks of 25 (A, B, B, A, ...), and the sizes' blocks interleaved too (so
the ratio between sizes is measured in the same minutes), on a quiet machine. Reported per size and
model: mean forget, cheap-forget p50, recompute count and the recompute's median and mean cost
(the table model's first recompute builds the table and is reported apart), and the table's
memory. At the end both models must have the same digest (the table changes no result).

``--before REV`` compares the library at git revision REV (``before``: its package extracted with
``git archive`` and imported beside the current one) with the current one (``after``), both with
their defaults, in the same interleaved blocks.

``--index`` measures what users call instead: two ``ExampleIndex(4)`` on the same vectors,
``ExampleIndex.forget([id])`` with the library's default threading and its receipt; the full path
is had by patching ``QuantizedKMeans._table_ready`` for the blocks of the ``full`` index only.

    python benchmarks/bench_recompute.py --sizes 10000 100000 1000000 --forgets 2000 2000 20000

Writes ``benchmarks/results/recompute.json`` (or ``--out``) and a plot beside it.
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from bench_core import make_embeddings  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402
from erase_core import ExampleIndex, QuantizedKMeans  # noqa: E402


_TABLE_READY = QuantizedKMeans._table_ready


def _no_table(self) -> bool:
    return False


def load_before(rev: str):
    """The ``erase_core`` package as of git revision ``rev``, importable beside the current one
    (as ``erase_core_before``: its imports are relative)."""
    archive = subprocess.run(["git", "-C", str(HERE.parent), "archive", rev, "erase_core"], check=True,
                             capture_output=True).stdout
    where = Path(tempfile.mkdtemp(prefix="erase_before_"))
    atexit.register(shutil.rmtree, where, True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(where, filter="data")
    (where / "erase_core").rename(where / "erase_core_before")
    sys.path.insert(0, str(where))
    return importlib.import_module("erase_core_before")


class Size:
    """One pool size: both arms' models on the same data, the victims, and what each forget cost."""

    def __init__(self, n: int, forgets: int, seed: int, index: bool, before) -> None:
        X = make_embeddings(n, 384, seed=1)
        ids = [str(i) for i in range(n)]
        packages = {"before": before, "after": sys.modules["erase_core"]} if before else {"full": None, "table": None}
        self.n, self.forgets, self.index, self.before = n, forgets, index, before
        self.arms = list(packages)
        self.models = {}
        for name, package in packages.items():
            if index:
                self.models[name] = (package.ExampleIndex if package else ExampleIndex)(4)
                self.models[name].add(X, [None] * n, ids)
            else:
                self.models[name] = (package.QuantizedKMeans if package else QuantizedKMeans)(4).fit(X, ids)
        self.victims = [ids[i] for i in np.random.default_rng(seed).choice(n, forgets, replace=False)]
        self.times = {m: [] for m in self.models}
        self.recomputed = {m: [] for m in self.models}

    def run_block(self, lo: int, block: int) -> None:
        """Forget victims [lo, lo + block) in each arm, the arms' order alternating by block."""
        for name in self.arms if (lo // block) % 2 == 0 else self.arms[::-1]:
            model = self.models[name]
            if not self.before:
                QuantizedKMeans._table_ready = _no_table if name == "full" else _TABLE_READY
            call = model.forget if self.index else model.remove
            for v in self.victims[lo : lo + block]:
                t = time.perf_counter()
                report = call([v])
                self.times[name].append(time.perf_counter() - t)
                self.recomputed[name].append(report.recomputed)
        QuantizedKMeans._table_ready = _TABLE_READY

    def summary(self, load: list[float]) -> dict:
        a, b = (self.models[name] for name in self.arms)
        out = {"n": self.n, "call": "ExampleIndex.forget" if self.index else "QuantizedKMeans.remove",
               "forgets": self.forgets, "load": load, "same_digest": a.digest() == b.digest()}
        for name in self.models:
            t = np.asarray(self.times[name]) * 1e3
            r = np.asarray(self.recomputed[name])
            rec = t[r]
            first = None
            if name != "full" and len(rec):  # the first recompute builds the table
                first, rec = float(rec[0]), rec[1:]
            out[name] = {
                "mean_ms": float(t.mean()), "cheap_p50_us": float(np.median(t[~r]) * 1e3),
                "recomputes": int(r.sum()), "recompute_fraction": float(r.mean()),
                "recompute_median_ms": float(np.median(rec)) if len(rec) else None,
                "recompute_mean_ms": float(rec.mean()) if len(rec) else None,
                "first_recompute_ms": first,
            }
        table = (b.model if self.index else b)._table
        out["table_mib"] = None if table is None else table.data.nbytes / 2**20
        return out


def run_sizes(sizes: list[int], forgets: list[int], seed: int, index: bool = False, before=None) -> list[dict]:
    """Every size's blocks in one schedule, merged by progress (each size is a tenth of the way
    through when the others are): a ratio between sizes is measured in the same minutes, not in
    runs minutes apart on a machine whose speed drifts."""
    runs = [Size(n, f, seed, index, before) for n, f in zip(sizes, forgets)]
    block = 25
    schedule = sorted(((lo + block) / run.forgets, i, lo) for i, run in enumerate(runs) for lo in range(0, run.forgets, block))
    load = [os.getloadavg()[0]]
    for _, i, lo in tqdm(schedule, desc="blocks", leave=False):
        runs[i].run_block(lo, block)
    load.append(os.getloadavg()[0])
    return [run.summary(load) for run in runs]


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = [r["n"] for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for name, style in zip([k for k in rows[0] if isinstance(rows[0][k], dict)], ("o--", "s-")):
        a.plot(ns, [r[name]["mean_ms"] for r in rows], style, label=name)
        b.plot(ns, [r[name]["recompute_median_ms"] for r in rows], style, label=name)
    for ax, title in ((a, "mean forget (recomputes included), ms"), (b, "median recompute, ms")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("examples in the pool")
        ax.set_title(title)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    p.add_argument("--forgets", type=int, nargs="*", default=[2000, 2000, 20000], help="per size")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--index", action="store_true", help="ExampleIndex.forget instead of the engine")
    p.add_argument("--before", default=None, metavar="REV", help="compare the library at git revision REV with the current one")
    p.add_argument("--out", type=Path, default=None, help="default: results/recompute[_index].json")
    args = p.parse_args(argv)
    if args.out is None:
        args.out = HERE / "results" / ("recompute_index.json" if args.index else "recompute.json")
    before = load_before(args.before) if args.before else None
    rows = run_sizes(args.sizes, args.forgets, args.seed, args.index, before)
    for n, forgets, r in zip(args.sizes, args.forgets, rows):
        print(f"n={n:>9,} forgets={forgets:>6,} load={r['load'][0]:.2f}->{r['load'][1]:.2f} same digest: {r['same_digest']}"
              f"  table {r['table_mib'] or 0:.0f} MiB")
        for name in [k for k in r if isinstance(r[k], dict)]:
            m = r[name]
            print(f"  {name:>5}: mean {m['mean_ms']:8.3f} ms  cheap p50 {m['cheap_p50_us']:6.1f} us  "
                  f"recomputes {m['recomputes']:5d} ({m['recompute_fraction']:.4f})  "
                  f"median {m['recompute_median_ms'] or 0:8.1f} ms  mean {m['recompute_mean_ms'] or 0:8.1f} ms"
                  + (f"  first {m['first_recompute_ms']:.0f} ms" if m["first_recompute_ms"] else ""))
    arms = [k for k in rows[0] if isinstance(rows[0][k], dict)]
    ratios = {name: rows[-1][name]["mean_ms"] / rows[0][name]["mean_ms"] for name in arms}
    print(f"mean forget n={rows[-1]['n']:,} / n={rows[0]['n']:,}: "
          + ", ".join(f"{name} {ratio:.2f}x" for name, ratio in ratios.items()))
    result = {"date": time.strftime("%Y-%m-%dT%H:%M:%S"), "cpus": os.cpu_count(), "seed": args.seed,
              "before": args.before, "mean_ratio_largest_to_smallest": ratios, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    plot(rows, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
