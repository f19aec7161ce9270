"""The BBII table: per task and method, BIG-bench's normalized score, and its aggregate over
tasks (the paper's Figure 3), from the per-task JSON files that ``benchmarks/bench_bbii.py``
writes (one ``<task>.json`` per finished task; nothing else is read)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .bench import summarize_cells
from .report import ORDER, _figure

__all__ = ["TUNING_TASKS", "aggregate", "load_task_results", "plot_aggregate", "write_bbii_report"]

#: Tasks the paper used for tuning only: reported apart, never in the BBII aggregate.
TUNING_TASKS = ("intent_recognition",)


def load_task_results(results_dir: str | Path) -> dict[str, dict[str, Any]]:
    """``{task: record}`` from ``<results_dir>/*.json``, in task-name order."""
    out = {}
    for path in sorted(Path(results_dir).glob("*.json")):
        record = json.loads(path.read_text())
        out[record["task"]] = record
    return out


def _methods(records: dict[str, dict]) -> list[str]:
    names = {c["method"] for r in records.values() for c in r["cells"]}
    return sorted(names, key=lambda m: (ORDER.index(m) if m in ORDER else len(ORDER), m))


def aggregate(records: dict[str, dict]) -> dict[str, Any]:
    """Per task and overall, per method and k: the normalized score (mean over seeds), and
    per method the mean over k. ``overall`` averages tasks with equal weight (tuning tasks left
    out); its ``spread`` is the standard error over tasks."""
    per_task: dict[str, dict[tuple[str, int], float]] = {}
    for task, record in records.items():
        summary = summarize_cells(record["cells"])
        per_task[task] = {key: s["normalized_mean"] for key, s in summary.items()}
    bbii = [t for t in per_task if t not in TUNING_TASKS]
    keys = sorted({key for t in bbii for key in per_task[t]})
    overall, spread = {}, {}
    for key in keys:
        values = [per_task[t][key] for t in bbii if key in per_task[t]]
        if len(values) == len(bbii):  # only (method, k) measured on every task enter the aggregate
            overall[key] = float(np.mean(values))
            spread[key] = float(np.std(values, ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0
    return {"per_task": per_task, "tasks": bbii, "overall": overall, "spread": spread}


def _mean_over_k(scores: dict[tuple[str, int], float], method: str) -> float | None:
    values = [v for (m, _), v in scores.items() if m == method]
    return float(np.mean(values)) if values else None


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def plot_aggregate(agg: dict[str, Any], path: Path) -> None:
    """Bars: the aggregate normalized score per method at each k (zero-shot as a line)."""
    fig = _figure(8.0, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    overall = agg["overall"]
    methods = [m for m in ORDER if any(key[0] == m for key in overall) and m != "zero-shot"]
    ks = sorted({k for (m, k) in overall if m != "zero-shot"})
    width = 0.8 / max(1, len(methods))
    for i, method in enumerate(methods):
        xs = [j + (i - (len(methods) - 1) / 2) * width for j in range(len(ks))]
        ys = [overall.get((method, k), np.nan) for k in ks]
        errs = [agg["spread"].get((method, k), 0.0) for k in ks]
        ax.bar(xs, ys, width, yerr=errs, capsize=2, label=method)
    if ("zero-shot", 0) in overall:
        ax.axhline(overall[("zero-shot", 0)], color="black", linestyle="--", linewidth=1, label="zero-shot")
    ax.set_xticks(range(len(ks)))
    ax.set_xticklabels([f"k = {k}" for k in ks])
    ax.set_ylabel("normalized score (mean over tasks)")
    ax.set_title(f"BBII aggregate over {len(agg['tasks'])} tasks (error bars: standard error over tasks)")
    ax.axhline(0, color="grey", linewidth=0.5)
    ax.legend(fontsize=8, ncol=3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def write_bbii_report(results_dir: str | Path, doc_path: str | Path, *, expected: Sequence[str] = (),
                      preface: str = "", img_name: str = "bbii_aggregate.png") -> Path:
    """Write the markdown table (and its plot under ``img/`` beside ``doc_path``)."""
    records = load_task_results(results_dir)
    doc_path = Path(doc_path)
    if not records:
        raise FileNotFoundError(f"no task results in {results_dir}")
    agg = aggregate(records)
    methods = _methods(records)
    ks = sorted({k for r in records.values() for c in r["cells"] for k in [c["k"]] if k > 0})
    lines = [preface.rstrip() + "\n"] if preface else []
    done = sorted(records)
    missing = [t for t in expected if t not in records]
    lines.append(f"Tasks finished ({len(done)}): {', '.join(done)}.\n")
    lines.append(f"Tasks not yet run ({len(missing)}): {', '.join(missing) if missing else 'none'}.\n")

    lines.append("### Aggregate (the paper's Figure 3)\n")
    lines.append(f"Normalized score, mean over the {len(agg['tasks'])} finished BBII tasks (equal weight) "
                 "± standard error over tasks (from two tasks on); each task's score is the mean over seeds.\n")
    lines.append("| method | " + " | ".join(f"k = {k}" for k in ks) + " | mean over k |")
    lines.append("|---|" + "---|" * (len(ks) + 1))
    for method in methods:
        if method == "zero-shot":
            v = agg["overall"].get(("zero-shot", 0))
            lines.append("| zero-shot | " + " | ".join("" for _ in ks) + f" | {_fmt(v)} |")
            continue
        cells = [agg["overall"].get((method, k)) for k in ks]
        shown = [("—" if v is None else _fmt(v) + (f" ± {agg['spread'][(method, k)]:.1f}" if len(agg["tasks"]) > 1 else ""))
                 for v, k in zip(cells, ks)]
        known = [v for v in cells if v is not None]
        lines.append(f"| {method} | " + " | ".join(shown) + f" | {_fmt(float(np.mean(known)) if known else None)} |")
    lines.append(f"\n![BBII aggregate](img/{img_name})\n")

    lines.append("### Per task\n")
    lines.append("Normalized score (100 · (accuracy − random) / (1 − random); 0 is chance for multiple choice), "
                 "mean over k and seeds; raw accuracy in brackets.\n")
    lines.append("| task | kind | pool | test | " + " | ".join(methods) + " |")
    lines.append("|---|---|---|---|" + "---|" * len(methods))
    for task in done:
        record = records[task]
        summary = summarize_cells(record["cells"])
        row = []
        for method in methods:
            norm = _mean_over_k(agg["per_task"][task], method)
            accs = [s["accuracy_mean"] for (m, _), s in summary.items() if m == method]
            row.append("—" if norm is None else f"{norm:.1f} ({np.mean(accs):.2f})")
        kind = "MC" if record["multiple_choice"] else "gen"
        label = task + (" (tuning)" if task in TUNING_TASKS else "")
        lines.append(f"| {label} | {kind} | {record['pool']} | {record['test']} | " + " | ".join(row) + " |")
    refused = {t: r["refused"] for t, r in records.items() if r.get("refused")}
    if refused:
        lines.append("\nNot run: " + "; ".join(f"{t}: {', '.join(r)}" for t, r in refused.items()) + ".\n")

    doc_path.parent.mkdir(parents=True, exist_ok=True)
    plot_aggregate(agg, doc_path.parent / "img" / img_name)
    doc_path.write_text("\n".join(lines).rstrip() + "\n")
    return doc_path
