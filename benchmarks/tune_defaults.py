#!/usr/bin/env python
"""Choose QuantizedKMeans defaults (epsilon, projection_dim) by measurement.

Sweeps epsilon x projection_dim on synthetic clustered unit vectors (the generator of
bench_core.py: d=384, 50 overlapping blobs, normalised rows) for n in --sizes and k in --ks, and
measures for each cell:

(a) obj_ratio: quantized inertia / inertia of unquantized float Lloyd from the same seeds
    (``model.seed_ids_``), same n_iter and empty-cluster rule, in the same clustering space
    (``model.coordinates``: after the projection if any). Also orig_ratio: the model's partition
    scored in the 384-d input space against float Lloyd there from the same seed points;
(b) recompute_frac: fraction of random single-point removals (sequential, no restore) whose
    update had to recompute (Wilson 95% interval in the JSON);
(c) forget_mean / fit: mean removal time relative to the fit time.

Recommendation: the (epsilon, projection_dim) whose obj_ratio <= --max-obj-ratio for every k at
the largest n and whose mean recompute fraction there is smallest.

    python benchmarks/tune_defaults.py            # ~15-20 min on the shared 2-core dev VM
    python benchmarks/tune_defaults.py --aggregate benchmarks/results/tune_defaults*.json

Removals in one run are correlated (the model state decides how close centroids sit to grid
boundaries), so compare finalists over several --seed values with --aggregate rather than trusting
one run's Wilson interval. Results and the chosen defaults: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_core import (  # noqa: E402
    RESULTS,
    clustering_coordinates,
    lloyd_reference,
    machine_info,
    make_embeddings,
    make_ids,
    measure_forgets,
    model_labels_by_row,
    partition_inertia,
    tqdm,
)

import erase_core  # noqa: E402
from erase_core import QuantizedKMeans  # noqa: E402

# "none" on the command line: 0 since projection_dim=None became "library default" (32-d auto).
NO_PROJECTION = 0 if hasattr(erase_core, "DEFAULT_PROJECTION_DIM") else None


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--ks", type=int, nargs="+", default=[4, 16])
    p.add_argument("--epsilons", type=float, nargs="+", default=[0.005, 0.01, 0.02, 0.05, 0.1, 0.2])
    p.add_argument("--projections", type=str, nargs="+", default=["none", "32", "64", "128"])
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--n-iter", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--forgets", type=int, default=400, help="max removals per cell")
    p.add_argument("--min-forgets", type=int, default=8, help="removals done even past the time budget")
    p.add_argument("--budget-s", type=float, default=None,
                   help="removal time budget per cell (default 3 s at n<=10k, 6 s above)")
    p.add_argument("--max-obj-ratio", type=float, default=1.05)
    p.add_argument("--max-orig-ratio", type=float, default=1.05,
                   help="second, stricter recommendation: also bound the input-space partition ratio")
    p.add_argument("--out", type=Path, default=RESULTS / "tune_defaults.json")
    p.add_argument("--aggregate", type=Path, nargs="+", default=None, metavar="JSON",
                   help="run nothing: pool several result files (e.g. --seed 0/1/2 runs at one n) per "
                        "(epsilon, projection, k): mean recompute fraction over runs, worst objective ratios; "
                        "apply the rule and store the result as 'final_recommendation' in --out")
    p.add_argument("--report-only", action="store_true",
                   help="re-print the tables and recompute the recommendation from an existing --out JSON")
    return p.parse_args(argv)


def fmt_row(r: dict) -> str:
    proj = "none" if r["projection_dim"] is None else str(r["projection_dim"])
    lo, hi = r["recompute_frac_ci95"]
    return (f"{r['n']:>7,} {r['k']:>3} {proj:>5} {r['epsilon']:>6g} {r['n_iter_q']:>3}/{r['n_iter_ref']:<3}"
            f" {r['obj_ratio']:>8.4f} {r['orig_ratio']:>8.4f} {100 * r['recompute_frac']:>6.1f}%"
            f" [{100 * lo:4.1f},{100 * hi:5.1f}] {r['n_forgets']:>4} {r['fit_s']:>7.3f}"
            f" {r['forget_p50_s'] * 1e6:>8.0f} {r['forget_mean_s'] * 1e3:>9.2f} {100 * r['forget_mean_over_fit']:>8.3f}%")


HEADER = (f"{'n':>7} {'k':>3} {'proj':>5} {'eps':>6} {'it':>7} {'obj':>8} {'orig':>8} {'recomp':>7}"
          f" {'95% CI':>12} {'#rm':>4} {'fit s':>7} {'p50 us':>8} {'mean ms':>9} {'mean/fit':>9}")


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.aggregate:
        return aggregate(args)
    if args.report_only:
        payload = json.loads(args.out.read_text())
        rows = payload["rows"]
        rec = recommend(rows, args.max_obj_ratio, args.max_orig_ratio)
        payload["recommendation"] = rec
        args.out.write_text(json.dumps(payload, indent=1, default=float))
        print(HEADER)
        print("\n".join(fmt_row(r) for r in rows))
        print()
        print(summary_tables(rows, args))
        print(json.dumps(rec, indent=1))
        return 0
    projections = [NO_PROJECTION if p.lower() in ("none", "0") else int(p) for p in args.projections]
    info = machine_info()
    rows: list[dict] = []
    t_start = time.perf_counter()
    print(HEADER, flush=True)
    for n in args.sizes:
        X = make_embeddings(n, args.dim, seed=args.seed)
        ids = make_ids(n)
        budget = args.budget_s if args.budget_s is not None else (3.0 if n <= 10_000 else 6.0)
        for k in args.ks:
            for proj in projections:
                ref = None
                for eps in tqdm(args.epsilons, desc=f"n={n} k={k} proj={proj}", leave=False):
                    model = QuantizedKMeans(k, epsilon=eps, n_iter=args.n_iter, seed=args.seed, projection_dim=proj)
                    t0 = time.perf_counter()
                    model.fit(X, ids)
                    fit_s = time.perf_counter() - t0
                    if ref is None:  # the seeding does not depend on epsilon: one reference per (n, k, proj)
                        seed_rows = [int(i) for i in model.seed_ids_]
                        Y = clustering_coordinates(model, ids)
                        r_space = lloyd_reference(Y, seed_rows, args.n_iter)
                        del Y
                        r_orig = lloyd_reference(X, seed_rows, args.n_iter)
                        ref = dict(seeds=model.seed_ids_, inertia=r_space["inertia"], n_iter=r_space["n_iter"],
                                   inertia_orig=r_orig["inertia"])
                    assert model.seed_ids_ == ref["seeds"], "seeding changed with epsilon"
                    inertia_q = model.inertia()
                    part_orig = partition_inertia(X, model_labels_by_row(model, n), k)
                    rng = np.random.default_rng([args.seed, n, k, 0xF0])
                    victims = rng.choice(n, size=min(args.forgets, n - k), replace=False)
                    f = measure_forgets(model, ids, victims, time_budget_s=budget, min_count=args.min_forgets,
                                        progress=False)
                    used = getattr(model, "projection_dim_", proj or None)  # None: no projection
                    row = dict(n=n, k=k, projection_dim=used, epsilon=eps, fit_s=fit_s, inertia_q=inertia_q,
                               inertia_ref=ref["inertia"], obj_ratio=inertia_q / ref["inertia"],
                               inertia_part_orig=part_orig, inertia_ref_orig=ref["inertia_orig"],
                               orig_ratio=part_orig / ref["inertia_orig"], n_iter_q=model.n_iter_,
                               n_iter_ref=ref["n_iter"], **f)
                    row["forget_mean_over_fit"] = row["forget_mean_s"] / fit_s
                    rows.append(row)
                    print(fmt_row(row), flush=True)
                    del model
                _dump(args, info, rows, None, time.perf_counter() - t_start)
        del X, ids
    rec = recommend(rows, args.max_obj_ratio, args.max_orig_ratio)
    elapsed = time.perf_counter() - t_start
    _dump(args, info, rows, rec, elapsed)
    print()
    print(summary_tables(rows, args))
    print()
    print(json.dumps(rec, indent=1))
    print(f"\nwrote {args.out} ({elapsed / 60:.1f} min)")
    return 0


def _dump(args, info, rows, rec, elapsed):
    args.out.parent.mkdir(parents=True, exist_ok=True)
    opts = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    clean = [{k: v for k, v in r.items() if k != "removed_rows"} for r in rows]
    payload = dict(machine=info, options=opts, elapsed_s=elapsed, rows=clean, recommendation=rec)
    args.out.write_text(json.dumps(payload, indent=1, default=float))


def recommend(rows: list[dict], max_ratio: float, max_orig_ratio: float | None = None) -> dict:
    """At the largest n: among (epsilon, projection_dim) with obj_ratio <= max_ratio for every k,
    the one with the smallest mean recompute fraction (ties: smaller objective ratio). The
    ``strict`` variant also requires orig_ratio <= max_orig_ratio (input-space partition)."""
    n_max = max(r["n"] for r in rows)
    ks = sorted({r["k"] for r in rows})
    cells: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["n"] == n_max:
            cells.setdefault((r["epsilon"], r["projection_dim"]), []).append(r)
    candidates = []
    for (eps, proj), rs in cells.items():
        if len(rs) != len(ks):
            continue
        candidates.append(dict(
            epsilon=eps, projection_dim=proj,
            max_obj_ratio=max(r["obj_ratio"] for r in rs),
            max_orig_ratio=max(r["orig_ratio"] for r in rs),
            mean_recompute_frac=float(np.mean([r["recompute_frac"] for r in rs])),
            recompute_frac_by_k={str(r["k"]): r["recompute_frac"] for r in rs},
            recompute_ci95_by_k={str(r["k"]): r["recompute_frac_ci95"] for r in rs},
            n_forgets_by_k={str(r["k"]): r["n_forgets"] for r in rs},
            forget_mean_over_fit_by_k={str(r["k"]): r["forget_mean_over_fit"] for r in rs},
        ))

    def best(pred):
        ok = sorted((c for c in candidates if pred(c)), key=lambda c: (c["mean_recompute_frac"], c["max_obj_ratio"]))
        return ok

    primary = best(lambda c: c["max_obj_ratio"] <= max_ratio)
    out = dict(rule=f"obj_ratio <= {max_ratio} for every k at n={n_max:,}, then min mean recompute fraction",
               n=n_max, best=primary[0] if primary else None, runners_up=primary[1:5],
               n_feasible=len(primary), n_cells=len(candidates))
    if max_orig_ratio is not None:
        strict = best(lambda c: c["max_obj_ratio"] <= max_ratio and c["max_orig_ratio"] <= max_orig_ratio)
        out["strict_rule"] = out["rule"] + f", and input-space orig_ratio <= {max_orig_ratio}"
        out["strict_best"] = strict[0] if strict else None
        out["strict_runners_up"] = strict[1:4]
    return out


def aggregate(args) -> int:
    """Pool runs (different data/model seeds) at the largest common n and apply the rule."""
    runs = [(p.name, json.loads(p.read_text())) for p in args.aggregate]
    n = max(r["n"] for _, pl in runs for r in pl["rows"])
    pooled: dict[tuple, dict] = {}
    for name, pl in runs:
        for r in pl["rows"]:
            if r["n"] != n:
                continue
            key = (r["epsilon"], r["projection_dim"], r["k"])
            cell = pooled.setdefault(key, {"runs": []})
            cell["runs"].append(dict(file=name, seed=pl["options"]["seed"], obj_ratio=r["obj_ratio"],
                                     orig_ratio=r["orig_ratio"], recompute_frac=r["recompute_frac"],
                                     n_forgets=r["n_forgets"]))
    ks = sorted({k for _, _, k in pooled})
    configs = sorted({(e, p) for e, p, _ in pooled}, key=lambda c: (c[1] or 0, c[0]))
    table, cands = [], []
    for e, p in configs:
        per_k = {}
        for k in ks:
            runs_k = pooled.get((e, p, k), {"runs": []})["runs"]
            seeds = {r["seed"] for r in runs_k}
            if not runs_k:
                continue
            # one value per seed (the run with most removals), then the mean over seeds
            best = {s: max((r for r in runs_k if r["seed"] == s), key=lambda r: r["n_forgets"]) for s in seeds}
            per_k[k] = dict(seeds=sorted(seeds), recompute_by_seed=[best[s]["recompute_frac"] for s in sorted(seeds)],
                            mean_recompute=float(np.mean([b["recompute_frac"] for b in best.values()])),
                            max_obj_ratio=max(b["obj_ratio"] for b in best.values()),
                            max_orig_ratio=max(b["orig_ratio"] for b in best.values()))
        if len(per_k) != len(ks) or any(len(v["seeds"]) < 2 for v in per_k.values()):
            continue  # only configurations measured on several seeds compete
        c = dict(epsilon=e, projection_dim=p, per_k={str(k): v for k, v in per_k.items()},
                 mean_recompute=float(np.mean([v["mean_recompute"] for v in per_k.values()])),
                 max_obj_ratio=max(v["max_obj_ratio"] for v in per_k.values()),
                 max_orig_ratio=max(v["max_orig_ratio"] for v in per_k.values()))
        cands.append(c)
        table.append(f"eps={e:<5g} proj={str(p):>4}: mean recompute {100 * c['mean_recompute']:5.2f}%  "
                     + "  ".join(f"k={k}: " + "/".join(f"{100 * x:.1f}" for x in per_k[k]["recompute_by_seed"]) + "%"
                                 for k in ks)
                     + f"  max obj {c['max_obj_ratio']:.4f}  max input-space {c['max_orig_ratio']:.4f}")
    feasible = sorted((c for c in cands if c["max_obj_ratio"] <= args.max_obj_ratio),
                      key=lambda c: (c["mean_recompute"], c["max_obj_ratio"]))
    rec = dict(rule=f"n={n:,}, pooled over seeds: worst obj_ratio <= {args.max_obj_ratio} for every k and seed, "
                    "then min mean recompute fraction (mean over k of the mean over seeds)",
               files=[name for name, _ in runs], best=feasible[0] if feasible else None,
               ranking=[(c["epsilon"], c["projection_dim"], c["mean_recompute"], c["max_obj_ratio"]) for c in feasible],
               candidates=cands)
    print("\n".join(table))
    print(json.dumps({k: rec[k] for k in ("rule", "ranking")}, indent=1))
    payload = json.loads(args.out.read_text()) if args.out.exists() else {}
    payload["final_recommendation"] = rec
    args.out.write_text(json.dumps(payload, indent=1, default=float))
    print(f"wrote final_recommendation into {args.out}")
    return 0


def summary_tables(rows: list[dict], args) -> str:
    """Per (n, k): epsilon x projection grids of obj_ratio and recompute fraction."""
    projections = sorted({r["projection_dim"] for r in rows}, key=lambda p: (p is not None, p or 0))
    eps_list = sorted({r["epsilon"] for r in rows})
    out = []
    for n in sorted({r["n"] for r in rows}):
        for k in sorted({r["k"] for r in rows}):
            lookup = {(r["epsilon"], r["projection_dim"]): r for r in rows if r["n"] == n and r["k"] == k}
            out.append(f"n={n:,} k={k}: obj_ratio / recompute% / orig_ratio")
            out.append("eps    " + "".join(f"{('proj=' + str(p)) if p else 'no proj':>24}" for p in projections))
            for e in eps_list:
                cells = []
                for p in projections:
                    r = lookup.get((e, p))
                    cells.append("-" if r is None else
                                 f"{r['obj_ratio']:.3f}/{100 * r['recompute_frac']:.1f}%/{r['orig_ratio']:.3f}")
                out.append(f"{e:<7g}" + "".join(f"{c:>24}" for c in cells))
            out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
