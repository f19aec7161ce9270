#!/usr/bin/env python
"""Where a cheap ``ExampleIndex.forget`` spends its time, measured without a profiler.

A line profiler inflates every line it times, most of all the short ones that make up a
forget. Here each part of the call is measured by its absence instead: forgets with one part
replaced by a constant stub (the audit entry, the receipt's digests, the selected-set
comparison, ...) alternate in blocks of 25 with unmodified forgets, on one in-memory index
(n = 100k, d = 384, k = 4, the library's default threading), and the saving of each stub is the
difference of the p50s. ``QuantizedKMeans.remove`` on a model fitted to the same data
(the engine alone) runs in the same rotation. Only forgets that did not recompute count.

Stubbed forgets return wrong receipts and log nothing: this is a measurement, not a mode.

    python benchmarks/profile_forget.py            # -> benchmarks/results/forget_parts.json
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
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from bench_core import make_embeddings  # noqa: E402
from erase_core import ExampleIndex, QuantizedKMeans  # noqa: E402
from erase_core import example_index as index_module  # noqa: E402

try:
    from tqdm.auto import tqdm
except ImportError:  # pragma: no cover
    def tqdm(it=None, **_):
        return it

Index = index_module.ExampleIndex

#: part -> {method name: stub}; the stub stands in for that method during its blocks
STUBS = {
    "audit entry (HMAC of the id, entry dict)": {"_audit_entry": lambda self, *a, **k: {}},
    "receipt digests (model + index SHA-256)": {"_current_digest": lambda self: "0" * 64},
    "selected set before/after": {"_erase_ids": lambda self: []},
    "owners of the ids": {"_subjects_of": lambda self, ids: [None] * len(ids)},
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--rounds", type=int, default=80, help="rounds of (full, each stub, engine) blocks")
    p.add_argument("--block", type=int, default=25)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "forget_parts.json")
    args = p.parse_args()
    n = args.n
    X = make_embeddings(n, 384, seed=1)
    ids = [str(i) for i in range(n)]
    index = ExampleIndex(4)
    index.add(X, [None] * n, ids)
    engine = QuantizedKMeans(4).fit(X, ids)
    modes = ["full forget", *STUBS, "engine alone (QuantizedKMeans.remove)"]
    need = args.rounds * len(modes) * args.block
    if need > n - 100:
        raise SystemExit(f"{need} forgets need a larger --n")
    victims = [ids[i] for i in np.random.default_rng(0).choice(n, need, replace=False)]
    originals = {name: getattr(Index, name) for stubs in STUBS.values() for name in stubs}
    cheap = {m: [] for m in modes}
    load = [os.getloadavg()[0]]
    pos = 0
    for _ in tqdm(range(args.rounds), desc="rounds"):
        for mode in modes:
            for name, method in originals.items():
                setattr(Index, name, STUBS.get(mode, {}).get(name, method))
            call = engine.remove if mode.startswith("engine") else index.forget
            for v in victims[pos : pos + args.block]:
                t = time.perf_counter()
                report = call([v])
                dt = time.perf_counter() - t
                if not report.recomputed:
                    cheap[mode].append(dt)
            pos += args.block
    for name, method in originals.items():
        setattr(Index, name, method)
    load.append(os.getloadavg()[0])
    full = float(np.median(cheap["full forget"]))
    rows = []
    for mode in modes:
        p50 = float(np.median(cheap[mode]))
        rows.append({"mode": mode, "p50_us": p50 * 1e6, "saving_us": (full - p50) * 1e6, "forgets": len(cheap[mode])})
    result = {"date": time.strftime("%Y-%m-%dT%H:%M:%S"), "n": n, "cpus": os.cpu_count(), "load": load, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"n = {n:,}, load {load[0]:.2f} -> {load[1]:.2f}")
    print(f"{'mode':45s} | {'p50':>8s} | {'saving':>8s}")
    for r in rows:
        saving = "" if r["mode"] in ("full forget",) else f"{r['saving_us']:6.1f}us"
        print(f"{r['mode']:45s} | {r['p50_us']:6.1f}us | {saving:>8s}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
