"""Re-measure two 1M cases that one cold benchmark run may misstate, in a single process.

* fit time of the same 1M points fitted repeatedly (the first fit pays first-touch page faults);
* median time of cheap (no-recompute) single removals at 100k and 1M, with the garbage collector
  on and off.

Writes ``benchmarks/results/remeasure_1m.json``.  ``python benchmarks/remeasure_1m.py``
"""

from __future__ import annotations

import gc
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_core import make_embeddings, set_threads  # noqa: E402
from erase_core import QuantizedKMeans  # noqa: E402


def cheap_removal_p50(model: QuantizedKMeans, ids: list[str]) -> tuple[float, int]:
    times = []
    for i in ids:
        start = time.perf_counter()
        report = model.remove([i])
        if not report.recomputed:
            times.append(time.perf_counter() - start)
    return statistics.median(times), len(times)


def main() -> None:
    set_threads(1)
    out: dict = {"date": time.strftime("%Y-%m-%dT%H:%M:%S"), "threads": 1, "fits": [], "removals": []}
    X = make_embeddings(1_000_000, 384, seed=0)
    ids = [str(i) for i in range(len(X))]
    for k in (4, 16, 4):
        start = time.perf_counter()
        QuantizedKMeans(k).fit(X, ids)
        out["fits"].append({"n": len(X), "k": k, "seconds": time.perf_counter() - start})
        print(f"fit n=1M k={k}: {out['fits'][-1]['seconds']:.2f} s", flush=True)
    for n in (100_000, 1_000_000):
        model = QuantizedKMeans(16).fit(X[:n], ids[:n])
        victims = [str(i) for i in np.random.default_rng(1).choice(n, 400, replace=False)]
        for label, chunk in (("gc on", victims[:200]), ("gc off", victims[200:])):
            if label == "gc off":
                gc.disable()
            p50, count = cheap_removal_p50(model, chunk)
            gc.enable()
            out["removals"].append({"n": n, "k": 16, "gc": label, "cheap_p50_s": p50, "cheap_count": count})
            print(f"n={n:,} k=16 {label}: cheap removal p50 {p50 * 1e6:.1f} us over {count}", flush=True)
        del model
    path = ROOT / "benchmarks" / "results" / "remeasure_1m.json"
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
