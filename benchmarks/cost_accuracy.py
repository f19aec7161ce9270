"""Cost beside accuracy, from results files that ``erase bench`` already wrote.

For each results file: the per-task costs of :func:`erase_core.evaluation.report.cost_summary`
(one Theil–Sen per-token price per task, U averaged over the timed forgets, the prefix charged
only where it is cached), the break-evens with their spread, and a cost–accuracy plot per task
(``docs/img/cost_accuracy_<name>.png``). Writes ``benchmarks/results/cost_accuracy.json``.

    python benchmarks/cost_accuracy.py docs/results-cpu docs/results-cpu-sisa docs/results-cpu-tasks docs
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from erase_core.evaluation.cost import plot_cost_accuracy  # noqa: E402
from erase_core.evaluation.report import cost_accuracy_points, cost_summary, load_results  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", help="folders holding a results.json")
    parser.add_argument("--img", default=str(ROOT / "docs" / "img"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "cost_accuracy.json"))
    args = parser.parse_args()
    out = {}
    for folder in args.folders:
        results = load_results(Path(folder) / "results.json")
        summary = cost_summary(results)
        name = Path(folder).resolve().relative_to(ROOT).as_posix().replace("/", "_")
        if summary["tasks"]:
            png = plot_cost_accuracy(cost_accuracy_points(summary), Path(args.img) / f"cost_accuracy_{name}.png")
            summary["plot"] = png.resolve().relative_to(ROOT).as_posix()
        out[Path(folder).resolve().relative_to(ROOT).as_posix()] = summary
        for task, tc in summary["tasks"].items():
            print(f"{folder} {task}: price a={tc['price']['a']:.3g} s, b={tc['price']['b']:.3g} s/token "
                  f"({tc['price']['cells']} cells)")
            for m, v in tc["methods"].items():
                print(f"  {m:18s} U={v['U']:.4g} s  I={v['I']:.4g} s  tokens={v['tokens']:.0f}  "
                      f"prefix cached={v['prefix_cached']}  normalized={v['normalized']:.1f}")
            for pair, be in tc["break_even"].items():
                print(f"  break-even {pair}: {be}")
    Path(args.out).write_text(json.dumps(out, indent=1, default=float))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
