"""The paper's accuracy comparison on the BBII tasks, one task at a time, resumable.

Runs ``erase bench``'s accuracy cells (no deletion, no SISA unless ``--sisa``) for each task in
turn, writes ``<out>/<task>.json`` as soon as the task finishes and, with ``--commit``, commits
that one file. Every cell is cached under ``--cache-dir`` by the whole configuration (model, back
end, task content, split, format, method, k, seed), so an interrupted run resumes where it
stopped, in this session or another; a task whose JSON exists with the same configuration is
skipped. ``--report`` rewrites the table and plot from the JSON files only.

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 nice -n 15 .venv/bin/python benchmarks/bench_bbii.py \\
        --data-dir ../shared/data/bigbench --commit
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from erase_core.evaluation.bench import Bench, BenchConfig, refusal  # noqa: E402
from erase_core.evaluation.bbii import TUNING_TASKS, write_bbii_report  # noqa: E402
from erase_core.evaluation.bigbench import example_groups, load_task  # noqa: E402

#: Cheap tasks first (short inputs, few choices), so that the most tasks finish in a given time;
#: causal_judgment (stories of ~940 characters) and dyck_languages (84 choices) last.
ORDER = ("sports_understanding", "navigate", "implicatures", "disambiguation_qa", "movie_recommendation", "operators",
         "word_unscrambling", "object_counting", "snarks", "logical_fallacy_detection", "epistemic_reasoning",
         "word_sorting", "gender_inclusive_sentences_german", "linguistics_puzzles", "causal_judgment",
         "dyck_languages")


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _ints(text: str) -> list[int]:
    return [int(x) for x in _names(text)]


def all_tasks(data_dir: Path) -> list[str]:
    found = sorted(d.name for d in data_dir.iterdir() if (d / "task.json").is_file() and d.name not in TUNING_TASKS)
    return sorted(found, key=lambda t: (ORDER.index(t) if t in ORDER else len(ORDER), t))


def _commit(path: Path, message: str) -> None:
    for _ in range(30):
        if not (REPO / ".git" / "index.lock").exists():
            add = subprocess.run(["git", "add", str(path)], cwd=REPO, capture_output=True, text=True)
            if add.returncode == 0:
                done = subprocess.run(["git", "commit", "-m", message, "--", str(path)], cwd=REPO,
                                      capture_output=True, text=True)
                if done.returncode == 0:
                    return
        time.sleep(2)
    print(f"could not commit {path}", file=sys.stderr)


RESUME = ("OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 nice -n 15 .venv/bin/python benchmarks/bench_bbii.py "
          "--data-dir ../shared/data/bigbench --n-test {n_test} --seeds {seeds} --k {ks} --methods {methods} "
          "--n-pool {n_pool} --commit")


def preface(out: Path, args) -> str:
    """What the table measured, on what, and how to resume it (from the records themselves)."""
    records = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    if not records:
        return ""
    conf = records[0]["config"]
    machines = sorted({r["machine"] for r in records})
    seconds = sum(r["seconds"] for r in records)
    command = RESUME.format(n_test=conf["n_test"], seeds=len(conf["seeds"]), ks=",".join(map(str, conf["ks"])),
                            methods=",".join(conf["methods"]), n_pool=conf["n_pool"])
    grouped = []
    for task in all_tasks(Path(args.data_dir).resolve()):
        loaded = load_task(task, args.data_dir)
        sizes = Counter(example_groups(loaded.examples, conf["group_by"])).values()
        multi = [n for n in sizes if n > 1]
        if multi:
            grouped.append(f"{task} ({len(multi)} groups, {sum(multi)} of {len(loaded)} examples)")
    return f"""# ERASE on the BIG-bench Instruction Induction (BBII) tasks

The paper's accuracy comparison (its Figure 3: the normalized aggregate score over BBII tasks,
2/3/4 shots) on the BBII tasks in `../shared/data/bigbench`. intent_recognition, which the
paper used for tuning only, is not among them. Regenerated from `docs/results-bbii/<task>.json`
by `benchmarks/bench_bbii.py --report`.

**Scale (CPU):** {conf['n_test']} test questions per task, pool = the rest of the task up to
{conf['n_pool']} examples (split seed {conf['split_seed']}; examples sharing a context kept on
one side, `group_by="{conf['group_by']}"`), k = {', '.join(map(str, conf['ks']))},
{len(conf['seeds'])} seeds for the seeded methods ({', '.join(conf['methods'])}; kNN and
zero-shot are deterministic and run once). Model: SmolLM2-135M-Instruct (Q4_1 GGUF, de-quantized by transformers,
`LocalCausalLM`), embeddings all-MiniLM-L6-v2, cached-prefix back end. Multiple choice is
graded by log-likelihood, generative tasks by exact match after greedy decoding.
**Machine:** {'; '.join(machines)}, loaded by other jobs (run at `nice -n 15`, one
thread); {seconds / 60:.0f} min of wall time for the finished tasks.

**Grouping.** Examples whose inputs share a context (text before the last line, or before the
last sentence of a one-line input; a context shared by more than √n examples counts as a
preamble and groups nothing) are kept on one side of the split. Tasks where this groups
anything: {'; '.join(grouped) or 'none'}. Some of these groups are true shared schemas
(causal_judgment's stories, operators' definitions, logical_fallacy_detection's premises), some
only share a first sentence (navigate, sports_understanding); grouping those costs nothing but a
slightly different split. Multiple-choice tasks whose task.json leaves
`append_choices_to_input` true (disambiguation_qa, movie_recommendation here) show their choices
after the input, as BIG-bench does.

**Not run here:** SISA on 1/2/4 shards (fine-tuning does not fit this CPU session; the
paper's ERASE-vs-SISA comparison on these tasks is still untested), accuracy under deletion,
Gemma 3 270M, and ACoT and the other variants. With {conf['n_test']} questions a task's
accuracy has a standard error of up to {50 / conf['n_test'] ** 0.5:.0f} points (of 100); read the
aggregate, not single cells.

**Resume** (every cell is cached by the whole configuration under
`~/.cache/erase/bench-bbii`; finished tasks are skipped by their JSON, so this runs the rest):

```bash
{command}
.venv/bin/python benchmarks/bench_bbii.py --report --notes benchmarks/notes/bbii.md
```

Finished tasks are in git (`docs/results-bbii/<task>.json`); the cells of a task cut off mid-way
live only in the cache of the machine that ran them, so on a fresh machine that task starts over.
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=str(REPO / ".." / "shared" / "data" / "bigbench"))
    p.add_argument("--tasks", type=_names, default=None, help="default: every task folder but intent_recognition")
    p.add_argument("--methods", type=_names, default=["zero-shot", "random", "knn", "erase", "erase-full"])
    p.add_argument("--k", type=_ints, default=[2, 3, 4])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--n-test", type=int, default=30)
    p.add_argument("--n-pool", type=int, default=1000, help="pool cap (the rest of the task up to this)")
    p.add_argument("--group-by", default="context")
    p.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "erase" / "bench-bbii"))
    p.add_argument("--out", default=str(REPO / "docs" / "results-bbii"))
    p.add_argument("--doc", default=str(REPO / "docs" / "results-bbii.md"))
    p.add_argument("--machine", default=f"{platform.machine()} {os.cpu_count()}-core CPU, shared")
    p.add_argument("--commit", action="store_true", help="git-commit each task's JSON as it finishes")
    p.add_argument("--report", action="store_true", help="only rewrite the table and plot from --out")
    p.add_argument("--notes", default=None, help="a markdown file whose text follows the preface (the reading)")
    args = p.parse_args(argv)

    out = Path(args.out)
    if args.report:
        print(write_bbii_report(out, Path(args.doc), expected=all_tasks(Path(args.data_dir).resolve()),
                                preface=preface(out, args) + (Path(args.notes).read_text() if args.notes else "")))
        return 0
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    data_dir = Path(args.data_dir).resolve()
    tasks = args.tasks or all_tasks(data_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = BenchConfig(tasks=tasks, methods=args.methods, ks=args.k, seeds=list(range(args.seeds)),
                      n_test=args.n_test, n_pool=args.n_pool, group_by=args.group_by, data_dir=str(data_dir),
                      cache_dir=args.cache_dir, deletion_k=max(args.k), device="cpu")
    bench = Bench(cfg, progress=True)  # one model load for every task
    conf = {k: v for k, v in asdict(cfg).items() if k not in ("data_dir", "cache_dir", "tasks")}
    conf_key = hashlib.sha256(json.dumps(conf, sort_keys=True).encode()).hexdigest()[:12]
    for task in tasks:
        path = out / f"{task.replace('/', '__')}.json"
        if path.exists() and json.loads(path.read_text()).get("config_key") == conf_key:
            print(f"{task}: done already ({path})", flush=True)
            continue
        start = time.perf_counter()
        data = bench.load(task)
        entry = {"pool": len(data.pool), "test": len(data.test), "low": data.low,
                 "multiple_choice": data.task.is_multiple_choice, "split_key": data.key,
                 "refused": {m: r for m in cfg.methods if (r := refusal(m, data.task))},
                 "cells": bench.run_cells(data), "unlearning_cost": bench.unlearning_cost(data)}
        record = {"task": task, "config": conf, "config_key": conf_key, "model_key": cfg.model_key(),
                  "machine": args.machine, "seconds": time.perf_counter() - start,
                  "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())} | entry
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=1, sort_keys=True))
        os.replace(tmp, path)
        print(f"{task}: {len(entry['cells'])} cells in {record['seconds']:.0f} s -> {path}", flush=True)
        if args.commit:
            _commit(path, f"BBII run: {task} ({args.n_test} questions, k={args.k}, {args.seeds} seeds, "
                          f"{','.join(args.methods)}; SmolLM2-135M on CPU)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
