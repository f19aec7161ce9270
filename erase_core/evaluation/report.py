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

from .bench import summarize_cells
from .cost import MethodCost, break_even, cost_table, markdown_table, plot_cost

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


def method_costs(results: dict) -> list[MethodCost]:
    """Per-method unlearning and inference cost, averaged over tasks, from the measurements.

    U: mean wall time of one forget (the mean, not the median: occasional recomputes are part
    of the expected cost); ERASE-style fixed prefixes also pay one prefix recomputation per
    forget that changed the selected set, measured as tokens × seconds per token. I: measured
    seconds per query at k = deletion_k (KV-cached prefix on the cached back end)."""
    k = results["config"]["deletion_k"]
    per: dict[str, dict[str, list[float]]] = {}
    for name, entry in results["tasks"].items():
        summary = summarize_cells(entry["cells"])
        for method, cost in entry["unlearning_cost"].items():
            s = summary.get((method, k))
            if s is None or not np.isfinite(s["seconds_per_query"]):
                continue  # no valid timing for this method
            d = per.setdefault(method, {"U": [], "I": [], "T": []})
            changed = cost["selected_changed"] / max(1, cost["forgets"])
            d["U"].append(cost["mean_seconds"] + changed * s["seconds_per_query"])
            d["I"].append(s["seconds_per_query"])
            d["T"].append(s["tokens_per_query"])
        for row in entry.get("sisa", {}).get("configs", []):
            if "skipped" in row:
                continue
            d = per.setdefault(f"sisa-{row['shards']}", {"U": [], "I": [], "T": []})
            d["U"].append(row["unlearn_seconds"])
            d["I"].append(row["query_seconds"])
            d["T"].append(row["tokens_per_query"])
    return [MethodCost(m, statistics.fmean(v["U"]), statistics.fmean(v["I"]), statistics.fmean(v["T"]))
            for m, v in sorted(per.items())]


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
    methods = method_costs(results)
    lines = ["| method | unlearn one example (s, U) | seconds per query (I) | tokens per query |", "|---|---|---|---|"]
    for m in methods:
        lines.append(f"| {m.name} | {m.unlearn_seconds:.3g} | {m.query_seconds:.3g} | {m.prompt_tokens:.0f} |")
    by_name = {m.name: m for m in methods}
    lines += ["", "Break-even queries per deletion (below it the first method is cheaper when it unlearns cheaper):", ""]
    for a in ("erase", "knn"):
        for b in sorted(n for n in by_name if n.startswith("sisa") or n == "acot"):
            if a in by_name:
                q = break_even(by_name[a], by_name[b])
                lines.append(f"- {a} vs {b}: " + ("never equal (one is cheaper at every ratio)" if q is None else f"{q:.3g}"))
    if methods:
        lines += ["", markdown_table(cost_table(methods))]
        plot_cost(methods, img_dir / "holistic_cost.png", highlight="erase" if "erase" in by_name else None)
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
    sisa_lines = ["| task | shards | slices | pool | accuracy | normalized | fit (s) | unlearn one (s) | examples retrained |",
                  "|---|---|---|---|---|---|---|---|---|"]
    for name, entry in results["tasks"].items():
        for r in entry.get("sisa", {}).get("configs", []):
            if "skipped" in r:
                sisa_lines.append(f"| {name} | {r['shards']} | | {r['pool']} | not run: {r['skipped']} | | | | |")
                continue
            sisa_lines.append(f"| {name} | {r['shards']} | {r['slices']} | {r['pool']} | {r['accuracy']:.3f} | "
                              f"{r['normalized']:.1f} | {r['fit_seconds']:.1f} | {r['unlearn_seconds']:.2f} | {r['examples_retrained']} |")
    cfg = results["config"]
    md = [f"# {title}", "", preface, "",
          f"Configuration: tasks {', '.join(results['tasks'])}; k in {cfg['ks']}; seeds {cfg['seeds']}; "
          f"test questions per task ≤ {cfg['n_test'] or 'half the task'}; split seed {cfg['split_seed']}; "
          f"model {cfg['model'] or 'SmolLM2-135M-Instruct (Q4_1 GGUF)'}; device {results.get('device', cfg['device'])}."
          + (f" Not run in this report (time budget): {', '.join(results['skipped'])}." if results.get("skipped") else ""), "",
          "## Accuracy", "", "![accuracy per task](img/accuracy.png)", "", "![accuracy against k](img/accuracy_vs_k.png)", "", accuracy_tables(results), "",
          "## Unlearning cost and holistic cost", "", "See docs/cost.md for the definitions.", "",
          "![unlearning cost](img/unlearning_cost.png)", "", "![holistic cost](img/holistic_cost.png)", "", cost_md, "",
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
