"""``erase bench``: command-line front end of :mod:`erase_core.evaluation.bench`."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from .bench import CPU_TASKS, EXTRA_METHODS, PAPER_METHODS, Bench, BenchConfig
from .bigbench import ENV_VAR, GROUP_BY, available_tasks


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="erase bench", description=(
        "Reproduce the ERASE paper on BIG-bench: accuracy of zero-shot, random, kNN, ACoT and ERASE "
        "(and variants) k-shot prompts, SISA fine-tuning, unlearning and holistic cost, and accuracy "
        "under deletion. Every stage is cached, so a rerun resumes."))
    p.add_argument("--tasks", type=_names, default=None, help=f"comma-separated task names (default {','.join(CPU_TASKS)}; "
                   "--full: every task folder in the data directory)")
    p.add_argument("--methods", type=_names, default=None, help=f"default {','.join(PAPER_METHODS + EXTRA_METHODS)}")
    p.add_argument("--k", type=_ints, default=None, help="shots, comma-separated (default 2,3,4; --full 2,3,4,8)")
    p.add_argument("--seeds", type=int, default=None, help="seeds per seeded method (default 5; --full 10)")
    p.add_argument("--n-test", type=int, default=None, help="test questions per task (default 60; --full: half the task)")
    p.add_argument("--data-dir", default=None, help=f"folder of <task>/task.json (default ${ENV_VAR}, else the bundled tasks)")
    p.add_argument("--cache-dir", default=None, help="where stage results are cached (default ~/.cache/erase/bench)")
    p.add_argument("--out", default="docs", help="folder for results.md, results.json and img/ (default docs)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--model", default=None, help="local model folder or hub id (default SmolLM2-135M-Instruct GGUF)")
    p.add_argument("--gguf-file", default=None, help="GGUF file inside --model")
    p.add_argument("--backend", choices=["cached", "batched"], default=None,
                   help="cached: reuse the prefix KV cache (CPU default); batched: many prompts per pass (CUDA default)")
    p.add_argument("--sisa-pool", type=int, default=None, help="examples SISA fine-tunes on (default 80; --full 400)")
    p.add_argument("--sisa-epochs", type=int, default=None, help="fine-tuning epochs per slice step (default 2; --full 3)")
    p.add_argument("--sisa-seen", type=_ints, default=None, help="pool sizes for accuracy against examples seen (default 20,40,80)")
    p.add_argument("--sisa-tasks", type=_names, default=None, help="tasks to run SISA on (default all)")
    p.add_argument("--group-by", choices=list(GROUP_BY), default="context",
                   help="examples kept on one side of the split: sharing a context (default), an identical input, or none")
    p.add_argument("--no-sisa", action="store_true", help="skip the SISA stage")
    p.add_argument("--no-deletion", action="store_true", help="skip accuracy under deletion")
    p.add_argument("--full", action="store_true", help="the paper-scale run (for a GPU machine)")
    p.add_argument("--quick", action="store_true", help="one task, a few questions, one seed (runs in the test suite)")
    p.add_argument("--time-budget", type=float, default=None,
                   help="seconds after which no new task starts (a rerun resumes from the cache)")
    p.add_argument("--notes", default=None, help="a markdown file whose text opens the report (provenance, caveats)")
    p.add_argument("--report-only", action="store_true", help="only rewrite the report from --out/results.json")
    p.add_argument("--price", type=_price, default=None, metavar="A,B",
                   help="price every query at A seconds per query + B seconds per token (default: fitted per task "
                        "to the run's own timings; see docs/cost.md)")
    return p


def _price(text: str) -> dict:
    try:
        a, b = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--price needs two numbers A,B (seconds per query, per token); got {text!r}")
    if not (a >= 0 and b >= 0):
        raise argparse.ArgumentTypeError(f"--price must be non-negative; got {text!r}")
    return {"a": a, "b": b}


def _notes(args) -> str:
    return Path(args.notes).read_text() if args.notes else ""


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    cfg = BenchConfig(data_dir=args.data_dir, cache_dir=args.cache_dir, device=args.device, model=args.model,
                      group_by=args.group_by,
                      gguf_file=args.gguf_file, backend=args.backend)
    if args.full:
        cfg.tasks = available_tasks(args.data_dir) or list(CPU_TASKS)
        cfg.ks, cfg.seeds, cfg.n_test = [2, 3, 4, 8], list(range(10)), None
        cfg.sisa_pool, cfg.sisa_seen, cfg.sisa_epochs, cfg.deletion_draws = 400, [20, 40, 80, 160, 320], 3, 5
    if args.quick:
        cfg.tasks, cfg.ks, cfg.seeds, cfg.n_test = ["intent_recognition"], [2], [0], 6
        cfg.methods = ["zero-shot", "random", "knn", "acot", "erase"]
        cfg.deletion_methods, cfg.deletion_m, cfg.deletion_draws, cfg.deletion_seeds = ["erase", "knn"], [1], 1, [0]
        cfg.cost_forgets, cfg.sisa_shards, cfg.sisa_pool, cfg.sisa_seen, cfg.sisa_epochs = 3, [1], 20, [], 1
        cfg.sisa_max_slices = 2
        cfg.deletion_k = 2
    for name, value in (("tasks", args.tasks), ("methods", args.methods), ("ks", args.k), ("n_test", args.n_test),
                        ("sisa_pool", args.sisa_pool), ("sisa_tasks", args.sisa_tasks),
                        ("sisa_epochs", args.sisa_epochs), ("sisa_seen", args.sisa_seen)):
        if value is not None:
            setattr(cfg, name, value)
    if args.seeds is not None:
        cfg.seeds = list(range(args.seeds))
    if cfg.deletion_k not in cfg.ks:
        cfg.deletion_k = max(cfg.ks)
    return cfg.validate()


def main(argv: list[str] | None = None) -> int:
    from .report import load_results, write_report

    args = build_parser().parse_args(argv)
    if args.report_only:
        results = load_results(Path(args.out) / "results.json")
        if args.price is not None:
            results["price"] = args.price
        print(write_report(results, args.out, preface=_notes(args)))
        return 0
    cfg = config_from_args(args)
    start = time.perf_counter()
    bench = Bench(cfg, progress=sys.stderr.isatty() or bool(os.environ.get("ERASE_PROGRESS")))
    results = bench.run(with_deletion=not args.no_deletion, with_sisa=not args.no_sisa, time_budget=args.time_budget)
    results["device"] = str(bench.lm.device) if bench._lm is not None else cfg.device
    results["backend"] = cfg.resolved_backend()
    if args.price is not None:
        results["price"] = args.price
    results["seconds"] = time.perf_counter() - start
    path = write_report(results, args.out, preface=_notes(args))
    exact = all(d["exact"] and not d["forgotten_in_prompt"] for e in results["tasks"].values() for d in e.get("deletion", []))
    print(f"wrote {path} ({results['seconds']:.0f} s); every forget exact: {exact}")
    print(json.dumps({t: {f"{c['method']} k={c['k']} s={c['seed']}": round(c["accuracy"], 3) for c in e["cells"]}
                      for t, e in results["tasks"].items()})[:2000])
    return 0 if exact else 1
