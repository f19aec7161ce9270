"""``erase bench``: the ERASE paper's comparison on BIG-bench, plus accuracy under deletion.

Stages, each cached as JSON (or .npy for embeddings) under ``--cache-dir`` so that an
interrupted run resumes where it stopped. Every cached result is keyed by all that decides it:
the model file and answering back end, the task's content, the split (pool and test sizes,
split seed, grouping), the prompt format, and the method, k and seed (the unlearning cost also
by the method list and k), so a run can be split across sessions and machines and a changed
configuration never reads another's results:

1. split each task into an example pool and test questions (seeded, one split per task;
   examples sharing a context stay on one side, see :func:`~.bigbench.example_groups`);
2. embed pool and test inputs (all-MiniLM-L6-v2);
3. accuracy cells: (task, method, k, seed) → accuracy, BIG-bench normalized score, prompt
   tokens and seconds per query;
4. accuracy under deletion: forget m random pool examples (several draws), check the method
   equals a fresh fit on the remaining pool, answer again;
5. unlearning cost: wall time of each of ``cost_forgets`` single forgets, per method;
6. SISA: fine-tune the LM on 1, 2 and 4 shards, accuracy, accuracy against examples seen,
   time to unlearn one example;
7. report: JSON, markdown (``docs/results.md``) and plots (``docs/img/``).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .._validation import ERASEError
from .answering import Answerer, normalized_score, random_baseline
from .bigbench import GROUP_BY, BigBenchTask, load_task
from .lazy_models import LazyModels
from .methods import METHODS, SEEDED, make_method
from .prompts import TaskFormat

#: The instruction-following BIG-bench tasks in ``../shared/data/bigbench`` used on CPU.
CPU_TASKS = ("intent_recognition", "sports_understanding", "object_counting")
PAPER_METHODS = ("zero-shot", "random", "acot", "acot-proj", "erase", "erase-full", "knn")
EXTRA_METHODS = ("erase-stratified", "erase+knn")
DELETION_METHODS = ("erase", "acot", "random", "knn")
#: SISA forgets timed per configuration (at most ``cost_forgets``); U is their mean.
SISA_FORGETS = 3


@dataclass
class BenchConfig:
    """What ``erase bench`` runs. Defaults are the documented CPU subset; ``--full`` widens it."""

    tasks: list[str] = field(default_factory=lambda: list(CPU_TASKS))
    methods: list[str] = field(default_factory=lambda: list(PAPER_METHODS + EXTRA_METHODS))
    ks: list[int] = field(default_factory=lambda: [2, 3, 4])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    n_test: int | None = 60
    n_pool: int | None = None
    split_seed: int = 0
    group_by: str = "context"
    deletion_methods: list[str] = field(default_factory=lambda: list(DELETION_METHODS))
    deletion_k: int = 4
    deletion_m: list[float] = field(default_factory=lambda: [1, 5, 0.1])
    deletion_draws: int = 3
    deletion_seeds: list[int] = field(default_factory=lambda: [0, 1])
    cost_forgets: int = 20
    sisa_shards: list[int] = field(default_factory=lambda: [1, 2, 4])
    sisa_pool: int = 80
    sisa_seen: list[int] = field(default_factory=lambda: [20, 40, 80])
    sisa_epochs: int = 2
    sisa_max_slices: int = 4
    sisa_tasks: list[str] | None = None
    data_dir: str | None = None
    device: str | None = None
    model: str | None = None
    gguf_file: str | None = None
    backend: str | None = None
    cache_dir: str | None = None

    def validate(self) -> "BenchConfig":
        unknown = [m for m in self.methods + self.deletion_methods if m not in METHODS]
        if unknown:
            raise ERASEError(f"unknown methods {unknown}; choose from {sorted(METHODS)}")
        if not self.tasks:
            raise ERASEError("no tasks to run")
        for name, values in (("ks", self.ks), ("seeds", self.seeds)):
            if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in values):
                raise ERASEError(f"{name} must be non-empty non-negative integers, got {values!r}")
        if any(k < 1 for k in self.ks):
            raise ERASEError(f"ks must be >= 1, got {self.ks}")
        if self.group_by not in GROUP_BY:
            raise ERASEError(f"group_by must be one of {GROUP_BY}; got {self.group_by!r}")
        return self

    def model_key(self, *, answers: bool = True) -> str:
        """Names cached results: the model file (not where it lies) and, for answers (whose
        timings and last bits depend on it), the answering back end."""
        from ..models.llm import SMOLLM2_GGUF

        model = self.gguf_file or (Path(self.model).name if self.model else SMOLLM2_GGUF)
        parts = [model, self.resolved_backend()] if answers else [model]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:10]

    def resolved_backend(self) -> str:
        if self.backend:
            return self.backend
        if self.device is not None:
            return "batched" if self.device.startswith("cuda") else "cached"
        import importlib.util

        if importlib.util.find_spec("torch") is None:
            return "cached"
        import torch

        return "batched" if torch.cuda.is_available() else "cached"


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "erase" / "bench"


class _Cache:
    """JSON results under one folder, written atomically (a crash never leaves half a file)."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path(self, *parts: str, suffix: str = ".json") -> Path:
        p = self.root.joinpath(*parts[:-1], parts[-1] + suffix)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def get(self, *parts: str) -> Any | None:
        p = self.path(*parts)
        if not p.exists():
            return None
        try:
            return json.loads(p.read_text())
        except ValueError:
            return None  # a corrupt cell is recomputed

    def put(self, value: Any, *parts: str) -> Any:
        p = self.path(*parts)
        tmp = p.with_suffix(".tmp")
        tmp.write_text(json.dumps(value, indent=1, sort_keys=True))
        os.replace(tmp, p)
        return value


@dataclass
class TaskData:
    """One task's split, ids, embeddings and answer format."""

    task: BigBenchTask
    fmt: TaskFormat
    pool: list[dict]
    test: list[dict]
    pool_ids: list[str]
    pool_vectors: np.ndarray
    test_vectors: np.ndarray
    labels: list[str]
    key: str = ""  # names the task's content, split and format in every cache key

    @property
    def low(self) -> float:
        return random_baseline(self.test)

    def examples_by_id(self) -> dict[str, dict]:
        return dict(zip(self.pool_ids, self.pool))


class Bench(LazyModels):
    """Runs the stages of :class:`BenchConfig`, caching every result; see the module docstring."""

    def __init__(self, config: BenchConfig, *, progress: bool = True):
        self.config = config.validate()
        self.cache = _Cache(Path(config.cache_dir) if config.cache_dir else default_cache_dir())
        self.progress = progress
        self._answerers: dict[str, Answerer] = {}

    def answerer(self, data: TaskData) -> Answerer:
        name = data.task.name
        if name not in self._answerers:
            longest = max(len(self.lm.tokenizer(t, add_special_tokens=False)["input_ids"])
                          for ex in data.pool for t in ex.get("targets", [ex["target"]]))
            self._answerers[name] = Answerer(self.lm, data.fmt, backend=self.config.resolved_backend(),
                                             max_new_tokens=min(64, longest + 4))
        return self._answerers[name]

    def _bar(self, iterable, **kwargs):
        from tqdm.auto import tqdm

        return tqdm(iterable, disable=not self.progress, leave=False, **kwargs)

    # ------------------------------------------------------------------ stage 1-2
    def load(self, name: str) -> TaskData:
        task = load_task(name, self.config.data_dir)
        n = len(task)
        n_test = min(self.config.n_test or n // 2, n // 2)
        n_pool = min(self.config.n_pool or n - n_test, n - n_test)
        pool, test = task.split(n_pool, n_test, seed=self.config.split_seed, group_by=self.config.group_by)
        ids = [f"{name}-{ex['idx']}" for ex in pool]
        fmt = TaskFormat.of(task)
        key = split_key(task, fmt, pool, test, self.config)
        emb_path = self.cache.path("embeddings", f"{name.replace('/', '__')}-{key}", suffix=".npy")
        if emb_path.exists():
            vectors = np.load(emb_path, allow_pickle=False)
        else:
            vectors = self.embed([ex["input"] for ex in pool + test])
            tmp = emb_path.with_name(emb_path.stem + ".tmp.npy")
            np.save(tmp, vectors, allow_pickle=False)
            os.replace(tmp, emb_path)
        labels = [ex.get("correct_choice") or ex["target"] for ex in pool]
        n_pool = len(pool)  # whole groups: may be a few short of the requested size
        return TaskData(task, fmt, pool, test, ids, vectors[:n_pool], vectors[n_pool:], labels, key)

    # ------------------------------------------------------------------ stage 3
    def evaluate(self, data: TaskData, method) -> dict:
        """Answer every test question with the method's shots; accuracy and cost per query."""
        by_id = data.examples_by_id()
        prefixes = []
        for qv in data.test_vectors:
            prefixes.append(data.fmt.prefix([by_id[i] for i in method.shots(qv)]))
        answerer = self.answerer(data)
        before = answerer.seconds
        answers = answerer.answer_all(prefixes, data.test)
        acc = float(np.mean([a.correct for a in answers]))
        return {
            "accuracy": acc, "normalized": normalized_score(acc, data.low), "n_test": len(answers),
            "correct": [bool(a.correct) for a in answers],
            "tokens_per_query": float(np.mean([a.tokens for a in answers])),
            "seconds_per_query": (answerer.seconds - before) / len(answers),
            "shots": method.shots(data.test_vectors[0]) if method.fixed else None,
            "distinct_prefixes": len(set(prefixes)),
            "prefix_tokens": float(np.mean([len(self.lm.tokenizer(p, add_special_tokens=False)["input_ids"])
                                            for p in set(prefixes)])),
        }

    def cell(self, data: TaskData, method_name: str, k: int, seed: int) -> dict:
        refuse_method(method_name, data.task)
        key = (self.config.model_key(), data.task.name.replace("/", "__"), data.key,
               f"{method_name}-k{k}-s{seed}-n{len(data.test)}")
        hit = self.cache.get("cells", *key)
        if hit is not None:
            return hit
        start = time.perf_counter()
        method = make_method(method_name, k, seed).fit(data.pool_ids, data.pool_vectors, data.labels)
        fit_seconds = time.perf_counter() - start
        result = self.evaluate(data, method) | {"task": data.task.name, "method": method_name, "k": k, "seed": seed,
                                                "fit_seconds": fit_seconds, "low": data.low}
        method.close()
        return self.cache.put(result, "cells", *key)

    def run_cells(self, data: TaskData) -> list[dict]:
        cfg = self.config
        jobs = []
        for method in cfg.methods:
            for k in ([0] if method == "zero-shot" else cfg.ks):
                if k > len(data.pool):
                    continue
                if method == "erase+knn" and k < 2:
                    continue
                if refusal(method, data.task):
                    continue
                for seed in (cfg.seeds if method in SEEDED else cfg.seeds[:1]):
                    jobs.append((method, k, seed))
        return [self.cell(data, *job) for job in self._bar(jobs, desc=f"{data.task.name} cells", unit="cell")]

    # ------------------------------------------------------------------ stage 4-5
    def deletion(self, data: TaskData, method_name: str, seed: int, m_spec: float, draw: int) -> dict:
        m = int(m_spec) if m_spec >= 1 else max(1, round(m_spec * len(data.pool)))
        k = self.config.deletion_k
        key = (self.config.model_key(), data.task.name.replace("/", "__"), data.key,
               f"{method_name}-k{k}-s{seed}-m{m}-d{draw}-n{len(data.test)}")
        hit = self.cache.get("deletion", *key)
        if hit is not None:
            return hit
        method = make_method(method_name, k, seed).fit(data.pool_ids, data.pool_vectors, data.labels)
        shots_before = method.shots(data.test_vectors[0]) if method.fixed else None
        victims = random.Random(f"{data.task.name}/{seed}/{m}/{draw}").sample(sorted(data.pool_ids), m)
        seconds = method.forget(victims)
        keep = [r for r, i in enumerate(data.pool_ids) if i not in set(victims)]
        fresh = make_method(method_name, k, seed).fit([data.pool_ids[r] for r in keep], data.pool_vectors[keep],
                                                      [data.labels[r] for r in keep])
        probes = data.test_vectors[: min(20, len(data.test_vectors))]
        exact = all(method.shots(q) == fresh.shots(q) for q in probes)
        leaked = any(v in method.shots(q) for q in probes for v in victims)
        result = self.evaluate(data, method) | {
            "task": data.task.name, "method": method_name, "k": k, "seed": seed, "m": m, "draw": draw,
            "forget_seconds": seconds, "exact": exact, "forgotten_in_prompt": leaked,
            "shots_changed": None if shots_before is None else shots_before != method.shots(data.test_vectors[0]),
        }
        method.close()
        fresh.close()
        return self.cache.put(result, "deletion", *key)

    def run_deletion(self, data: TaskData) -> list[dict]:
        cfg = self.config
        jobs = [(mname, seed, m, d) for mname in cfg.deletion_methods for seed in cfg.deletion_seeds
                for m in cfg.deletion_m for d in range(cfg.deletion_draws)]
        return [self.deletion(data, *job) for job in self._bar(jobs, desc=f"{data.task.name} deletion", unit="run")]

    def unlearning_cost(self, data: TaskData) -> dict:
        """Wall time of ``cost_forgets`` single forgets per method (k = deletion_k), one at a time
        on the same fitted method: every time, their mean, median and max, and how many of the
        forgets changed the shots of the first test query (``selected_changed``)."""
        names = sorted(m for m in set(self.config.methods) - {"zero-shot"} if not refusal(m, data.task))
        methods_key = hashlib.sha256(json.dumps(names).encode()).hexdigest()[:8]
        key = (data.task.name.replace("/", "__"), data.key,
               f"unlearn-k{self.config.deletion_k}-f{self.config.cost_forgets}-p{len(data.pool)}-m{methods_key}")
        hit = self.cache.get("cost", *key)
        if hit is not None:
            return hit
        out = {}
        rng = random.Random(f"cost/{data.task.name}")
        victims = rng.sample(sorted(data.pool_ids), min(self.config.cost_forgets, len(data.pool_ids) - self.config.deletion_k))
        for name in self._bar(names, desc="unlearning cost", unit="method"):
            method = make_method(name, self.config.deletion_k if name != "erase+knn" else max(2, self.config.deletion_k), 0)
            method.fit(data.pool_ids, data.pool_vectors, data.labels)
            times, changed = [], 0
            for v in victims:
                before = method.shots(data.test_vectors[0])
                times.append(method.forget([v]))
                changed += before != method.shots(data.test_vectors[0])
            out[name] = {"median_seconds": statistics.median(times), "mean_seconds": statistics.fmean(times),
                         "max_seconds": max(times), "forgets": len(times), "selected_changed": changed,
                         "seconds": times}
            method.close()
        return self.cache.put(out, "cost", *key)

    # ------------------------------------------------------------------ stage 6
    def sisa(self, data: TaskData) -> dict:
        """SISA on 1, 2, 4 shards (each cached on its own, so an interrupted run keeps what it
        finished) and the one-shard accuracy against the number of examples seen."""
        cfg = self.config
        base = (self.config.model_key(answers=False), data.task.name.replace("/", "__"), data.key)
        pool = [dict(ex, id=i) for ex, i in zip(data.pool, data.pool_ids)][: cfg.sisa_pool]
        rows = []
        for shards in self._bar(cfg.sisa_shards, desc=f"{data.task.name} SISA", unit="config"):
            if len(pool) // shards < 20:  # the paper keeps every shard at 20 examples or more
                continue
            slices = max(1, min(cfg.sisa_max_slices, len(pool) // shards // 5))
            forgets = min(SISA_FORGETS, cfg.cost_forgets)
            key = base + (f"sisa-p{len(pool)}-e{cfg.sisa_epochs}-n{len(data.test)}-s{shards}-l{slices}-u{forgets}",)
            try:
                rows.append(self.cache.get("sisa", *key)
                            or self.cache.put(self._sisa_config(data, pool, shards, slices, forgets), "sisa", *key))
            except ERASEError as exc:  # shards are hashed, hence uneven: one may fall under 20 examples
                rows.append({"shards": shards, "pool": len(pool), "skipped": str(exc)})
        seen = []
        for n in [n for n in cfg.sisa_seen if n <= len(data.pool)]:
            key = base + (f"seen-{n}-e{cfg.sisa_epochs}-n{len(data.test)}",)
            seen.append(self.cache.get("sisa", *key) or self.cache.put(self._sisa_seen(data, n), "sisa", *key))
        return {"configs": rows, "seen": seen}

    def _sisa_config(self, data: TaskData, pool: list[dict], shards: int, slices: int, forgets: int = 1) -> dict:
        """Fit, evaluate, then forget ``forgets`` random examples one at a time: the unlearning
        cost is the mean over them (a forget's cost depends on its slice), each one recorded."""
        from .sisa import SISAConfig, SISAEnsemble

        sconfig = SISAConfig(n_shards=shards, n_slices=slices, epochs=self.config.sisa_epochs, seed=0)
        with SISAEnsemble(sconfig, data.fmt, lm=self.lm, show_progress=self.progress) as ens:
            ens.fit(pool)
            result = ens.evaluate(data.test)
            victims = random.Random(f"sisa/{data.task.name}").sample([ex["id"] for ex in pool], forgets)
            reports = [ens.forget([v]) for v in victims]
            return {"shards": shards, "slices": slices, "pool": len(pool), "epochs": self.config.sisa_epochs,
                    "accuracy": result["accuracy"], "normalized": normalized_score(result["accuracy"], data.low),
                    "fit_seconds": ens.fit_seconds_, "unlearn_seconds": statistics.fmean(r.seconds for r in reports),
                    "unlearn_seconds_all": [r.seconds for r in reports],
                    "examples_retrained": statistics.fmean(r.examples_retrained for r in reports),
                    "query_seconds": result["seconds"] / max(1, len(data.test)),
                    "tokens_per_query": result["prompt_tokens"] * shards, "device": str(self.lm.device)}

    def _sisa_seen(self, data: TaskData, n: int) -> dict:
        from .sisa import SISAConfig, SISAEnsemble

        sub = [dict(ex, id=i) for ex, i in zip(data.pool[:n], data.pool_ids[:n])]
        sconfig = SISAConfig(n_shards=1, n_slices=1, epochs=self.config.sisa_epochs, seed=0, min_shard_size=min(20, n))
        with SISAEnsemble(sconfig, data.fmt, lm=self.lm, show_progress=self.progress) as ens:
            ens.fit(sub)
            acc = ens.evaluate(data.test)["accuracy"]
        return {"examples": n, "accuracy": acc, "normalized": normalized_score(acc, data.low)}

    # ------------------------------------------------------------------ everything
    def run(self, *, with_deletion: bool = True, with_sisa: bool = True, time_budget: float | None = None) -> dict:
        """All stages, task by task. With ``time_budget`` (seconds), no new task starts after it
        is spent; the tasks not run are listed under ``"skipped"`` (a rerun resumes them)."""
        results: dict[str, Any] = {"config": asdict(self.config), "tasks": {}, "skipped": []}
        start = time.perf_counter()
        for name in self._bar(self.config.tasks, desc="tasks", unit="task"):
            if time_budget is not None and time.perf_counter() - start > time_budget:
                results["skipped"].append(name)
                continue
            data = self.load(name)
            entry: dict[str, Any] = {"pool": len(data.pool), "test": len(data.test), "low": data.low,
                                     "multiple_choice": data.task.is_multiple_choice, "split_key": data.key,
                                     "refused": {m: refusal(m, data.task) for m in self.config.methods
                                                 if refusal(m, data.task)},
                                     "cells": self.run_cells(data), "unlearning_cost": self.unlearning_cost(data)}
            if with_deletion:
                entry["deletion"] = self.run_deletion(data)
            if with_sisa and (self.config.sisa_tasks is None or name in self.config.sisa_tasks):
                entry["sisa"] = self.sisa(data)
            results["tasks"][name] = entry
        return results


def split_key(task: BigBenchTask, fmt: TaskFormat, pool: Sequence[dict], test: Sequence[dict],
              config: BenchConfig) -> str:
    """Names one task's data in the cache: its content, prompt format, the split's settings and
    the examples it drew. Anything that changes what a cell is computed from changes the key."""
    return hashlib.sha256(json.dumps([
        task.name, task.examples, asdict(fmt), config.n_pool, config.n_test, config.split_seed, config.group_by,
        [ex["idx"] for ex in pool], [ex["idx"] for ex in test],
    ], sort_keys=True, default=str).encode()).hexdigest()[:12]


def refusal(method_name: str, task: BigBenchTask) -> str | None:
    """Why ``method_name`` is not run on ``task`` (None when it is).

    ``erase-stratified`` shares the shots out over the pool's labels; on a generative task the
    labels are the targets, nearly all distinct, so every label gets no quota but the largest
    remainders, which tie: the shots would be chosen by label order, not by clustering."""
    if method_name == "erase-stratified" and not task.is_multiple_choice:
        return ("erase-stratified needs a multiple-choice task (its strata are the correct choices); "
                f"task {task.name!r} is generative, where nearly every target is its own label")
    return None


def refuse_method(method_name: str, task: BigBenchTask) -> None:
    """Raise :class:`ERASEError` when :func:`refusal` refuses ``method_name`` on ``task``."""
    reason = refusal(method_name, task)
    if reason:
        raise ERASEError(reason)


def summarize_cells(cells: Sequence[dict]) -> dict[tuple[str, int], dict]:
    """(method, k) → mean/std/min/max of accuracy and normalized score over seeds."""
    groups: dict[tuple[str, int], list[dict]] = {}
    for c in cells:
        groups.setdefault((c["method"], c["k"]), []).append(c)
    out = {}
    for key, group in groups.items():
        acc = np.array([c["accuracy"] for c in group])
        norm = np.array([c["normalized"] for c in group])
        out[key] = {"accuracy_mean": float(acc.mean()), "accuracy_std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
                    "accuracy_min": float(acc.min()), "accuracy_max": float(acc.max()),
                    "normalized_mean": float(norm.mean()), "normalized_std": float(norm.std(ddof=1)) if len(norm) > 1 else 0.0,
                    "seeds": len(group), "tokens_per_query": float(np.mean([c["tokens_per_query"] for c in group])),
                    "seconds_per_query": _mean_known(c.get("seconds_per_query") for c in group)}
    return out


def _mean_known(values) -> float:
    """Mean of the values that were measured (None: not measured or discarded); NaN if none."""
    known = [float(v) for v in values if v is not None]
    return float(np.mean(known)) if known else float("nan")
