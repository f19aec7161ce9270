"""Turn ``erase bench`` results into ``results.md``, ``results.json`` and plots.

Figures are written with matplotlib's Agg canvas (no display, no global backend change).
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import ERASEError
from .bench import _mean_known, summarize_cells
from .cost import (InferenceCost, MethodCost, break_even_spread, cost_table, fit_inference_cost, markdown_table, plot_cost,
                   plot_cost_accuracy, prefix_is_cached, spread)
from .methods import make_method

#: Methods in the order tables list them.
ORDER = ("zero-shot", "random", "knn", "acot", "acot-proj", "erase", "erase-full", "erase-stratified", "erase+knn")


def _figure(width=8.0, height=4.5):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _ordered(names) -> list[str]:
    names = list(dict.fromkeys(names))
    return sorted(names, key=lambda m: (ORDER.index(m) if m in ORDER else len(ORDER), m))


def _pm(mean: float, std: float, seeds: int, scale: float = 1.0, digits: int = 3) -> str:
    return f"{mean * scale:.{digits}f}" + (f" ± {std * scale:.{digits}f}" if seeds > 1 else "")


def results_backend(results: dict) -> str:
    """The answering back end a results file was measured with: as recorded, else the
    default for its device (``batched`` on CUDA, ``cached`` otherwise)."""
    backend = results.get("backend") or results.get("config", {}).get("backend")
    if backend:
        return backend
    device = str(results.get("device") or results.get("config", {}).get("device") or "cpu")
    return "batched" if device.startswith("cuda") else "cached"


def _fixed_shots(method: str, k: int) -> bool:
    try:
        return make_method(method, max(k, 2), 0).fixed
    except ERASEError:
        return False


def task_costs(entry: dict, k: int, backend: str, price: InferenceCost | None = None) -> dict | None:
    """One task's costs, every method priced alike (see docs/cost.md).

    Price: a Theil–Sen fit of ``seconds ≈ a + b · tokens`` over every timed cell of the task
    (all methods, k and seeds), so that no method's per-query cost is its own raw timing.
    I: the method's mean tokens per query at ``k`` at that price (SISA: one call per shard on
    the zero-shot prompt). U: the mean of the measured single forgets (SISA: of its timed
    forgets), plus, only where :func:`~.cost.prefix_is_cached`, the share of forgets that
    changed the shots times one prefix recomputation, ``b × prefix tokens`` (one forward pass
    over the prefix: the per-token rate without the per-query term ``a``). A stated ``price``
    replaces the fit (the same for every task); without one, None when fewer than two cells
    are timed."""
    cells = [c for c in entry["cells"] if c.get("seconds_per_query") is not None
             and np.isfinite(c["seconds_per_query"]) and c.get("tokens_per_query") is not None]
    stated = price is not None
    if price is None:
        if len(cells) < 2:
            return None
        price = fit_inference_cost([c["tokens_per_query"] for c in cells], [c["seconds_per_query"] for c in cells],
                                   robust=True)
    summary = summarize_cells(entry["cells"])
    zero = summary.get(("zero-shot", 0))
    knn = summary.get(("knn", k))
    methods: dict[str, dict] = {}
    for method, cost in entry.get("unlearning_cost", {}).items():
        s = summary.get((method, k))
        if s is None:
            continue
        times = cost.get("seconds") or [cost["mean_seconds"]]
        changed = cost["selected_changed"] / max(1, cost["forgets"])
        cached = prefix_is_cached(backend, entry["multiple_choice"], _fixed_shots(method, k))
        prefix_tokens = _mean_known(c.get("prefix_tokens") for c in entry["cells"] if c["method"] == method and c["k"] == k)
        if not np.isfinite(prefix_tokens) and knn and zero:  # older results: k shots ≈ kNN's prompt less zero-shot's
            prefix_tokens = max(0.0, knn["tokens_per_query"] - zero["tokens_per_query"])
        prefix_seconds = price.b * prefix_tokens if cached and np.isfinite(prefix_tokens) else 0.0
        methods[method] = {"U": cost["mean_seconds"] + changed * prefix_seconds, "forget_seconds": spread(times),
                           "selected_changed": changed, "prefix_cached": cached, "prefix_seconds": prefix_seconds,
                           "I": price.seconds(s["tokens_per_query"]), "tokens": s["tokens_per_query"],
                           "normalized": s["normalized_mean"], "normalized_std": s["normalized_std"]}
    if zero is not None:
        methods["zero-shot"] = {"U": 0.0, "forget_seconds": None, "selected_changed": 0.0, "prefix_cached": False,
                                "prefix_seconds": 0.0, "I": price.seconds(zero["tokens_per_query"]),
                                "tokens": zero["tokens_per_query"], "normalized": zero["normalized_mean"],
                                "normalized_std": zero["normalized_std"]}
    for row in entry.get("sisa", {}).get("configs", []):
        if "skipped" in row:
            continue
        times = row.get("unlearn_seconds_all") or [row["unlearn_seconds"]]
        shards = row["shards"]
        methods[f"sisa-{shards}"] = {"U": statistics.fmean(times), "forget_seconds": spread(times),
                                     "selected_changed": None, "prefix_cached": False, "prefix_seconds": 0.0,
                                     "I": price.seconds(row["tokens_per_query"] / shards, calls=shards),
                                     "tokens": row["tokens_per_query"], "normalized": row["normalized"],
                                     "normalized_std": 0.0}
    return {"price": {"a": price.a, "b": price.b, "cells": len(cells), "stated": stated}, "methods": methods}


def results_price(results: dict) -> InferenceCost | None:
    """The per-token price stated for a results file (``erase bench --price A,B`` stores it
    under ``"price"``), or None: each task's price is then fitted to its cells."""
    price = results.get("price")
    return None if price is None else InferenceCost(a=price["a"], b=price["b"])


def cost_summary(results: dict) -> dict:
    """Per-task costs (:func:`task_costs`, at :func:`results_price` when one is stated), and
    each ERASE-vs-SISA (and kNN-vs-SISA) break-even per task with its spread over SISA's timed
    forgets (one run per forget, the other method at its mean U)."""
    k = results["config"]["deletion_k"]
    backend = results_backend(results)
    price = results_price(results)
    tasks = {}
    for name, entry in results["tasks"].items():
        tc = task_costs(entry, k, backend, price)
        if tc is None:
            continue
        ms = tc["methods"]
        tc["break_even"] = {}
        for a in ("erase", "knn"):
            for b in sorted(n for n in ms if n.startswith("sisa-")):
                if a not in ms:
                    continue
                sisa_times = [row for row in entry.get("sisa", {}).get("configs", [])
                              if f"sisa-{row.get('shards')}" == b and "skipped" not in row][0]
                times = sisa_times.get("unlearn_seconds_all") or [sisa_times["unlearn_seconds"]]
                ma = MethodCost(a, ms[a]["U"], ms[a]["I"])
                runs = [MethodCost(b, t, ms[b]["I"]) for t in times]
                tc["break_even"][f"{a} vs {b}"] = break_even_spread([ma] * len(runs), runs)
        tasks[name] = tc
    return {"backend": backend, "k": k, "tasks": tasks}


def method_costs(results: dict) -> list[MethodCost]:
    """Each method's U and I averaged over the tasks of :func:`cost_summary` (unweighted)."""
    per: dict[str, dict[str, list[float]]] = {}
    for tc in cost_summary(results)["tasks"].values():
        for method, m in tc["methods"].items():
            d = per.setdefault(method, {"U": [], "I": [], "T": []})
            d["U"].append(m["U"])
            d["I"].append(m["I"])
            d["T"].append(m["tokens"])
    return [MethodCost(m, statistics.fmean(v["U"]), statistics.fmean(v["I"]), statistics.fmean(v["T"]))
            for m, v in sorted(per.items())]


def cost_accuracy_points(summary: dict) -> dict:
    """``{task: [{"method", "cost" (I, seconds per query), "score", "score_std"}]}`` for
    :func:`~.cost.plot_cost_accuracy`."""
    return {task: [{"method": m, "cost": v["I"], "score": v["normalized"], "score_std": v["normalized_std"]}
                   for m, v in sorted(tc["methods"].items(), key=lambda kv: _ordered(list(tc["methods"])).index(kv[0]))]
            for task, tc in summary["tasks"].items()}


def accuracy_tables(results: dict) -> str:
    lines = []
    ks = sorted({c["k"] for e in results["tasks"].values() for c in e["cells"]} - {0})
    methods = _ordered(c["method"] for e in results["tasks"].values() for c in e["cells"])
    summaries = {name: summarize_cells(entry["cells"]) for name, entry in results["tasks"].items()}
    # Aggregate: mean normalized score over tasks, per method and k (the paper's headline).
    lines += ["### Normalized score, mean over tasks", "",
              "| method | " + " | ".join(f"k={k}" for k in ks) + " |", "|---|" + "---|" * len(ks)]
    for m in methods:
        cells = []
        for k in ks:
            vals = []
            for summary in summaries.values():
                s = summary.get((m, 0 if m == "zero-shot" else k))
                if s:
                    vals.append(s["normalized_mean"])
            cells.append(f"{np.mean(vals):.1f}" if vals else "")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines.append("")
    for name, entry in results["tasks"].items():
        summary = summaries[name]
        lines += [f"### {name}", "",
                  f"pool {entry['pool']}, test {entry['test']}, "
                  f"{'multiple choice (log-likelihood)' if entry['multiple_choice'] else 'generation (exact match)'}, "
                  f"random-guess level {entry['low']:.3f}. Accuracy mean ± std over seeds (normalized score in brackets).", "",
                  "| method | " + " | ".join(f"k={k}" for k in ks) + " | tokens/query (k=max) |",
                  "|---|" + "---|" * (len(ks) + 1)]
        for m in methods:
            row, tokens = [], ""
            for k in ks:
                s = summary.get((m, 0 if m == "zero-shot" else k))
                row.append(f"{_pm(s['accuracy_mean'], s['accuracy_std'], s['seeds'])} ({s['normalized_mean']:.0f})" if s else "")
                tokens = f"{s['tokens_per_query']:.0f}" if s else tokens
            lines.append(f"| {m} | " + " | ".join(row) + f" | {tokens} |")
        lines.append("")
    return "\n".join(lines)


def deletion_table(results: dict) -> str:
    lines = ["| task | method | m forgotten | accuracy before (mean) | after: mean | min | max | runs | exact | forgotten in prompt |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    k = results["config"]["deletion_k"]
    for name, entry in results["tasks"].items():
        summary = summarize_cells(entry["cells"])
        groups: dict[tuple[str, int], list[dict]] = {}
        for d in entry.get("deletion", []):
            groups.setdefault((d["method"], d["m"]), []).append(d)
        for (m, count), runs in sorted(groups.items(), key=lambda kv: (_ordered([kv[0][0]] + list(ORDER)).index(kv[0][0]), kv[0][1])):
            acc = [r["accuracy"] for r in runs]
            before = summary.get((m, k), {}).get("accuracy_mean", float("nan"))
            lines.append(f"| {name} | {m} | {count} | {before:.3f} | {np.mean(acc):.3f} | {min(acc):.3f} | {max(acc):.3f} | "
                         f"{len(runs)} | {all(r['exact'] for r in runs)} | {sum(r['forgotten_in_prompt'] for r in runs)} |")
    return "\n".join(lines)


def cost_section(results: dict, img_dir: Path) -> tuple[str, list[MethodCost]]:
    summary = cost_summary(results)
    methods = method_costs(results)
    how = ("stated for the run" if results_price(results) else "fitted (Theil–Sen) to every timed cell of the task")
    lines = [f"Back end `{summary['backend']}`, k = {summary['k']}. Per task: I = tokens per query at one price "
             f"`a + b·tokens` {how}; U = mean of the timed single "
             "forgets, plus a prefix recomputation per forget that changed the shots only where the prefix is "
             "KV-cached (docs/cost.md).", "",
             "| task | price a (s/query) | b (s/token) | method | U mean (s) | forgets min–max (s) | prefix cached | I (s/query) | tokens/query | normalized score |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for task, tc in summary["tasks"].items():
        for m in _ordered(tc["methods"]):
            v = tc["methods"][m]
            f = v["forget_seconds"]
            rng = f"{f['min']:.3g}–{f['max']:.3g} ({f['n']})" if f else ""
            lines.append(f"| {task} | {tc['price']['a']:.3g} | {tc['price']['b']:.3g} | {m} | {v['U']:.3g} | {rng} | "
                         f"{'yes' if v['prefix_cached'] else 'no'} | {v['I']:.3g} | {v['tokens']:.0f} | {v['normalized']:.1f} |")
    bes = [(task, pair, be) for task, tc in summary["tasks"].items() for pair, be in tc["break_even"].items()]
    if bes:
        lines += ["", "Break-even queries per deletion, per task: median and range over SISA's timed forgets "
                  "(below it the method that unlearns cheaper wins):", ""]
        for task, pair, be in bes:
            text = ("never equal in any run" if be["median"] is None else
                    f"{be['median']:.3g} (min {be['min']:.3g}, max {be['max']:.3g}; {len(be['runs']) - be['never']} runs"
                    + (f", {be['never']} never equal" if be["never"] else "") + ")")
            lines.append(f"- {task}, {pair}: {text}")
    by_name = {m.name: m for m in methods}
    if methods:
        lines += ["", "Mean over tasks:", "", markdown_table(cost_table(methods))]
        plot_cost(methods, img_dir / "holistic_cost.png", highlight="erase" if "erase" in by_name else None)
    if summary["tasks"]:
        plot_cost_accuracy(cost_accuracy_points(summary), img_dir / "cost_accuracy.png")
    return "\n".join(lines), methods


def plot_accuracy(results: dict, path: Path) -> None:
    k = max(c["k"] for e in results["tasks"].values() for c in e["cells"])
    tasks = list(results["tasks"])
    methods = _ordered(c["method"] for e in results["tasks"].values() for c in e["cells"])
    fig = _figure(max(8.0, 1.2 * len(tasks) + 3), 4.8)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / len(methods)
    summaries = {t: summarize_cells(results["tasks"][t]["cells"]) for t in tasks}
    for j, m in enumerate(methods):
        means, stds = [], []
        for t in tasks:
            s = summaries[t].get((m, 0 if m == "zero-shot" else k))
            means.append(s["normalized_mean"] if s else np.nan)
            stds.append(s["normalized_std"] if s else 0)
        ax.bar(np.arange(len(tasks)) + j * width, means, width, yerr=stds, label=m, capsize=2)
    ax.set_xticks(np.arange(len(tasks)) + 0.4 - width / 2, tasks, rotation=30, ha="right", fontsize=8)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_ylabel(f"normalized score (k={k}; 0 = random guess)")
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def plot_accuracy_vs_k(results: dict, path: Path) -> None:
    """Normalized score (mean over tasks; error bars: mean over tasks of the seed std) against k."""
    ks = sorted({c["k"] for e in results["tasks"].values() for c in e["cells"]} - {0})
    methods = _ordered(c["method"] for e in results["tasks"].values() for c in e["cells"])
    fig = _figure(7, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    summaries = [summarize_cells(e["cells"]) for e in results["tasks"].values()]
    for m in methods:
        xs, ys, es = [], [], []
        for k in ks:
            found = [s[(m, 0 if m == "zero-shot" else k)] for s in summaries if (m, 0 if m == "zero-shot" else k) in s]
            if found:
                xs.append(k)
                ys.append(np.mean([f["normalized_mean"] for f in found]))
                es.append(np.mean([f["normalized_std"] for f in found]))
        ax.errorbar(xs, ys, yerr=es, marker="o", capsize=2, label=m, ls="--" if m == "zero-shot" else "-")
    ax.set_xticks(ks)
    ax.set_xlabel("k (shots per prompt)")
    ax.set_ylabel("normalized score (0 = random guess)")
    ax.axhline(0, color="k", lw=0.5)
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def plot_unlearning(methods: list[MethodCost], path: Path) -> None:
    fig = _figure(7, 4)
    ax = fig.add_subplot(1, 1, 1)
    ax.bar([m.name for m in methods], [max(m.unlearn_seconds, 1e-7) for m in methods], color="tab:red")
    ax.set_yscale("log")
    ax.set_ylabel("seconds to unlearn one example (log)")
    ax.tick_params(axis="x", rotation=30, labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def plot_deletion(results: dict, path: Path) -> None:
    fig = _figure(8, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    labels, data = [], []
    for name, entry in results["tasks"].items():
        groups: dict[tuple[str, int], list[float]] = {}
        for d in entry.get("deletion", []):
            groups.setdefault((d["method"], d["m"]), []).append(d["accuracy"])
        for (m, count), accs in sorted(groups.items()):
            labels.append(f"{name[:12]}\n{m} m={count}")
            data.append(accs)
    if data:
        ax.boxplot(data, showmeans=True)
        ax.set_xticks(range(1, len(labels) + 1), labels, rotation=90, fontsize=6)
    ax.set_ylabel("accuracy after forgetting m examples")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def plot_sisa_seen(results: dict, path: Path) -> bool:
    fig = _figure(6, 4)
    ax = fig.add_subplot(1, 1, 1)
    drawn = False
    for name, entry in results["tasks"].items():
        seen = entry.get("sisa", {}).get("seen", [])
        if seen:
            ax.plot([s["examples"] for s in seen], [s["accuracy"] for s in seen], marker="o", label=name)
            drawn = True
    ax.set_xlabel("examples the fine-tuned model has seen")
    ax.set_ylabel("test accuracy (1 shard)")
    if drawn:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return drawn


def write_report(results: dict, out_dir: str | Path, *, title: str = "ERASE on BIG-bench", preface: str = "") -> Path:
    """Write ``results.md``, ``results.json`` and ``img/*.png`` under ``out_dir``; returns the markdown path."""
    out = Path(out_dir)
    img = out / "img"
    img.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1, sort_keys=True, default=float))
    plot_accuracy(results, img / "accuracy.png")
    plot_accuracy_vs_k(results, img / "accuracy_vs_k.png")
    cost_md, methods = cost_section(results, img)
    plot_unlearning(methods, img / "unlearning_cost.png")
    plot_deletion(results, img / "deletion.png")
    has_seen = plot_sisa_seen(results, img / "sisa_seen.png")
    sisa_lines = ["| task | shards | slices | pool | accuracy | normalized | fit (s) | unlearn one (s, mean) | examples retrained (mean) |",
                  "|---|---|---|---|---|---|---|---|---|"]
    for name, entry in results["tasks"].items():
        for r in entry.get("sisa", {}).get("configs", []):
            if "skipped" in r:
                sisa_lines.append(f"| {name} | {r['shards']} | | {r['pool']} | not run: {r['skipped']} | | | | |")
                continue
            sisa_lines.append(f"| {name} | {r['shards']} | {r['slices']} | {r['pool']} | {r['accuracy']:.3f} | "
                              f"{r['normalized']:.1f} | {r['fit_seconds']:.1f} | {r['unlearn_seconds']:.2f} | {r['examples_retrained']:.4g} |")
    cfg = results["config"]
    md = [f"# {title}", "", preface, "",
          f"Configuration: tasks {', '.join(results['tasks'])}; k in {cfg['ks']}; seeds {cfg['seeds']}; "
          f"test questions per task ≤ {cfg['n_test'] or 'half the task'}; split seed {cfg['split_seed']}; "
          f"model {cfg['model'] or 'SmolLM2-135M-Instruct (Q4_1 GGUF)'}; device {results.get('device', cfg['device'])}."
          + (f" Not run in this report (time budget): {', '.join(results['skipped'])}." if results.get("skipped") else ""), "",
          "## Accuracy", "", "![accuracy per task](img/accuracy.png)", "", "![accuracy against k](img/accuracy_vs_k.png)", "", accuracy_tables(results), "",
          "## Unlearning cost and holistic cost", "", "See docs/cost.md for the definitions.", "",
          "![unlearning cost](img/unlearning_cost.png)", "", "![holistic cost](img/holistic_cost.png)", "",
          "![cost against accuracy per task](img/cost_accuracy.png)", "", cost_md, "",
          "## SISA", "", "\n".join(sisa_lines) if len(sisa_lines) > 2 else "Not run in this report.", ""]
    if has_seen:
        md += ["![SISA accuracy against examples seen](img/sisa_seen.png)", ""]
    md += ["## Accuracy under deletion", "",
           f"k = {cfg['deletion_k']}; m random pool examples forgotten per run; 'exact': after the forget the "
           "method's shots equal a fresh fit on the remaining pool (checked on 20 test queries).", "",
           "![accuracy under deletion](img/deletion.png)", "", deletion_table(results), ""]
    path = out / "results.md"
    kept = _kept_sections(path.read_text()) if path.exists() else []
    path.write_text("\n".join(md + kept))
    return path


#: A section another command wrote into results.md between ``<!-- name: begin -->`` and
#: ``<!-- name: end -->`` (e.g. ``erase unlearn``'s): a rewrite of the report keeps it.
_KEPT = re.compile(r"<!-- ([\w -]+): begin -->.*?<!-- \1: end -->\n?", re.S)


def _kept_sections(old: str) -> list[str]:
    return [m.group(0).rstrip("\n") + "\n" for m in _KEPT.finditer(old)]


def load_results(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
