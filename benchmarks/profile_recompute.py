#!/usr/bin/env python
"""What the recomputes at one pool size are: those that stopped where they rejoined the previous
run, and the others (the trajectory changed to its end), with each one's cost.

One ``QuantizedKMeans(4)`` (d = 384, the defaults) forgets random victims one id per call; each
recompute is classified by its report's ``rejoined`` (``UpdateReport.rejoined``). The first
recompute (it builds the score table) is left out.

    python benchmarks/profile_recompute.py --n 1000000 --forgets 20000 --seed 1

Writes ``benchmarks/results/recompute_kinds.json`` (or ``--out``).
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
from erase_core import QuantizedKMeans  # noqa: E402


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--forgets", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=1, help="victim set (bench_recompute's --seed)")
    p.add_argument("--out", type=Path, default=HERE / "results" / "recompute_kinds.json")
    args = p.parse_args(argv)
    X = make_embeddings(args.n, 384, seed=1)
    ids = [str(i) for i in range(args.n)]
    model = QuantizedKMeans(4).fit(X, ids)
    victims = [ids[i] for i in np.random.default_rng(args.seed).choice(args.n, args.forgets, replace=False)]
    kinds = {"rejoined": [], "other": []}
    first = True
    for v in victims:
        t = time.perf_counter()
        report = model.remove([v])
        dt = (time.perf_counter() - t) * 1e3
        if report.recomputed:
            if first:
                first = False
                continue
            kinds["rejoined" if report.rejoined else "other"].append(dt)
    out = {"date": time.strftime("%Y-%m-%dT%H:%M:%S"), "n": args.n, "forgets": args.forgets, "seed": args.seed,
           "load": os.getloadavg()[0]}
    for kind, ms in kinds.items():
        ms = np.asarray(ms)
        out[kind] = {"count": len(ms), "median_ms": float(np.median(ms)) if len(ms) else None,
                     "min_ms": float(ms.min()) if len(ms) else None, "max_ms": float(ms.max()) if len(ms) else None,
                     "total_s": float(ms.sum() / 1e3)}
        print(f"{kind:>8}: {out[kind]['count']:4d} recomputes, median {out[kind]['median_ms'] or 0:7.1f} ms "
              f"({out[kind]['min_ms'] or 0:.1f}-{out[kind]['max_ms'] or 0:.1f}), {out[kind]['total_s']:.2f} s in all")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
