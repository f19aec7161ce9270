"""The holistic cost of a deployment that both answers queries and honours deletion requests.

A deployment that serves ``Q`` queries and ``D`` deletion requests with method ``m`` costs

    cost_m(D, Q) = D * U_m + Q * I_m

seconds of wall time, where ``U_m`` is the measured time to unlearn one example and ``I_m``
the measured time to answer one query (``docs/cost.md`` defines both for every method and
says how ``erase bench`` measures them). Only the ratio ``Q / D`` (queries per deletion)
decides which method is cheaper: :func:`break_even` gives the ratio at which two methods cost
the same, :func:`cheaper_at` says which wins at a given ratio.

Inference time is modelled as ``I = a + b * tokens`` (:class:`InferenceCost`, fitted by
:func:`fit_inference_cost` on measured samples, robustly with ``robust=True``) so that every
method is priced from the tokens it processes at one shared rate; a per-query time measured
directly can be given to :class:`MethodCost` as it is. :func:`prefix_is_cached` says when a
deletion that changes the shots also pays a prefix recomputation; :func:`spread` and
:func:`break_even_spread` summarise repeated measurements (median and range, never one raw
timing); :func:`plot_cost_accuracy` puts each method's cost beside the accuracy it buys.

Pure Python + numpy; matplotlib is imported inside the plotting functions only.
"""

from __future__ import annotations

import math
import numbers
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .._validation import ERASEError

__all__ = [
    "DEFAULT_QUERIES_PER_DELETION",
    "DEFAULT_PLOT_RATIOS",
    "InferenceCost",
    "MethodCost",
    "fit_inference_cost",
    "cached_prefix_unlearn_seconds",
    "prefix_is_cached",
    "spread",
    "break_even_spread",
    "plot_cost_accuracy",
    "deployment_cost",
    "break_even",
    "cheaper_at",
    "cost_table",
    "markdown_table",
    "plot_cost",
]

#: Ratios (queries per deletion) that :func:`cost_table` reports by default.
DEFAULT_QUERIES_PER_DELETION: tuple[int, ...] = (1, 10, 100, 1000, 10_000, 100_000)

#: Ratios that :func:`plot_cost` draws by default: 10^0 .. 10^6, 10 points per decade.
DEFAULT_PLOT_RATIOS = np.logspace(0, 6, 61)
DEFAULT_PLOT_RATIOS.flags.writeable = False

#: Relative tolerance under which two costs count as equal (a tie) in cheaper_at / cost_table.
TIE_RTOL = 1e-9


# --------------------------------------------------------------------------- validation

def _nonneg(value, what: str) -> float:
    """``value`` as a finite, non-negative float; the single check every number here goes through."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ERASEError(f"{what} must be a real number, got {type(value).__name__} {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise ERASEError(f"{what} must be finite, got {out!r}")
    if out < 0:
        raise ERASEError(f"{what} must be non-negative, got {out!r}")
    return out


def _samples(values, what: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ERASEError(f"{what} must be a 1-d sequence of numbers: {exc}") from None
    if arr.ndim != 1:
        raise ERASEError(f"{what} must be 1-dimensional; got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ERASEError(f"{what} contains NaN or infinite values (first at {int(np.flatnonzero(~np.isfinite(arr))[0])})")
    if (arr < 0).any():
        raise ERASEError(f"{what} must be non-negative (first negative at {int(np.flatnonzero(arr < 0)[0])})")
    return arr


def _ratios(values, what: str = "queries_per_deletion") -> list[float]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ERASEError(f"{what} must be a sequence of numbers, got {values!r}")
    out = [_nonneg(v, what) for v in values]
    if not out:
        raise ERASEError(f"{what} is empty")
    return out


# --------------------------------------------------------------------------- inference price

@dataclass(frozen=True)
class InferenceCost:
    """Seconds per model call as ``a + b * tokens``: ``a`` fixed per call, ``b`` per processed token."""

    a: float
    b: float

    def __post_init__(self):
        object.__setattr__(self, "a", _nonneg(self.a, "InferenceCost.a (seconds per call)"))
        object.__setattr__(self, "b", _nonneg(self.b, "InferenceCost.b (seconds per token)"))

    def seconds(self, tokens_per_call, calls: float = 1) -> float:
        """Time of ``calls`` model calls that each process ``tokens_per_call`` tokens."""
        t = _nonneg(tokens_per_call, "tokens_per_call")
        n = _nonneg(calls, "calls")
        return n * (self.a + self.b * t)

    __call__ = seconds


def fit_inference_cost(tokens: Sequence[float], seconds: Sequence[float], *, robust: bool = False) -> InferenceCost:
    """Fit of ``seconds ≈ a + b * tokens`` over measured samples, with ``a, b ≥ 0``.

    Each sample is one model call (or one query): the tokens it processed and its wall time.
    Needs at least two samples of equal count, all finite and non-negative.

    ``robust=False`` (least squares): when every sample has the same token count the slope is
    unidentifiable: ``b = 0`` and ``a`` is the mean time. When the ordinary fit would give a
    negative intercept or slope (noise), the best fit with that coefficient held at 0 is
    returned instead (the non-negative least-squares solution); otherwise the result is the
    ordinary least-squares fit.

    ``robust=True`` (Theil–Sen, for timings from a shared machine, where a few samples are
    slowed many times over by other jobs): ``b`` is the median of the slopes between every
    pair of samples with different token counts, ``a`` the median of ``seconds - b * tokens``;
    each clipped at 0. With a single token count, ``b = 0`` and ``a`` is the median time."""
    t = _samples(tokens, "tokens")
    s = _samples(seconds, "seconds")
    if t.shape != s.shape:
        raise ERASEError(f"tokens and seconds differ in length: {t.size} vs {s.size}")
    if t.size < 2:
        raise ERASEError(f"at least 2 (tokens, seconds) samples are needed, got {t.size}")
    if robust:
        i, j = np.triu_indices(t.size, k=1)
        dt_pairs = t[j] - t[i]
        keep = dt_pairs != 0
        b = max(float(np.median((s[j] - s[i])[keep] / dt_pairs[keep])), 0.0) if keep.any() else 0.0
        return InferenceCost(a=max(float(np.median(s - b * t)), 0.0), b=b)
    t_mean, s_mean = float(t.mean()), float(s.mean())
    dt = t - t_mean
    var = float(dt @ dt)
    if var == 0.0:
        return InferenceCost(a=s_mean, b=0.0)
    b = float(dt @ (s - s_mean)) / var
    a = s_mean - b * t_mean
    if a >= 0.0 and b >= 0.0:
        return InferenceCost(a=max(a, 0.0), b=max(b, 0.0))
    # Unconstrained optimum infeasible: the constrained one lies on a = 0 or b = 0.
    candidates = [(s_mean, 0.0)]
    tt = float(t @ t)
    if tt > 0:
        candidates.append((0.0, max(float(t @ s) / tt, 0.0)))
    a, b = min(candidates, key=lambda ab: float(np.sum((s - ab[0] - ab[1] * t) ** 2)))
    return InferenceCost(a=a, b=b)


# --------------------------------------------------------------------------- method costs

@dataclass(frozen=True)
class MethodCost:
    """What one method costs: seconds per deletion (``unlearn_seconds``, U) and per query
    (``query_seconds``, I). ``prompt_tokens``: mean tokens processed per query (all calls
    together), for the record only; ``notes``: free text (what was measured, where)."""

    name: str
    unlearn_seconds: float
    query_seconds: float
    prompt_tokens: float | None = None
    notes: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.strip():
            raise ERASEError(f"MethodCost.name must be a non-empty string, got {self.name!r}")
        object.__setattr__(self, "unlearn_seconds", _nonneg(self.unlearn_seconds, f"{self.name}: unlearn_seconds"))
        object.__setattr__(self, "query_seconds", _nonneg(self.query_seconds, f"{self.name}: query_seconds"))
        if self.prompt_tokens is not None:
            object.__setattr__(self, "prompt_tokens", _nonneg(self.prompt_tokens, f"{self.name}: prompt_tokens"))
        if not isinstance(self.notes, str):
            raise ERASEError(f"{self.name}: notes must be a string, got {type(self.notes).__name__}")

    @classmethod
    def from_tokens(cls, name: str, *, unlearn_seconds: float, price: InferenceCost, tokens_per_call: float,
                    calls_per_query: int = 1, notes: str = "") -> "MethodCost":
        """Query time from the shared per-token ``price``: ``calls_per_query * (a + b * tokens_per_call)``.

        ``tokens_per_call``: the tokens the model processes per call *after* any cached prefix
        (a KV-cached fixed prefix is not re-processed per query; count its recomputation in
        ``unlearn_seconds``, see :func:`cached_prefix_unlearn_seconds`). SISA with S shards:
        ``calls_per_query=S`` with the zero-shot prompt's tokens."""
        if not isinstance(price, InferenceCost):
            raise ERASEError(f"price must be an InferenceCost, got {type(price).__name__}")
        tokens = _nonneg(tokens_per_call, f"{name}: tokens_per_call")
        calls = _nonneg(calls_per_query, f"{name}: calls_per_query")
        return cls(name=name, unlearn_seconds=unlearn_seconds, query_seconds=price.seconds(tokens, calls),
                   prompt_tokens=calls * tokens, notes=notes)

    def cost(self, deletions: float, queries: float) -> float:
        """Same as :func:`deployment_cost` (self, deletions, queries)."""
        return deployment_cost(self, deletions, queries)

    def to_dict(self) -> dict:
        return asdict(self)


def cached_prefix_unlearn_seconds(forget_seconds: float, selected_changed_fraction: float,
                                  prefix_seconds: float) -> float:
    """Per-deletion time of a method whose fixed prompt prefix is KV-cached.

    ``forget_seconds``: the index update (ERASE: median ``ExampleIndex.forget``);
    ``selected_changed_fraction``: the share of deletions that changed the selected set
    (``ForgetReceipt.selected_changed``), each of which invalidates the cache;
    ``prefix_seconds``: one recomputation of the prefix (``price.seconds(prefix_tokens)``)."""
    f = _nonneg(selected_changed_fraction, "selected_changed_fraction")
    if f > 1:
        raise ERASEError(f"selected_changed_fraction must be in [0, 1], got {f!r}")
    return _nonneg(forget_seconds, "forget_seconds") + f * _nonneg(prefix_seconds, "prefix_seconds")


def prefix_is_cached(backend: str, multiple_choice: bool, fixed_shots: bool) -> bool:
    """Whether ``erase bench``'s answering back end keeps a method's prompt prefix as a KV cache
    across queries, so that a deletion changing the shots costs one prefix recomputation.

    Only the ``cached`` back end on a multiple-choice task does (``MultipleChoiceScorer`` keeps
    the prefix's ``past_key_values`` while the prefix stays the same), and only for methods
    whose shots are the same for every query (``fixed_shots``: ERASE, ACoT, random). Generation
    (``LocalCausalLM.generate``) and the ``batched`` back end run the whole prompt per query:
    the prefix is already in the per-query price and a changed set costs nothing extra."""
    if backend not in ("cached", "batched"):
        raise ERASEError(f"backend must be 'cached' or 'batched', got {backend!r}")
    return backend == "cached" and bool(multiple_choice) and bool(fixed_shots)


def spread(values: Iterable[float], what: str = "values") -> dict:
    """Median, quartiles, min, max, mean and count of repeated measurements (all finite, ≥ 0)."""
    arr = _samples(list(values), what)
    if arr.size == 0:
        raise ERASEError(f"{what} is empty")
    return {"median": float(np.median(arr)), "q1": float(np.percentile(arr, 25)), "q3": float(np.percentile(arr, 75)),
            "min": float(arr.min()), "max": float(arr.max()), "mean": float(arr.mean()), "n": int(arr.size)}


def break_even_spread(a_runs: Sequence[MethodCost], b_runs: Sequence[MethodCost]) -> dict:
    """The break-even of ``a`` against ``b`` in each of several repeated runs (``a_runs[i]``
    with ``b_runs[i]``): ``{"runs": [q* or None, ...], "never": count of None, "median",
    "min", "max"}`` over the runs that cross (the summary keys are None when none does)."""
    a_list, b_list = list(a_runs), list(b_runs)
    if not a_list or len(a_list) != len(b_list):
        raise ERASEError(f"need the same, non-zero number of runs for both methods; got {len(a_list)} and {len(b_list)}")
    runs = [break_even(_check_method(a, "a run"), _check_method(b, "b run")) for a, b in zip(a_list, b_list)]
    crossing = [q for q in runs if q is not None]
    out: dict = {"runs": runs, "never": len(runs) - len(crossing), "median": None, "min": None, "max": None}
    if crossing:
        out.update(median=float(np.median(crossing)), min=min(crossing), max=max(crossing))
    return out


def _check_method(m, what: str = "method") -> MethodCost:
    if not isinstance(m, MethodCost):
        raise ERASEError(f"{what} must be a MethodCost, got {type(m).__name__}")
    return m


def _methods(methods) -> list[MethodCost]:
    if isinstance(methods, MethodCost):
        methods = [methods]
    out = [_check_method(m, "every method") for m in methods]
    if not out:
        raise ERASEError("no methods given")
    names = [m.name for m in out]
    dup = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if dup is not None:
        raise ERASEError(f"method name {dup!r} is given twice")
    return out


# --------------------------------------------------------------------------- comparisons

def deployment_cost(method: MethodCost, deletions: float, queries: float) -> float:
    """``deletions * U + queries * I``: seconds to honour ``deletions`` and answer ``queries``."""
    m = _check_method(method)
    d = _nonneg(deletions, "deletions")
    q = _nonneg(queries, "queries")
    return d * m.unlearn_seconds + q * m.query_seconds


def break_even(a: MethodCost, b: MethodCost) -> float | None:
    """Queries per deletion ``q*`` at which ``a`` and ``b`` cost the same, or None.

    From ``D U_a + Q I_a = D U_b + Q I_b``: ``q* = Q/D = (U_b - U_a) / (I_a - I_b)``. Below
    ``q*`` the method with the cheaper unlearning wins, above it the one with the cheaper
    queries. None when there is no positive crossing: one method costs no more at every ratio
    (it is no worse in both U and I; :func:`cheaper_at` says which), including identical costs
    and equal U with different I (they tie only at zero queries)."""
    _check_method(a, "a")
    _check_method(b, "b")
    d_unlearn = b.unlearn_seconds - a.unlearn_seconds
    d_query = a.query_seconds - b.query_seconds
    if d_query == 0.0 or d_unlearn == 0.0 or (d_unlearn > 0) != (d_query > 0):
        return None
    return d_unlearn / d_query


def cheaper_at(a: MethodCost, b: MethodCost, queries_per_deletion: float) -> MethodCost | None:
    """The cheaper of ``a`` and ``b`` for one deletion per ``queries_per_deletion`` queries;
    None when they cost the same (within a relative ``TIE_RTOL``)."""
    q = _nonneg(queries_per_deletion, "queries_per_deletion")
    ca, cb = deployment_cost(a, 1.0, q), deployment_cost(b, 1.0, q)
    if math.isclose(ca, cb, rel_tol=TIE_RTOL, abs_tol=0.0):
        return None
    return a if ca < cb else b


def _cheapest(methods: list[MethodCost], q: float) -> list[MethodCost]:
    costs = [deployment_cost(m, 1.0, q) for m in methods]
    low = min(costs)
    return [m for m, c in zip(methods, costs) if math.isclose(c, low, rel_tol=TIE_RTOL, abs_tol=0.0)]


def _tidy_ratio(q: float):
    return int(q) if q.is_integer() and abs(q) < 2**53 else q


def cost_table(methods: Iterable[MethodCost],
               queries_per_deletion: Sequence[float] = DEFAULT_QUERIES_PER_DELETION) -> list[dict]:
    """One row per ratio: the seconds of one deletion plus its ``q`` queries for each method.

    Row keys: ``"queries_per_deletion"``, then each method's name (``U + q * I``), then
    ``"cheapest"`` (the cheapest method's name; tied names joined by ``" = "``). Method names
    must be distinct and may not be either of the two fixed keys."""
    ms = _methods(methods)
    reserved = {"queries_per_deletion", "cheapest"}
    clash = next((m.name for m in ms if m.name in reserved), None)
    if clash is not None:
        raise ERASEError(f"method name {clash!r} is a column of the cost table; rename the method")
    rows = []
    for q in _ratios(queries_per_deletion):
        row: dict = {"queries_per_deletion": _tidy_ratio(q)}
        for m in ms:
            row[m.name] = deployment_cost(m, 1.0, q)
        row["cheapest"] = " = ".join(m.name for m in _cheapest(ms, q))
        rows.append(row)
    return rows


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, numbers.Integral):
        return f"{int(v):,}"
    if isinstance(v, numbers.Real):
        x = float(v)
        if not math.isfinite(x):
            return str(x)
        if 1e3 <= abs(x) < 1e15:
            return f"{x:,.0f}"
        return f"{x:.4g}"
    return str(v).replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: Sequence[dict]) -> str:
    """A GitHub markdown table of ``rows`` (dicts; columns in first-seen key order).

    Integers get thousands separators; floats 4 significant digits below 1,000 and whole
    numbers with thousands separators from there (to 1e15); None an empty cell;
    numeric columns are right-aligned. Ends with a newline."""
    rows = list(rows)
    if not rows:
        raise ERASEError("markdown_table needs at least one row")
    if not all(isinstance(r, dict) for r in rows):
        raise ERASEError("markdown_table rows must be dicts")
    cols: list = []
    for r in rows:
        cols.extend(k for k in r if k not in cols)
    numeric = {c: all(r.get(c) is None or (isinstance(r.get(c), numbers.Real) and not isinstance(r.get(c), bool))
                      for r in rows) for c in cols}
    lines = ["| " + " | ".join(_fmt(c) for c in cols) + " |",
             "|" + "|".join("---:" if numeric[c] else "---" for c in cols) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- plot

def plot_cost(methods: Iterable[MethodCost], path: str | os.PathLike,
              ratios: Sequence[float] | np.ndarray = DEFAULT_PLOT_RATIOS, *, highlight: str | None = None) -> Path:
    """Log-log plot of ``U + r * I`` (seconds of one deletion and its ``r`` queries) against
    ``r`` (queries per deletion), one line per method, every pairwise break-even inside the
    plotted range marked. Writes a PNG with matplotlib's Agg canvas (no pyplot, the global
    backend is left alone); creates missing parent folders; returns the path. With
    ``highlight``, only the break-evens of that method are marked (many methods crowd the plot)."""
    ms = _methods(methods)
    r = np.asarray(_ratios(ratios, "ratios"), dtype=np.float64)
    if (r <= 0).any():
        raise ERASEError("ratios must be positive for a log axis")
    r = np.unique(r)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.0, 4.8), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    colors = {}
    for m in ms:
        y = m.unlearn_seconds + r * m.query_seconds
        y = np.where(y > 0, y, np.nan)  # a zero cost has no place on a log axis
        (line,) = ax.plot(r, y, label=m.name, linewidth=1.8)
        colors[m.name] = line.get_color()
    marked = False
    for i, a in enumerate(ms):
        for b in ms[i + 1:]:
            if highlight is not None and highlight not in (a.name, b.name):
                continue
            q = break_even(a, b)
            if q is None or not (r[0] <= q <= r[-1]):
                continue
            c = deployment_cost(a, 1.0, q)
            if c <= 0:
                continue
            ax.plot([q], [c], marker="o", markersize=7, markerfacecolor="white", markeredgecolor="black",
                    linestyle="none", label="break-even" if not marked else None, zorder=5)
            ax.annotate(f"{a.name} = {b.name}\nq* = {q:.3g}", (q, c), textcoords="offset points",
                        xytext=(6, -14), fontsize=7)
            marked = True
    ax.set_xscale("log", nonpositive="mask")
    ax.set_yscale("log", nonpositive="mask")
    ax.set_xlabel("queries per deletion  r = Q / D")
    ax.set_ylabel("seconds per deletion and its r queries  (U + r·I)")
    ax.set_title("Holistic cost: unlearning + inference")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out


def plot_cost_accuracy(points: dict, path: str | os.PathLike, *, xlabel: str = "seconds per query at the task's price") -> Path:
    """One panel per task: each method's cost (x; log when it spans more than 20×) against the
    accuracy it buys (y).

    ``points``: ``{task: [{"method", "cost", "score", "score_std"?}, ...]}`` (``score`` is
    whatever the caller measures accuracy in, e.g. the BIG-bench normalized score). Writes a
    PNG with matplotlib's Agg canvas; returns the path."""
    if not isinstance(points, dict) or not points:
        raise ERASEError("points must be a non-empty {task: [point, ...]} dict")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    tasks = list(points)
    cols = min(3, len(tasks))
    rows = math.ceil(len(tasks) / cols)
    names = list(dict.fromkeys(p["method"] for t in tasks for p in points[t]))
    ncol = min(len(names), 3 * cols)
    legend_in = 0.25 * math.ceil(len(names) / ncol) + 0.15
    height = 3.4 * rows + legend_in
    fig = Figure(figsize=(4.2 * cols, height), dpi=110)
    FigureCanvasAgg(fig)
    markers = "osD^vP*Xh<>"
    for i, task in enumerate(tasks):
        ax = fig.add_subplot(rows, cols, i + 1)
        for p in points[task]:
            cost = _nonneg(p["cost"], f"{task}/{p['method']}: cost")
            j = names.index(p["method"])
            ax.errorbar([max(cost, 1e-12)], [float(p["score"])], yerr=[float(p.get("score_std") or 0.0)],
                        marker=markers[j % len(markers)], color=f"C{j % 10}", capsize=2, linestyle="none",
                        label=p["method"])
        costs = [max(float(p["cost"]), 1e-12) for p in points[task]]
        if max(costs) > 20 * min(costs):  # a log axis only where costs span orders of magnitude
            ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(task, fontsize=9)
        ax.set_xlabel(xlabel, fontsize=7)
        ax.set_ylabel("accuracy (normalized score)", fontsize=7)
        ax.tick_params(labelsize=7)
        ax.grid(True, alpha=0.3)
    handles, labels = fig.axes[0].get_legend_handles_labels()
    seen = dict(zip(labels, handles))
    for ax in fig.axes[1:]:
        h, lab = ax.get_legend_handles_labels()
        seen.update(zip(lab, h))
    fig.legend(list(seen.values()), list(seen), fontsize=7, loc="lower center", ncol=ncol)
    fig.tight_layout(rect=(0, legend_in / height, 1, 1))
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out
