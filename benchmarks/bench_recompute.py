#!/usr/bin/env python
"""The mean cost of a forget, recomputes included: the full recompute against the score table.

Two models are fitted to the same data (``bench_core.make_embeddings``, d = 384, k = 4, the
library defaults): ``full`` recomputes every later Lloyd iteration over every point (the
behaviour before the score table; ``_table_ready`` is patched to say no), ``table`` recomputes
through :class:`erase_core.score_table.ScoreTable`. Both forget the same random victims one at a
time, interleaved in blocks of 25 (A, B, A, B, ...), on a quiet machine. Reported per size and
model: mean forget, cheap-forget p50, recompute count and the recompute's median and mean cost
(the table model's first recompute builds the table and is reported apart), and the table's
memory. At the end both models must have the same digest (the table changes no result).

``--index`` measures what users call instead: two ``ExampleIndex(4)`` on the same vectors,
``ExampleIndex.forget([id])`` with the library's default threading and its receipt; the full path
is had by patching ``QuantizedKMeans._table_ready`` for the blocks of the ``full`` index only.

    python benchmarks/bench_recompute.py --sizes 10000 100000 1000000 --forgets 2000 2000 20000

Writes ``benchmarks/results/recompute.json`` (or ``--out``) and a plot beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
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


def run_size(n: int, forgets: int, seed: int, index: bool = False) -> dict:
    X = make_embeddings(n, 384, seed=1)
    ids = [str(i) for i in range(n)]
    if index:
        models = {}
        for name in ("full", "table"):
            models[name] = ExampleIndex(4)
            models[name].add(X, [None] * n, ids)
    else:
        models = {"full": QuantizedKMeans(4).fit(X, ids), "table": QuantizedKMeans(4).fit(X, ids)}
    victims = [ids[i] for i in np.random.default_rng(seed).choice(n, forgets, replace=False)]
    times = {m: [] for m in models}
    recomputed = {m: [] for m in models}
    load_before = os.getloadavg()[0]
    block = 25
    for lo in tqdm(range(0, forgets, block), desc=f"n={n:,}", leave=False):
        for name in ("full", "table") if (lo // block) % 2 == 0 else ("table", "full"):
            model = models[name]
            QuantizedKMeans._table_ready = _no_table if name == "full" else _TABLE_READY
            call = model.forget if index else model.remove
            for v in victims[lo : lo + block]:
                t = time.perf_counter()
                report = call([v])
                times[name].append(time.perf_counter() - t)
                recomputed[name].append(report.recomputed)
    QuantizedKMeans._table_ready = _TABLE_READY
    same = models["full"].digest() == models["table"].digest()
    out = {"n": n, "call": "ExampleIndex.forget" if index else "QuantizedKMeans.remove", "forgets": forgets, "load": [load_before, os.getloadavg()[0]], "same_digest": same}
    for name in models:
        t = np.asarray(times[name]) * 1e3
        r = np.asarray(recomputed[name])
        rec = t[r]
        first = None
        if name == "table" and len(rec):
            first, rec = float(rec[0]), rec[1:]
        out[name] = {
            "mean_ms": float(t.mean()), "cheap_p50_us": float(np.median(t[~r]) * 1e3),
            "recomputes": int(r.sum()), "recompute_fraction": float(r.mean()),
            "recompute_median_ms": float(np.median(rec)) if len(rec) else None,
            "recompute_mean_ms": float(rec.mean()) if len(rec) else None,
            "first_recompute_ms": first,
        }
    table = (models["table"]._model if index else models["table"])._table
    out["table_mib"] = None if table is None else table.data.nbytes / 2**20
    return out


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = [r["n"] for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for name, style in (("full", "o--"), ("table", "s-")):
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
    p.add_argument("--out", type=Path, default=None, help="default: results/recompute[_index].json")
    args = p.parse_args(argv)
    if args.out is None:
        args.out = HERE / "results" / ("recompute_index.json" if args.index else "recompute.json")
    rows = []
    for n, forgets in zip(args.sizes, args.forgets):
        rows.append(run_size(n, forgets, args.seed, args.index))
        r = rows[-1]
        print(f"n={n:>9,} forgets={forgets:>6,} load={r['load'][0]:.2f}->{r['load'][1]:.2f} same digest: {r['same_digest']}"
              f"  table {r['table_mib'] or 0:.0f} MiB")
        for name in ("full", "table"):
            m = r[name]
            print(f"  {name:>5}: mean {m['mean_ms']:8.3f} ms  cheap p50 {m['cheap_p50_us']:6.1f} us  "
                  f"recomputes {m['recomputes']:5d} ({m['recompute_fraction']:.4f})  "
                  f"median {m['recompute_median_ms'] or 0:8.1f} ms  mean {m['recompute_mean_ms'] or 0:8.1f} ms"
                  + (f"  first {m['first_recompute_ms']:.0f} ms" if m["first_recompute_ms"] else ""))
    result = {"date": time.strftime("%Y-%m-%dT%H:%M:%S"), "cpus": os.cpu_count(), "seed": args.seed, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    plot(rows, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
