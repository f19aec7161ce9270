#!/usr/bin/env python
"""Cheap forgets only: the library at a git revision against the current one, in one process.

``bench_recompute.py --before`` reports the cheap-forget p50 beside the mean, but its arms also
run recomputes between the cheap forgets. This benchmark isolates the cheap path's own cost:
two ``QuantizedKMeans(4)`` (before, after) on the same data forget the same victims one id per
call in alternating blocks of 50; forgets that recompute are left out of the p50 (they still run,
in both arms alike). Each size is run twice, once with each arm created first (allocation order
decides where the arrays land). Equal digests are checked at the end of every run.

    python benchmarks/bench_cheap_ab.py --before fc3b320 --sizes 10000 1000000

Writes ``benchmarks/results/cheap_ab.json`` (or ``--out``).
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

import erase_core  # noqa: E402
from bench_core import make_embeddings  # noqa: E402
from bench_recompute import load_before  # noqa: E402


def run(before, n: int, forgets: int, first: str) -> dict:
    X = make_embeddings(n, 384, seed=1)
    ids = [str(i) for i in range(n)]
    packages = {"before": before, "after": erase_core}
    order = [first, "after" if first == "before" else "before"]
    models = {name: packages[name].QuantizedKMeans(4).fit(X, ids) for name in order}
    victims = [ids[i] for i in np.random.default_rng(7).choice(n, forgets, replace=False)]
    cheap = {name: [] for name in order}
    recomputes = {name: 0 for name in order}
    block = 50
    for lo in range(0, forgets, block):
        for name in order if (lo // block) % 2 == 0 else order[::-1]:
            model = models[name]
            for v in victims[lo : lo + block]:
                t = time.perf_counter()
                report = model.remove([v])
                dt = time.perf_counter() - t
                if report.recomputed:
                    recomputes[name] += 1
                else:
                    cheap[name].append(dt)
    return {
        "n": n, "forgets": forgets, "created_first": first, "load": os.getloadavg()[0],
        "same_digest": models["before"].digest() == models["after"].digest(),
        **{name: {"cheap_p50_us": float(np.median(cheap[name]) * 1e6), "recomputes": recomputes[name]} for name in order},
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--before", required=True, metavar="REV")
    p.add_argument("--sizes", type=int, nargs="*", default=[10_000, 1_000_000])
    p.add_argument("--forgets", type=int, default=8000)
    p.add_argument("--out", type=Path, default=HERE / "results" / "cheap_ab.json")
    args = p.parse_args(argv)
    before = load_before(args.before)
    rows = []
    for n in args.sizes:
        for first in ("before", "after"):
            r = run(before, n, args.forgets, first)
            rows.append(r)
            print(f"n={n:>9,} first={first:<6} before {r['before']['cheap_p50_us']:6.1f} us  after "
                  f"{r['after']['cheap_p50_us']:6.1f} us  (recomputes {r['after']['recomputes']}, same digest {r['same_digest']})",
                  flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"date": time.strftime("%Y-%m-%dT%H:%M:%S"), "cpus": os.cpu_count(),
                                    "before": args.before, "rows": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
