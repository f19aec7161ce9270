#!/usr/bin/env python
"""Core benchmark of :class:`erase_core.QuantizedKMeans` (method and results: docs/benchmarks.md).

For every dataset size n and cluster count k, on synthetic clustered unit vectors (and, when
``benchmarks/results/minilm_bigbench.npy`` exists, on real MiniLM embeddings):

* fit time beside ``faiss.Kmeans`` training (same k, same number of iterations, all points);
* objective ratio: quantized inertia / inertia of unquantized float Lloyd started from the same
  seeds, with the same iteration cap and empty-cluster rule, in the same clustering space;
* forget latency (p50 / p99 / mean) over random single-id removals, the fraction that recomputed;
* full rebuild time (= ``fit`` on the remaining data) and the mean-forget / rebuild ratio;
* an exactness check: the digest after the removals equals the digest of the rebuild.

The benchmark is a list of *sections* (``SECTIONS``): functions ``section(case) -> dict`` that
run in order on one :class:`Case` and add columns to its row. To measure something else (e.g.
select latency of an example index) write another section, append it to ``SECTIONS`` (after
``section_forget`` if it should see the model with points removed) and add its columns to
``TABLE_COLUMNS``; nothing else needs to change.

Usage::

    python benchmarks/bench_core.py --sizes 1000 10000 100000 --ks 4 16 --forgets 200
"""

from __future__ import annotations

import argparse
import datetime
import gc
import hashlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import erase_core  # noqa: E402
from erase_core import DEFAULT_EPSILON, QuantizedKMeans  # noqa: E402

#: None when the installed erase_core predates the projection default (then None meant "none").
DEFAULT_PROJECTION_DIM = getattr(erase_core, "DEFAULT_PROJECTION_DIM", None)

try:
    from tqdm.auto import tqdm
except ImportError:  # pragma: no cover - tqdm is a dependency, but keep the benchmark usable
    def tqdm(it=None, **_):
        return it

RESULTS = ROOT / "benchmarks" / "results"
REAL_PATH = RESULTS / "minilm_bigbench.npy"
_CHUNK = 1 << 15


# ---------------------------------------------------------------------------- data
def make_embeddings(n: int, dim: int = 384, *, n_blobs: int = 50, seed: int = 0) -> np.ndarray:
    """Synthetic sentence-embedding-like unit vectors, float32 (n, dim).

    A mixture of ``n_blobs`` Gaussian blobs of unequal sizes (Dirichlet(1) weights) and spreads.
    Blob centres share a common direction (embedding models are anisotropic: unrelated sentences
    still have cosine ~0.1-0.2), so after normalisation the cosine between two points of one blob
    is ~0.35-0.6 and between blobs ~0.1-0.2: the clusters overlap, as topics do in MiniLM space.
    Generated in chunks, so the peak memory is the float32 output only.
    """
    rng = np.random.default_rng([seed, 0xB10B])
    common = rng.standard_normal(dim)
    common /= np.linalg.norm(common)
    centres = rng.standard_normal((n_blobs, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    centres = 0.6 * common + centres
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    weights = rng.dirichlet(np.ones(n_blobs))
    spreads = rng.uniform(0.8, 1.4, n_blobs)  # noise norm relative to the (unit) centre
    blob = rng.choice(n_blobs, size=n, p=weights)
    X = np.empty((n, dim), dtype=np.float32)
    for lo in range(0, n, _CHUNK):
        hi = min(n, lo + _CHUNK)
        b = blob[lo:hi]
        z = rng.standard_normal((hi - lo, dim), dtype=np.float32) * np.float32(1.0 / np.sqrt(dim))
        x = centres[b].astype(np.float32) + spreads[b, None].astype(np.float32) * z
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        X[lo:hi] = x
    return X


def make_ids(n: int) -> list[str]:
    return [str(i) for i in range(n)]


# ---------------------------------------------------------------------------- reference Lloyd
def assign(Y: np.ndarray, C: np.ndarray, yy: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Nearest centroid (ties to the lowest index) and the total squared distance."""
    cc = np.einsum("ij,ij->i", C, C)
    labels = np.empty(Y.shape[0], dtype=np.int64)
    total = 0.0
    for lo in range(0, Y.shape[0], _CHUNK):
        block = Y[lo : lo + _CHUNK]
        d2 = cc[None, :] - 2.0 * (block @ C.T)
        lab = np.argmin(d2, axis=1)
        labels[lo : lo + _CHUNK] = lab
        yb = np.einsum("ij,ij->i", block, block) if yy is None else yy[lo : lo + _CHUNK]
        total += float(np.sum(yb + d2[np.arange(len(lab)), lab]))
    return labels, total


def cluster_means(Y: np.ndarray, labels: np.ndarray, k: int, previous: np.ndarray | None = None):
    """Per-cluster means (empty clusters keep ``previous``) and counts."""
    sums = np.zeros((k, Y.shape[1]), dtype=np.float64)
    for lo in range(0, Y.shape[0], _CHUNK):
        lab = labels[lo : lo + _CHUNK]
        onehot = np.zeros((k, len(lab)), dtype=Y.dtype)
        onehot[lab, np.arange(len(lab))] = 1.0
        sums += onehot @ Y[lo : lo + _CHUNK]
    counts = np.bincount(labels, minlength=k)
    means = sums / np.maximum(counts, 1)[:, None]
    if previous is not None:
        means[counts == 0] = previous[counts == 0]
    return means, counts


def lloyd_reference(Y: np.ndarray, init_rows, n_iter: int) -> dict:
    """Plain float Lloyd from ``Y[init_rows]``: the same iteration structure as QuantizedKMeans
    (C_{t+1} = means of the assignment to C_t, empty cluster keeps its centroid, stop when the
    centroids repeat, final assignment to the last centroids) without the quantization."""
    C = np.asarray(Y[np.asarray(init_rows)], dtype=np.float64)
    k = C.shape[0]
    yy = np.einsum("ij,ij->i", Y, Y)
    prev = None
    iters = 0
    for _ in range(n_iter):
        labels, _ = assign(Y, C, yy)
        if prev is not None and np.array_equal(labels, prev):
            break  # C_{t+1} would equal C_t
        C, _ = cluster_means(Y, labels, k, C)
        prev = labels
        iters += 1
    labels, inertia = assign(Y, C, yy)
    return {"inertia": inertia, "labels": labels, "centroids": C, "n_iter": iters}


def partition_inertia(Y: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Inertia of a partition with its own (float) means."""
    means, _ = cluster_means(Y, labels, k)
    total = 0.0
    for lo in range(0, Y.shape[0], _CHUNK):
        diff = Y[lo : lo + _CHUNK] - means[labels[lo : lo + _CHUNK]]
        total += float(np.einsum("ij,ij->", diff, diff))
    return total


def clustering_coordinates(model: QuantizedKMeans, ids: list[str]) -> np.ndarray:
    """The model's clustering-space points (input units), row-aligned with ``ids``, one copy."""
    dim = model.coordinates(ids[:1]).shape[1]
    Y = np.empty((len(ids), dim), dtype=np.float64)
    for lo in range(0, len(ids), _CHUNK):
        Y[lo : lo + _CHUNK] = model.coordinates(ids[lo : lo + _CHUNK])
    return Y


def model_labels_by_row(model: QuantizedKMeans, n: int) -> np.ndarray:
    """Final labels aligned with rows 0..n-1 (ids are str(row))."""
    rows = np.fromiter((int(i) for i in model.ids_), dtype=np.int64, count=n)
    out = np.empty(n, dtype=np.int64)
    out[rows] = model.labels_
    return out


def objective_ratios(model: QuantizedKMeans, X: np.ndarray, ids: list[str], *, original_space: bool) -> dict:
    """Objective of the fitted model against unquantized Lloyd from the same seeds.

    ``obj_ratio``: in the clustering space (after projection if any), quantized inertia / float
    Lloyd inertia. ``orig_ratio`` (if ``original_space``): in the original input space, the
    inertia of the model's partition (with its own float means) / float Lloyd in the input space
    from the same seed points; this shows what a projection costs the downstream partition.
    """
    seed_rows = [int(i) for i in model.seed_ids_]
    Y = clustering_coordinates(model, ids)
    ref = lloyd_reference(Y, seed_rows, model.n_iter)
    del Y
    out = {
        "inertia_q": model.inertia(),
        "inertia_ref": ref["inertia"],
        "obj_ratio": model.inertia() / ref["inertia"],
        "n_iter_q": model.n_iter_,
        "n_iter_ref": ref["n_iter"],
    }
    if original_space:
        labels = model_labels_by_row(model, len(ids))
        ref_o = lloyd_reference(X, seed_rows, model.n_iter)  # float32 input is fine for a ratio
        out["inertia_part_orig"] = partition_inertia(X, labels, model.n_clusters)
        out["inertia_ref_orig"] = ref_o["inertia"]
        out["orig_ratio"] = out["inertia_part_orig"] / ref_o["inertia"]
    return out


# ---------------------------------------------------------------------------- forgets
def measure_forgets(model: QuantizedKMeans, ids: list[str], victims, *, time_budget_s: float | None = None,
                    min_count: int = 10, progress: bool = True, desc: str = "forget") -> dict:
    """Remove ``victims`` (row indices) one at a time; per-removal latency and recompute info.

    Stops early (and says so) when ``time_budget_s`` is exceeded, after at least ``min_count``.
    """
    times, recomputed, recompute_from = [], [], []
    start = time.perf_counter()
    it = tqdm(victims, desc=desc, leave=False, disable=not progress)
    for v in it:
        t0 = time.perf_counter()
        rep = model.remove([ids[int(v)]])
        times.append(time.perf_counter() - t0)
        recomputed.append(rep.recomputed)
        recompute_from.append(rep.recompute_from)
        if time_budget_s is not None and len(times) >= min_count and time.perf_counter() - start > time_budget_s:
            break
    t = np.array(times)
    rec = np.array(recomputed, dtype=bool)
    m = len(t)
    frac = float(rec.mean()) if m else float("nan")
    # Wilson 95% interval of the recompute fraction.
    z = 1.96
    centre = (frac + z * z / (2 * m)) / (1 + z * z / m)
    half = z * np.sqrt(frac * (1 - frac) / m + z * z / (4 * m * m)) / (1 + z * z / m)
    return {
        "n_forgets": m,
        "removed_rows": [int(v) for v in victims[:m]],
        "forget_p50_s": float(np.median(t)),
        "forget_p99_s": float(np.percentile(t, 99)),
        "forget_mean_s": float(t.mean()),
        "forget_max_s": float(t.max()),
        "fast_p50_s": float(np.median(t[~rec])) if (~rec).any() else float("nan"),
        "fast_mean_s": float(t[~rec].mean()) if (~rec).any() else float("nan"),
        "recompute_mean_s": float(t[rec].mean()) if rec.any() else float("nan"),
        "recompute_frac": frac,
        "recompute_frac_ci95": [float(max(0.0, centre - half)), float(min(1.0, centre + half))],
        "recompute_from_hist": {str(key): int(cnt) for key, cnt in zip(*np.unique(
            np.array([-2 if r is None else r for r in recompute_from]), return_counts=True)) if key != -2},
        "truncated_by_budget": m < len(victims),
    }


def resolved_projection(model: QuantizedKMeans) -> int | None:
    """The projection a fitted model actually uses (None: none), across API versions."""
    if hasattr(model, "projection_dim_"):
        return model.projection_dim_
    return model.projection_dim or None


# ---------------------------------------------------------------------------- timing helpers
def timed(fn: Callable[[], object]) -> tuple[float, object]:
    gc.collect()
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def faiss_train(X32: np.ndarray, k: int, n_iter: int, seed: int, *, all_points: bool = True):
    import faiss

    kw = dict(niter=n_iter, seed=seed, verbose=False)
    if all_points:
        kw["max_points_per_centroid"] = max(256, X32.shape[0] // k + 1)
    km = faiss.Kmeans(X32.shape[1], k, **kw)
    km.train(X32)
    return km


def faiss_inertia(km, X32: np.ndarray) -> float:
    D, _ = km.index.search(X32, 1)
    return float(D.astype(np.float64).sum())


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


# ---------------------------------------------------------------------------- sections
@dataclass
class Case:
    """One benchmark cell: a dataset, a k, the CLI options; sections fill ``row``."""

    dataset: str
    X: np.ndarray  # float32 (n, d), unit rows
    ids: list[str]
    k: int
    args: argparse.Namespace
    model: QuantizedKMeans | None = None
    removed_rows: list[int] = field(default_factory=list)
    digest_after_forgets: str | None = None
    row: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return self.X.shape[0]

    def new_model(self) -> QuantizedKMeans:
        return QuantizedKMeans(self.k, epsilon=self.args.epsilon, n_iter=self.args.n_iter, seed=self.args.seed,
                               projection_dim=self.args.projection_dim)

    def repeats(self) -> int:
        if self.args.repeats is not None:
            return self.args.repeats
        return 5 if self.n <= 10_000 else (3 if self.n <= 100_000 else 1)


def section_fit(case: Case) -> dict:
    """Fit time (median of a few) beside faiss.Kmeans training time, interleaved."""
    q_times, f_times, f_sub_times = [], [], []
    X32 = np.ascontiguousarray(case.X, dtype=np.float32)
    km = None
    for r in range(case.repeats()):
        case.model = None
        gc.collect()
        t, case.model = timed(lambda: case.new_model().fit(case.X, case.ids))
        q_times.append(t)
        t, km = timed(lambda: faiss_train(X32, case.k, case.args.n_iter, case.args.seed, all_points=True))
        f_times.append(t)
        if case.args.faiss_subsampled:
            t, _ = timed(lambda: faiss_train(X32, case.k, case.args.n_iter, case.args.seed, all_points=False))
            f_sub_times.append(t)
    out = {
        "fit_s": float(np.median(q_times)),
        "fit_runs_s": q_times,
        "faiss_s": float(np.median(f_times)),
        "faiss_runs_s": f_times,
        "fit_over_faiss": float(np.median(np.array(q_times) / np.array(f_times))),
        "faiss_inertia": faiss_inertia(km, X32),
        "n_iter_used": case.model.n_iter_,
    }
    if f_sub_times:
        out["faiss_subsampled_s"] = float(np.median(f_sub_times))
    return out


def section_objective(case: Case) -> dict:
    out = objective_ratios(case.model, case.X, case.ids, original_space=case.args.original_space)
    out["projection_dim_used"] = resolved_projection(case.model)
    if out["projection_dim_used"] is None:
        out["faiss_obj_ratio"] = case.row["faiss_inertia"] / out["inertia_ref"]
    return out


def section_forget(case: Case) -> dict:
    rng = np.random.default_rng([case.args.seed, case.n, case.k, 0xF0])
    victims = rng.choice(case.n, size=min(case.args.forgets, case.n - case.k), replace=False)
    out = measure_forgets(case.model, case.ids, victims, time_budget_s=case.args.forget_budget_s,
                          desc=f"forget n={case.n} k={case.k}")
    case.removed_rows = out.pop("removed_rows")
    try:
        case.digest_after_forgets = case.model.digest()
    except Exception as exc:  # the digest is under concurrent development; don't lose the run
        out["digest_error"] = repr(exc)
    return out


def section_rebuild(case: Case) -> dict:
    """Full rebuild = fit on the remaining data (what forgetting costs without the exact update)."""
    keep = np.ones(case.n, dtype=bool)
    keep[case.removed_rows] = False
    rows = np.flatnonzero(keep)
    Xr = case.X[rows]
    ids_r = [case.ids[i] for i in rows]
    if case.n >= 500_000:
        case.model = None  # free the forgotten model's ~n*d*8 bytes before the rebuild
    gc.collect()
    t, fresh = timed(lambda: case.new_model().fit(Xr, ids_r))
    out = {"rebuild_s": t}
    if case.digest_after_forgets is not None:
        try:
            out["exact_after_forgets"] = fresh.digest() == case.digest_after_forgets
        except Exception as exc:
            out["digest_error"] = repr(exc)
    out["forget_mean_over_rebuild"] = case.row["forget_mean_s"] / t
    out["forget_p50_over_rebuild"] = case.row["forget_p50_s"] / t
    return out


#: The benchmark, in order. Append a section (and its TABLE_COLUMNS) to measure more.
SECTIONS: list[Callable[[Case], dict]] = [section_fit, section_objective, section_forget, section_rebuild]

#: (header, row key, format) of the printed table.
TABLE_COLUMNS: list[tuple[str, str, Callable[[object], str]]] = [
    ("data", "dataset", str),
    ("n", "n", lambda v: f"{v:,}"),
    ("k", "k", str),
    ("iters", "n_iter_used", str),
    ("fit s", "fit_s", lambda v: f"{v:.3g}"),
    ("faiss s", "faiss_s", lambda v: f"{v:.3g}"),
    ("fit/faiss", "fit_over_faiss", lambda v: f"{v:.2f}"),
    ("obj ratio", "obj_ratio", lambda v: f"{v:.4f}"),
    ("forget p50", "forget_p50_s", lambda v: _fmt_time(v)),
    ("p99", "forget_p99_s", lambda v: _fmt_time(v)),
    ("mean", "forget_mean_s", lambda v: _fmt_time(v)),
    ("recompute", "recompute_frac", lambda v: f"{100 * v:.1f}%"),
    ("rebuild s", "rebuild_s", lambda v: f"{v:.3g}"),
    ("mean/rebuild", "forget_mean_over_rebuild", lambda v: f"{100 * v:.2f}%"),
    ("exact", "exact_after_forgets", str),
]


def _fmt_time(s: float) -> str:
    if s != s:
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.0f}us"
    if s < 1:
        return f"{s * 1e3:.1f}ms"
    return f"{s:.2f}s"


def format_table(rows: list[dict]) -> str:
    header = [c[0] for c in TABLE_COLUMNS]
    body = [[(fmt(r[key]) if key in r and r[key] is not None else "-") for _, key, fmt in TABLE_COLUMNS] for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(header)]
    lines = [" | ".join(h.rjust(w) for h, w in zip(header, widths)), "-+-".join("-" * w for w in widths)]
    lines += [" | ".join(c.rjust(w) for c, w in zip(b, widths)) for b in body]
    return "\n".join(lines)


def markdown_table(rows: list[dict]) -> str:
    header = [c[0] for c in TABLE_COLUMNS]
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        out.append("| " + " | ".join(fmt(r[key]) if key in r and r[key] is not None else "-"
                                     for _, key, fmt in TABLE_COLUMNS) + " |")
    return "\n".join(out)


# ---------------------------------------------------------------------------- machine info
def machine_info() -> dict:
    import faiss

    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "sched_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "processor": _cpu_model(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "faiss": getattr(faiss, "__version__", "?"),
        "faiss_omp_threads": faiss.omp_get_max_threads(),
        "mem_total_gib": _mem_total_gib(),
        "loadavg_at_start": os.getloadavg(),
    }
    try:
        info["git_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                                            text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "erase_core"], cwd=ROOT, capture_output=True,
                               text=True, timeout=10).stdout.strip()
        info["erase_core_dirty"] = bool(dirty)
    except Exception:
        pass
    h = hashlib.sha256()
    for p in sorted((ROOT / "erase_core").glob("*.py")):
        h.update(p.read_bytes())
    info["erase_core_sha256"] = h.hexdigest()[:16]
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _mem_total_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


# ---------------------------------------------------------------------------- plot
def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = sorted({r["k"] for r in rows})
    fig, axes = plt.subplots(1, len(ks), figsize=(5.5 * len(ks), 4.2), squeeze=False)
    for ax, k in zip(axes[0], ks):
        syn = sorted((r for r in rows if r["k"] == k and r["dataset"] == "synthetic"), key=lambda r: r["n"])
        if syn:
            n = [r["n"] for r in syn]
            ax.plot(n, [r["forget_p50_s"] for r in syn], "o-", label="forget p50")
            ax.plot(n, [r["forget_mean_s"] for r in syn], "s-", label="forget mean")
            ax.plot(n, [r["forget_p99_s"] for r in syn], "v:", label="forget p99", alpha=0.6)
            ax.plot(n, [r["rebuild_s"] for r in syn], "^-", label="rebuild (fit on rest)")
            ax.plot(n, [r["faiss_s"] for r in syn], "x--", label="faiss.Kmeans train", alpha=0.6)
        for r in rows:
            if r["k"] == k and r["dataset"] != "synthetic":
                ax.plot([r["n"]] * 3, [r["forget_p50_s"], r["forget_mean_s"], r["rebuild_s"]], "k*", ms=9,
                        label=f"{r['dataset']} (p50, mean, rebuild)")
        ax.axhline(1e-4, color="grey", lw=0.8, ls="--")
        ax.text(0.98, 1.15e-4, "100 us p50 target", fontsize=7, color="grey", ha="right",
                transform=ax.get_yaxis_transform())
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("n (points)")
        ax.set_ylabel("seconds")
        ax.set_title(f"k={k}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    eps = rows[0].get("epsilon")
    pd = rows[0].get("projection_dim_used", rows[0].get("projection_dim"))
    fig.suptitle(f"QuantizedKMeans forget latency vs full rebuild (epsilon={eps}, projection_dim={pd})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------------- main
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000, 1_000_000])
    p.add_argument("--ks", type=int, nargs="+", default=[4, 16])
    p.add_argument("--forgets", type=int, default=200, help="random single-id removals per case")
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--epsilon", type=float, default=None, help=f"grid spacing (library default {DEFAULT_EPSILON})")
    p.add_argument("--projection-dim", type=int, default=None,
                   help="random projection dimension; 0 = none (default: the library's, "
                        f"{DEFAULT_PROJECTION_DIM} for inputs wider than that)")
    p.add_argument("--forget-budget-s", type=float, default=None,
                   help="stop the removals of a case after this many seconds (at least 10 are done; "
                        "the JSON says truncated_by_budget)")
    p.add_argument("--n-iter", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=None, help="fit repeats (default 5 / 3 / 1 by size)")
    p.add_argument("--faiss-subsampled", action="store_true",
                   help="also time faiss with its default subsampling (256 points per centroid)")
    p.add_argument("--no-original-space", dest="original_space", action="store_false",
                   help="skip the input-space partition ratio (only informative with a projection)")
    p.add_argument("--no-real", action="store_true", help=f"skip the real-data row even if {REAL_PATH.name} exists")
    p.add_argument("--threads", type=int, default=1,
                   help="BLAS/OpenMP threads for both QuantizedKMeans (numpy) and faiss; 0 = library defaults. "
                        "Default 1: on a shared machine multi-threaded timings swing 10x (docs/benchmarks.md)")
    p.add_argument("--out", type=Path, default=RESULTS / "core.json")
    p.add_argument("--plot", type=Path, default=None, help="PNG path (default: --out with .png)")
    p.add_argument("--merge", type=Path, nargs="+", default=None, metavar="JSON",
                   help="run nothing: concatenate the rows of these result files (e.g. a separate n=1M run) "
                        "into --out, print the table and redraw the plot")
    return p.parse_args(argv)


def datasets(args):
    """(name, X) pairs, generated lazily so only one big array lives at a time."""
    for n in args.sizes:
        yield "synthetic", (lambda n=n: make_embeddings(n, args.dim, seed=args.seed))
    if args.no_real:
        return
    if REAL_PATH.exists():
        yield "real", (lambda: np.load(REAL_PATH, mmap_mode="r"))
    else:
        print(f"note: {REAL_PATH.relative_to(ROOT)} not found, skipping the real-data (MiniLM) row", flush=True)


def run_case(case: Case) -> dict:
    case.row.update(dataset=case.dataset, n=case.n, k=case.k, d=case.X.shape[1],
                    epsilon=case.args.epsilon if case.args.epsilon is not None else DEFAULT_EPSILON,
                    projection_dim=case.args.projection_dim, n_iter=case.args.n_iter)
    t0 = time.perf_counter()
    for section in SECTIONS:
        ts = time.perf_counter()
        case.row.update(section(case))
        case.row.setdefault("section_s", {})[section.__name__] = round(time.perf_counter() - ts, 3)
    case.row["case_s"] = time.perf_counter() - t0
    case.row["peak_rss_gib"] = peak_rss_gib()
    case.model = None
    return case.row


def set_threads(n: int) -> dict:
    """Limit numpy's BLAS and faiss's OpenMP to ``n`` threads (0: leave the defaults)."""
    import faiss

    info: dict = {"threads_requested": n}
    if n > 0:
        faiss.omp_set_num_threads(n)
        try:
            from threadpoolctl import threadpool_limits

            set_threads._limits = threadpool_limits(limits=n)  # keep the limiter alive
        except ImportError:
            info["warning"] = "threadpoolctl not installed: set OPENBLAS_NUM_THREADS/OMP_NUM_THREADS instead"
    info["faiss_omp_threads"] = faiss.omp_get_max_threads()
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = [{k: d.get(k) for k in ("internal_api", "num_threads", "version")} for d in threadpool_info()]
    except ImportError:
        pass
    return info


def merge(args: argparse.Namespace, plot_path: Path) -> int:
    payloads = [json.loads(p.read_text()) for p in args.merge]
    rows = sorted((r for pl in payloads for r in pl["rows"]), key=lambda r: (r["dataset"] != "synthetic", r["n"], r["k"]))
    merged = {"machine": payloads[0]["machine"], "options": payloads[0]["options"], "targets": TARGETS,
              "merged_from": [{"file": str(p), "machine": pl["machine"], "options": pl["options"]}
                              for p, pl in zip(args.merge, payloads)],
              "rows": rows, "table_markdown": markdown_table(rows)}
    args.out.write_text(json.dumps(merged, indent=1, default=_json_default))
    print(format_table(rows))
    plot(rows, plot_path)
    print(f"\nwrote {args.out} and {plot_path}")
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    plot_path = args.plot or args.out.with_suffix(".png")
    if args.merge:
        return merge(args, plot_path)
    info = machine_info()
    info["threads"] = set_threads(args.threads)
    print(f"machine: {info['cpu_count']} cpus ({info['processor']}), numpy {info['numpy']}, faiss {info['faiss']}, "
          f"load {info['loadavg_at_start']}", flush=True)
    rows: list[dict] = []
    todo = list(datasets(args))
    bar = tqdm(total=len(todo) * len(args.ks), desc="cases")
    for name, load in todo:
        X = load()
        if X.shape[1] != args.dim and name == "synthetic":
            raise SystemExit(f"dimension mismatch {X.shape[1]} != {args.dim}")
        X = np.ascontiguousarray(X, dtype=np.float32)
        ids = make_ids(X.shape[0])
        for k in args.ks:
            row = run_case(Case(name, X, ids, k, args))
            rows.append(row)
            bar.update(1)
            print("\n" + format_table(rows), flush=True)
            _write(args.out, info, args, rows)  # keep partial results of long runs
        del X, ids
        gc.collect()
    bar.close()
    print()
    print(format_table(rows))
    _write(args.out, info, args, rows)
    plot(rows, plot_path)
    print(f"\nwrote {args.out} and {plot_path}")
    return 0


def _write(path: Path, info: dict, args: argparse.Namespace, rows: list[dict]) -> None:
    opts = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    payload = {"machine": info, "options": opts, "targets": TARGETS, "rows": rows, "table_markdown": markdown_table(rows)}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=1, default=_json_default))
    tmp.replace(path)


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(type(o))


TARGETS = {
    "forget_p50_s_max_at_n_ge_100k": 100e-6,
    "forget_mean_over_rebuild_max_at_n_ge_100k": 0.01,
    "fit_over_faiss_max": 2.0,
    "obj_ratio_max": 1.05,
}


if __name__ == "__main__":
    sys.exit(main())
