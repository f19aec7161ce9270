"""Select latency of ExampleIndex strategies beside a faiss flat index.

For each pool size: ``select()`` with the ``erase`` strategy (the fixed set; no query work),
``select(q)`` with ``similarity`` (exact top-k cosine) and ``faiss.IndexFlatIP.search`` (exact
inner-product top-k) on the same unit vectors, single-threaded. Prints a table and writes
``benchmarks/results/select.json``.

    python benchmarks/bench_select.py [--sizes 1000 10000 100000 1000000] [--queries 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import faiss
import numpy as np
from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_core import make_embeddings  # noqa: E402
from erase_core import ExampleIndex  # noqa: E402


def timed(fn, queries) -> list[float]:
    out = []
    for q in queries:
        start = time.perf_counter()
        fn(q)
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000, 1_000_000])
    p.add_argument("--k", type=int, default=4)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "select.json")
    args = p.parse_args()
    faiss.omp_set_num_threads(1)
    rows = []
    for n in tqdm(args.sizes, desc="sizes"):
        X = make_embeddings(n + args.queries, 384, seed=1)
        pool, queries = X[:n], X[n:]
        ids = [str(i) for i in range(n)]
        erase = ExampleIndex(k=args.k, strategy="erase")
        start = time.perf_counter()
        erase.add(pool, [None] * n, ids=ids)
        erase_build = time.perf_counter() - start
        similarity = ExampleIndex(k=args.k, strategy="similarity")
        similarity.add(pool, [None] * n, ids=ids)
        flat = faiss.IndexFlatIP(384)
        flat.add(np.ascontiguousarray(np.stack([similarity.vector(i) for i in ids])))
        qs = [q.astype(np.float32) for q in queries]
        t_erase = timed(lambda q: erase.select(q), qs)
        t_sim = timed(lambda q: similarity.select(q), qs)
        t_faiss = timed(lambda q: flat.search(q[None, :] / np.linalg.norm(q), args.k), qs)
        agree = np.mean([
            [s.id for s in similarity.select(q)] == [str(i) for i in flat.search(q[None, :] / np.linalg.norm(q), args.k)[1][0]]
            for q in qs[:50]
        ])
        row = {
            "n": n, "k": args.k, "erase_build_s": erase_build,
            "erase_select_p50_s": statistics.median(t_erase), "similarity_select_p50_s": statistics.median(t_sim),
            "faiss_flat_p50_s": statistics.median(t_faiss), "similarity_over_faiss": statistics.median(t_sim) / statistics.median(t_faiss),
            "top_k_agreement_with_faiss": float(agree),
        }
        rows.append(row)
    header = f"{'n':>9} | {'erase select p50':>16} | {'similarity p50':>14} | {'faiss flat p50':>14} | {'sim/faiss':>9} | {'same top-k':>10}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['n']:>9,} | {r['erase_select_p50_s'] * 1e6:>14.0f}us | {r['similarity_select_p50_s'] * 1e3:>12.3f}ms | "
              f"{r['faiss_flat_p50_s'] * 1e3:>12.3f}ms | {r['similarity_over_faiss']:>9.2f} | {r['top_k_agreement_with_faiss']:>10.0%}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"date": time.strftime("%Y-%m-%dT%H:%M:%S"), "threads": 1, "rows": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
