#!/usr/bin/env python
"""The user-facing calls at their floor: forget, select, fit and similarity, as users call them.

For each pool size n (d = 384 synthetic sentence-like unit vectors, ``bench_core.make_embeddings``):

* **forget**: single-id forgets, three ways interleaved round-robin on distinct random victims:
  ``ExampleIndex.forget`` with the library's default threading, the same call inside
  ``threadpool_limits(1)``, and the engine alone (``QuantizedKMeans.remove`` on a model fitted
  to the same data). Cheap forgets (no clustering recompute) and the mean over all, with the
  recompute fraction. Every ``ExampleIndex.forget`` returns its receipt (digests) as usual.
* **select()**: the ``erase`` strategy with no query, as the LangChain selector calls it.
* **similarity**: ``ExampleIndex(strategy="similarity").select(q)`` against faiss
  ``IndexFlatIP.search`` on the same unit vectors, interleaved query by query, with default
  threads and with one thread for both; and whether the top-k agree.
* **fit** (``--fit-sizes``): cold ``QuantizedKMeans.fit`` (first fit in a fresh process)
  against ``faiss.Kmeans`` (same k, iterations, all points), each in its own child process,
  alternating, with the child's peak RSS above its input.

``--engine-root DIR`` measures the erase_core found in DIR (e.g. a worktree of an older
commit), so before/after runs use this same script. Writes ``benchmarks/results/floor.json``
(or ``--out``) and prints a table; the load average before and after each section is recorded,
because a ratio taken while another job runs is not a result.

    python benchmarks/bench_floor.py --sizes 10000 100000 1000000 --fit-sizes 1000000
    python benchmarks/bench_floor.py --compare before.json after.json   # markdown table + floor.png
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _engine_path(argv: list[str]) -> str:
    if "--engine-root" in argv:
        return str(Path(argv[argv.index("--engine-root") + 1]).resolve())
    return str(ROOT)


sys.path.insert(0, str(HERE))
sys.path.insert(0, _engine_path(sys.argv))

import erase_core  # noqa: E402
from bench_core import faiss_train, make_embeddings  # noqa: E402
from erase_core import ExampleIndex, QuantizedKMeans  # noqa: E402

try:
    from tqdm.auto import tqdm
except ImportError:  # pragma: no cover
    def tqdm(it=None, **_):
        return it


def load() -> float:
    return os.getloadavg()[0]


def pct(values, q) -> float:
    return float(np.percentile(np.asarray(values), q)) if len(values) else float("nan")


# ----------------------------------------------------------------------------- sections
def section_forget(X: np.ndarray, ids: list[str], forgets: int, seed: int, selector: bool = False) -> dict:
    n = len(ids)
    index = ExampleIndex(4)
    # --selector: LangChain-style dict payloads, and the selector's forget and select_examples
    payloads = [{"input": f"question {i}", "output": f"answer {i % 7}"} for i in range(n)] if selector else [None] * n
    t0 = time.perf_counter()
    index.add(X, payloads, ids)
    build = time.perf_counter() - t0
    engine = QuantizedKMeans(4).fit(X, ids)
    modes = ("index_default", "index_single", "engine_default") + (("selector_default",) if selector else ())
    if selector:
        from langchain_core.embeddings import DeterministicFakeEmbedding

        from erase_langchain import ERASEExampleSelector

        lc = ERASEExampleSelector(embeddings=DeterministicFakeEmbedding(size=X.shape[1]), index=index)
    victims = [ids[i] for i in np.random.default_rng(seed).choice(n, len(modes) * forgets, replace=False)]
    cheap = {m: [] for m in modes}
    every = {m: [] for m in modes}
    recomputed = {m: 0 for m in modes}

    def index_call(v):
        t = time.perf_counter()
        r = index.forget([v])
        return time.perf_counter() - t, r.recomputed

    def engine_call(v):
        t = time.perf_counter()
        r = engine.remove([v])
        return time.perf_counter() - t, r.recomputed

    def selector_call(v):
        t = time.perf_counter()
        r = lc.forget([v])
        return time.perf_counter() - t, r.recomputed

    calls = {"engine_default": engine_call, "selector_default": selector_call}

    # Interleaved in blocks of 25 forgets (A, B, C, A, B, C, ...): the one-thread mode holds its
    # limit for a whole block, so neither entering threadpool_limits nor the cache it disturbs
    # is charged to the forget that follows.
    from threadpoolctl import ThreadpoolController

    controller = ThreadpoolController()
    load_before = load()
    block = 25
    for b, lo in enumerate(tqdm(range(0, len(victims), block), desc=f"forget n={n:,}", leave=False)):
        mode = modes[b % len(modes)]
        call = calls.get(mode, index_call)
        limit = controller.limit(limits=1, user_api="blas") if mode == "index_single" else contextlib.nullcontext()
        with limit:
            for v in victims[lo : lo + block]:
                dt, rec = call(v)
                every[mode].append(dt)
                if rec:
                    recomputed[mode] += 1
                else:
                    cheap[mode].append(dt)
    out = {"build_s": build, "forgets_per_mode": forgets, "load_forget": [load_before, load()]}
    for m in modes:
        out[m] = {
            "cheap_p50_us": pct(cheap[m], 50) * 1e6, "cheap_p90_us": pct(cheap[m], 90) * 1e6,
            "mean_us": float(np.mean(every[m])) * 1e6, "recompute_fraction": recomputed[m] / len(every[m]),
        }
    # select(): the erase strategy with no query (what the LangChain selector calls)
    for _ in range(200):
        index.select()
    times = []
    for _ in range(5000):
        t = time.perf_counter()
        index.select()
        times.append(time.perf_counter() - t)
    out["select_erase_p50_us"] = pct(times, 50) * 1e6
    out["select_erase_p90_us"] = pct(times, 90) * 1e6
    if selector:  # what a FewShotPromptTemplate calls: projected dict copies of the fixed set
        inputs = {"input": "a new question"}
        times = []
        for _ in range(5000):
            t = time.perf_counter()
            lc.select_examples(inputs)
            times.append(time.perf_counter() - t)
        out["selector_select_examples_p50_us"] = pct(times, 50) * 1e6
    return out


def section_similarity(X: np.ndarray, ids: list[str], queries: np.ndarray, k: int) -> dict:
    import faiss
    from threadpoolctl import ThreadpoolController

    controller = ThreadpoolController()
    index = ExampleIndex(k, strategy="similarity")
    index.add(X, [None] * len(ids), ids)
    flat = faiss.IndexFlatIP(X.shape[1])
    flat.add(np.ascontiguousarray(X / np.linalg.norm(X, axis=1, keepdims=True), dtype=np.float32))
    qs = [np.ascontiguousarray(q / np.linalg.norm(q), dtype=np.float32) for q in queries]
    out = {"load_similarity": [load()]}
    default_omp = faiss.omp_get_max_threads()
    for label, threads in (("default", None), ("single", 1)):
        ours, theirs, agree = [], [], []
        for q in qs:
            faiss.omp_set_num_threads(default_omp if threads is None else 1)
            with contextlib.nullcontext() if threads is None else controller.limit(limits=1, user_api="blas"):
                t = time.perf_counter()
                mine = index.select(q)
                ours.append(time.perf_counter() - t)
                t = time.perf_counter()
                _, found = flat.search(q[None, :], k)
                theirs.append(time.perf_counter() - t)
            agree.append(sorted(s.id for s in mine) == sorted(ids[i] for i in found[0]))
        out[label] = {
            "erase_p50_ms": pct(ours, 50) * 1e3, "faiss_p50_ms": pct(theirs, 50) * 1e3,
            "ratio_p50": pct(ours, 50) / pct(theirs, 50),
            "ratio_of_pairs_p50": float(np.median(np.asarray(ours) / np.asarray(theirs))),
            "same_top_k": float(np.mean(agree)),
        }
    faiss.omp_set_num_threads(default_omp)
    out["load_similarity"].append(load())
    return out


def child_fit(impl: str, n: int, k: int, n_iter: int) -> dict:
    """One cold fit in this (fresh) process; returns seconds and peak RSS above the input."""
    X = make_embeddings(n, 384, seed=1)
    ids = [str(i) for i in range(n)]
    gc.collect()
    base = _reset_peak_rss_kib()
    if impl == "erase":
        t = time.perf_counter()
        QuantizedKMeans(k, n_iter=n_iter).fit(X, ids)
    else:
        t = time.perf_counter()
        faiss_train(X, k, n_iter, 0, all_points=True)
    seconds = time.perf_counter() - t
    peak = _peak_rss_kib()
    return {"seconds": seconds, "peak_above_input_mib": (peak - base) / 1024, "input_mib": X.nbytes / 2**20}


def _peak_rss_kib() -> int:
    """VmHWM (peak resident set) of this process, KiB; ru_maxrss where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _reset_peak_rss_kib() -> int:
    """Reset the peak-RSS mark to the current RSS (Linux: clear_refs 5), so the peak measured
    next is the fit's, not the input generation's; returns the RSS it starts from."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    return _peak_rss_kib()


def section_fit(n: int, k: int, n_iter: int, repeats: int, engine_root: str) -> dict:
    runs = {"erase": [], "faiss": []}
    loads = [load()]
    for r in range(repeats):
        order = ("erase", "faiss") if r % 2 == 0 else ("faiss", "erase")
        for impl in order:
            cmd = [sys.executable, str(Path(__file__).resolve()), "--engine-root", engine_root,
                   "--child-fit", impl, str(n), str(k), str(n_iter)]
            done = subprocess.run(cmd, capture_output=True, text=True, check=True)
            runs[impl].append(json.loads(done.stdout.strip().splitlines()[-1]))
    loads.append(load())
    med = {impl: float(np.median([x["seconds"] for x in v])) for impl, v in runs.items()}
    return {
        "n": n, "k": k, "runs": runs, "erase_s": med["erase"], "faiss_s": med["faiss"],
        "ratio": med["erase"] / med["faiss"],
        "erase_peak_mib": float(np.median([x["peak_above_input_mib"] for x in runs["erase"]])),
        "faiss_peak_mib": float(np.median([x["peak_above_input_mib"] for x in runs["faiss"]])),
        "input_mib": runs["erase"][0]["input_mib"], "load": loads,
    }


# ----------------------------------------------------------------------------- main
def compare(before_path: Path, after_path: Path, png: Path) -> str:
    """A markdown before/after table of two runs of this script, and a bar chart (PNG)."""
    before, after = json.loads(before_path.read_text()), json.loads(after_path.read_text())
    lines = ["| n | call | before | after | after / before |", "|---|---|---|---|---|"]
    bars = []
    for rb, ra in zip(before["rows"], after["rows"]):
        n = f"{rb['n']:,}"
        cells = [
            ("`ExampleIndex.forget` p50, default threads", rb["index_default"]["cheap_p50_us"], ra["index_default"]["cheap_p50_us"], "µs"),
            ("`ExampleIndex.forget` p50, 1 BLAS thread", rb["index_single"]["cheap_p50_us"], ra["index_single"]["cheap_p50_us"], "µs"),
            ("`QuantizedKMeans.remove` p50 (engine)", rb["engine_default"]["cheap_p50_us"], ra["engine_default"]["cheap_p50_us"], "µs"),
            ("`ExampleIndex.forget` mean incl. recomputes", rb["index_default"]["mean_us"] / 1e3, ra["index_default"]["mean_us"] / 1e3, "ms"),
            ("`select()` (erase) p50", rb["select_erase_p50_us"], ra["select_erase_p50_us"], "µs"),
            ("similarity / faiss flat, default threads", rb["similarity"]["default"]["ratio_p50"], ra["similarity"]["default"]["ratio_p50"], "×"),
            ("similarity / faiss flat, 1 thread", rb["similarity"]["single"]["ratio_p50"], ra["similarity"]["single"]["ratio_p50"], "×"),
        ]
        for name, b, a, unit in cells:
            lines.append(f"| {n} | {name} | {b:.3g} {unit} | {a:.3g} {unit} | {a / b:.2f} |")
        bars.append((rb["n"], rb["index_default"]["cheap_p50_us"], ra["index_default"]["cheap_p50_us"],
                     rb["select_erase_p50_us"], ra["select_erase_p50_us"]))
    for fb, fa in zip(before["fits"], after["fits"]):
        lines.append(f"| {fb['n']:,} | fit k={fb['k']} / faiss.Kmeans (cold) | {fb['ratio']:.2f}× ({fb['erase_s']:.1f} s) | "
                     f"{fa['ratio']:.2f}× ({fa['erase_s']:.1f} s; faiss {fa['faiss_s']:.1f} s) | {fa['erase_s'] / fb['erase_s']:.2f} |")
        lines.append(f"| {fb['n']:,} | fit k={fb['k']} peak memory above the input (faiss) | {fb['erase_peak_mib']:.0f} MiB | "
                     f"{fa['erase_peak_mib']:.0f} MiB ({fa['faiss_peak_mib']:.0f} MiB) | |")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
        x = np.arange(len(bars))
        for ax, (lo, title) in zip(axes, ((1, "ExampleIndex.forget p50 (µs)"), (3, "select() p50 (µs)"))):
            ax.bar(x - 0.2, [b[lo] for b in bars], 0.4, label="before")
            ax.bar(x + 0.2, [b[lo + 1] for b in bars], 0.4, label="after")
            ax.set_xticks(x, [f"{b[0]:,}" for b in bars])
            ax.set_xlabel("pool size n")
            ax.set_title(title)
            ax.set_ylim(0, 1.3 * max(max(b[lo], b[lo + 1]) for b in bars))
        axes[0].axhline(40, color="grey", ls="--", lw=1, label="target")
        axes[1].axhline(10, color="grey", ls="--", lw=1, label="target")
        for ax in axes:
            ax.legend(loc="upper center", ncol=3, fontsize=8)
        fig.tight_layout()
        fig.savefig(png, dpi=120)
    except ImportError:  # pragma: no cover - matplotlib is a bench extra
        pass
    return "\n".join(lines)


def main() -> None:
    if "--compare" in sys.argv:
        i = sys.argv.index("--compare")
        print(compare(Path(sys.argv[i + 1]), Path(sys.argv[i + 2]), ROOT / "benchmarks" / "results" / "floor.png"))
        return
    if "--child-fit" in sys.argv:
        i = sys.argv.index("--child-fit")
        impl, n, k, n_iter = sys.argv[i + 1], int(sys.argv[i + 2]), int(sys.argv[i + 3]), int(sys.argv[i + 4])
        print(json.dumps(child_fit(impl, n, k, n_iter)))
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    p.add_argument("--fits-only", action="store_true", help="measure only the fits and replace them in --out")
    p.add_argument("--forgets", type=int, default=2000, help="forgets per mode and size")
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--fit-sizes", type=int, nargs="*", default=[1_000_000])
    p.add_argument("--ks", type=int, nargs="+", default=[4, 16])
    p.add_argument("--fit-repeats", type=int, default=2)
    p.add_argument("--n-iter", type=int, default=10)
    p.add_argument("--engine-root", default=str(ROOT))
    p.add_argument("--label", default="")
    p.add_argument("--selector", action="store_true",
                   help="dict payloads, plus ERASEExampleSelector.forget and select_examples (LangChain)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "floor.json")
    args = p.parse_args()
    rows, fits = [], []
    if args.fits_only:
        previous = json.loads(args.out.read_text())
        rows, args.sizes = previous["rows"], []
    for n in tqdm(args.sizes, desc="sizes"):
        X = make_embeddings(n + args.queries, 384, seed=1)
        pool, queries = X[:n], X[n:]
        ids = [str(i) for i in range(n)]
        row = {"n": n, **section_forget(pool, ids, args.forgets, seed=n, selector=args.selector)}
        gc.collect()
        row["similarity"] = section_similarity(pool, ids, queries, 4)
        rows.append(row)
        del X, pool
        gc.collect()
    for n in args.fit_sizes:
        for k in args.ks:
            fits.append(section_fit(n, k, args.n_iter, args.fit_repeats, args.engine_root))
    result = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"), "label": args.label, "engine_root": args.engine_root,
        "engine_file": erase_core.__file__, "cpus": os.cpu_count(), "rows": rows, "fits": fits,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"engine: {erase_core.__file__} {args.label}")
    print(f"{'n':>9} | {'forget p50 default':>18} | {'single':>8} | {'engine':>8} | {'mean default':>12} | {'recomp':>6} "
          f"| {'select()':>9} | {'sim/faiss def':>13} | {'sim/faiss 1t':>12} | {'top-k':>5}")
    for r in rows:
        s = r["similarity"]
        print(f"{r['n']:>9,} | {r['index_default']['cheap_p50_us']:>16.0f}us | {r['index_single']['cheap_p50_us']:>6.0f}us | "
              f"{r['engine_default']['cheap_p50_us']:>6.0f}us | {r['index_default']['mean_us'] / 1e3:>10.2f}ms | "
              f"{r['index_default']['recompute_fraction']:>6.1%} | {r['select_erase_p50_us']:>7.1f}us | "
              f"{s['default']['ratio_p50']:>13.2f} | {s['single']['ratio_p50']:>12.2f} | {s['default']['same_top_k']:>5.0%}")
    for r in rows:
        if "selector_default" in r:
            print(f"{r['n']:>9,} | ERASEExampleSelector.forget p50 {r['selector_default']['cheap_p50_us']:.0f}us "
                  f"(ExampleIndex.forget {r['index_default']['cheap_p50_us']:.0f}us) | "
                  f"select_examples p50 {r['selector_select_examples_p50_us']:.1f}us (select() {r['select_erase_p50_us']:.1f}us)")
    for f in fits:
        print(f"fit n={f['n']:,} k={f['k']}: erase {f['erase_s']:.2f}s faiss {f['faiss_s']:.2f}s ratio {f['ratio']:.2f} "
              f"peak above input {f['erase_peak_mib']:.0f} / {f['faiss_peak_mib']:.0f} MiB")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
