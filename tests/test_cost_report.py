"""The cost that ``erase bench`` reports: one price for every method, unlearning averaged over
forgets (SISA included), the prefix charged only where it is cached, break-even spread, and
cost beside accuracy (issue 29)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from erase_core._validation import ERASEError
from erase_core.evaluation.cost import (
    InferenceCost,
    MethodCost,
    break_even,
    break_even_spread,
    fit_inference_cost,
    plot_cost_accuracy,
    prefix_is_cached,
    spread,
)
from erase_core.evaluation.report import cost_accuracy_points, cost_section, cost_summary, method_costs, task_costs


def test_robust_fit_ignores_samples_slowed_by_other_jobs():
    tokens = np.arange(10, 210, 10, dtype=float)
    seconds = 0.2 + 0.003 * tokens
    slowed = seconds.copy()
    slowed[[3, 11, 17]] *= 6  # three calls ran while another job held the core
    robust = fit_inference_cost(tokens, slowed, robust=True)
    assert robust.a == pytest.approx(0.2) and robust.b == pytest.approx(0.003)
    plain = fit_inference_cost(tokens, slowed)
    assert abs(plain.b - 0.003) > 0.001  # least squares is pulled off by them
    exact, ols = fit_inference_cost(tokens, seconds, robust=True), fit_inference_cost(tokens, seconds)
    assert (exact.a, exact.b) == pytest.approx((ols.a, ols.b))
    same = fit_inference_cost([50, 50, 50], [1.0, 9.0, 2.0], robust=True)
    assert same == InferenceCost(a=2.0, b=0.0)  # one token count: the median time, no slope
    assert fit_inference_cost([1, 2, 3], [3.0, 2.0, 1.0], robust=True).b == 0.0  # clipped at 0
    with pytest.raises(ERASEError, match="negative"):
        fit_inference_cost([1, 2], [1.0, -1.0], robust=True)


def test_prefix_is_cached_only_on_the_cached_back_end_for_fixed_shots_on_multiple_choice():
    assert prefix_is_cached("cached", True, True)
    for args in (("cached", False, True), ("cached", True, False), ("batched", True, True), ("batched", False, False)):
        assert not prefix_is_cached(*args), args
    with pytest.raises(ERASEError, match="backend"):
        prefix_is_cached("fast", True, True)


def test_spread_and_break_even_spread():
    s = spread([3.0, 1.0, 2.0, 10.0])
    assert (s["median"], s["min"], s["max"], s["n"]) == (2.5, 1.0, 10.0, 4) and s["mean"] == 4.0
    with pytest.raises(ERASEError, match="empty"):
        spread([])
    erase = MethodCost("erase", 0.001, 0.5)
    runs = [MethodCost("sisa", u, 0.4) for u in (10.0, 20.0, 40.0)]
    be = break_even_spread([erase] * 3, runs)
    assert be["runs"] == [break_even(erase, r) for r in runs] and be["never"] == 0
    assert be["median"] == pytest.approx((20.0 - 0.001) / 0.1) and be["min"] < be["median"] < be["max"]
    dominated = break_even_spread([erase], [MethodCost("sisa", 10.0, 0.6)])
    assert dominated == {"runs": [None], "never": 1, "median": None, "min": None, "max": None}
    with pytest.raises(ERASEError, match="same"):
        break_even_spread([erase], runs)


def _cell(method, k, seed, tokens, seconds, normalized=10.0, prefix_tokens=None):
    c = {"method": method, "k": k, "seed": seed, "accuracy": 0.5, "normalized": normalized,
         "tokens_per_query": tokens, "seconds_per_query": seconds}
    if prefix_tokens is not None:
        c["prefix_tokens"] = prefix_tokens
    return c


def _results(multiple_choice=True, backend="cached"):
    """A results file with per-method raw timings that disagree (load), like the issue's."""
    cells = [_cell("zero-shot", 0, 0, 50, 0.30),
             _cell("erase", 4, 0, 54, 0.95, prefix_tokens=160), _cell("erase", 4, 1, 54, 0.50, prefix_tokens=170),
             _cell("random", 4, 0, 54, 0.55, prefix_tokens=165),
             _cell("knn", 4, 0, 210, 0.80, prefix_tokens=160), _cell("knn", 4, 1, 215, 0.85)]
    cost = {"erase": {"mean_seconds": 0.002, "median_seconds": 0.001, "max_seconds": 0.005, "forgets": 4,
                      "selected_changed": 2, "seconds": [0.001, 0.001, 0.001, 0.005]},
            "random": {"mean_seconds": 0.0003, "median_seconds": 0.0003, "max_seconds": 0.0003, "forgets": 4,
                       "selected_changed": 4, "seconds": [0.0003] * 4},
            "knn": {"mean_seconds": 0.0002, "median_seconds": 0.0002, "max_seconds": 0.0002, "forgets": 4,
                    "selected_changed": 3, "seconds": [0.0002] * 4}}
    sisa = {"configs": [{"shards": 1, "slices": 4, "pool": 80, "accuracy": 0.6, "normalized": 40.0,
                         "unlearn_seconds": 20.0, "unlearn_seconds_all": [10.0, 20.0, 30.0], "tokens_per_query": 80},
                        {"shards": 2, "pool": 80, "skipped": "a shard under 20 examples"}]}
    return {"config": {"deletion_k": 4, "backend": backend},
            "tasks": {"t": {"multiple_choice": multiple_choice, "cells": cells, "unlearning_cost": cost, "sisa": sisa}}}


def test_every_method_is_priced_from_its_tokens_at_one_price():
    results = _results()
    tc = task_costs(results["tasks"]["t"], 4, "cached")
    cells = results["tasks"]["t"]["cells"]
    price = fit_inference_cost([c["tokens_per_query"] for c in cells], [c["seconds_per_query"] for c in cells], robust=True)
    assert tc["price"] == {"a": price.a, "b": price.b, "cells": len(cells), "stated": False}
    ms = tc["methods"]
    # erase and random process the same tokens: the same I, whatever their raw seconds (0.95/0.50 vs 0.55)
    assert ms["erase"]["I"] == ms["random"]["I"] == price.seconds(54)
    assert ms["knn"]["I"] == price.seconds(212.5)
    # SISA: one call per shard on the zero-shot prompt, at the same price; U the mean of its 3 forgets
    assert ms["sisa-1"]["I"] == price.seconds(80, calls=1) and ms["sisa-1"]["U"] == 20.0
    assert ms["sisa-1"]["forget_seconds"]["n"] == 3 and "sisa-2" not in ms
    # U: mean forget time (not the median), plus b × prefix tokens per changed forget, cached fixed sets only
    assert ms["erase"]["prefix_cached"] and ms["erase"]["U"] == pytest.approx(0.002 + 0.5 * price.b * 165)
    assert ms["random"]["U"] == pytest.approx(0.0003 + 1.0 * price.b * 165)
    assert not ms["knn"]["prefix_cached"] and ms["knn"]["U"] == 0.0002
    assert ms["zero-shot"]["U"] == 0.0


@pytest.mark.parametrize("multiple_choice, backend", [(False, "cached"), (True, "batched")])
def test_no_prefix_charge_where_the_back_end_never_caches_it(multiple_choice, backend):
    ms = task_costs(_results(multiple_choice, backend)["tasks"]["t"], 4, backend)["methods"]
    assert not any(m["prefix_cached"] for m in ms.values())
    assert ms["erase"]["U"] == 0.002 and ms["random"]["U"] == 0.0003


def test_older_results_without_prefix_tokens_or_forget_lists():
    """Files written before the bench recorded them: the prefix is kNN's prompt less zero-shot's,
    U the recorded mean, SISA's single forget."""
    results = _results()
    entry = results["tasks"]["t"]
    for c in entry["cells"]:
        c.pop("prefix_tokens", None)
    for cost in entry["unlearning_cost"].values():
        del cost["seconds"]
    del entry["sisa"]["configs"][0]["unlearn_seconds_all"]
    ms = task_costs(entry, 4, "cached")["methods"]
    b = task_costs(entry, 4, "cached")["price"]["b"]
    assert ms["erase"]["U"] == pytest.approx(0.002 + 0.5 * b * (212.5 - 50))
    assert ms["sisa-1"]["U"] == 20.0 and ms["erase"]["forget_seconds"]["n"] == 1


def test_break_even_per_task_with_its_spread_and_the_report(tmp_path):
    results = _results()
    summary = cost_summary(results)
    assert summary["backend"] == "cached"
    ms = summary["tasks"]["t"]["methods"]
    be = summary["tasks"]["t"]["break_even"]["knn vs sisa-1"]
    expected = [break_even(MethodCost("knn", ms["knn"]["U"], ms["knn"]["I"]), MethodCost("s", u, ms["sisa-1"]["I"]))
                for u in (10.0, 20.0, 30.0)]
    assert be["runs"] == expected and be["min"] == min(expected) and be["max"] == max(expected)
    means = {m.name: m for m in method_costs(results)}
    assert means["erase"].query_seconds == ms["erase"]["I"]
    md, _ = cost_section(results, tmp_path)
    assert "knn vs sisa-1" in md and "| t |" in md
    assert (tmp_path / "cost_accuracy.png").stat().st_size > 1000
    assert (tmp_path / "holistic_cost.png").stat().st_size > 1000
    # no timed cells: the task has no cost, nothing is invented
    empty = copy.deepcopy(results)
    for c in empty["tasks"]["t"]["cells"]:
        c["seconds_per_query"] = None
    assert cost_summary(empty)["tasks"] == {}
    # the backend a GPU run recorded nothing for: its device's default
    assert cost_summary({"config": {"deletion_k": 4, "device": "cuda"}, "device": "cuda:0", "tasks": {}})["backend"] == "batched"


def test_cost_accuracy_plot(tmp_path):
    points = cost_accuracy_points(cost_summary(_results()))
    assert {p["method"] for p in points["t"]} == {"zero-shot", "erase", "random", "knn", "sisa-1"}
    path = plot_cost_accuracy(points | {"u": points["t"][:2]}, tmp_path / "sub" / "ca.png")
    assert path.stat().st_size > 1000
    with pytest.raises(ERASEError, match="non-empty"):
        plot_cost_accuracy({}, tmp_path / "x.png")
    with pytest.raises(ERASEError, match="non-negative"):
        plot_cost_accuracy({"t": [{"method": "m", "cost": -1.0, "score": 0.0}]}, tmp_path / "x.png")


def test_unlearning_cost_records_every_forget(tmp_path):
    from erase_core.evaluation.bench import Bench, BenchConfig, TaskData, split_key
    from erase_core.evaluation.bigbench import load_task
    from erase_core.evaluation.prompts import TaskFormat

    path = tmp_path / "t" / "task.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"examples": [{"input": f"item {i}?", "target_scores": {"a": i % 2, "b": 1 - i % 2}}
                                             for i in range(40)]}))
    config = BenchConfig(n_pool=30, n_test=10, cost_forgets=5, deletion_k=2, ks=[2], methods=["erase", "knn"],
                         cache_dir=str(tmp_path / "cache"))
    task = load_task("t", data_dir=tmp_path)
    fmt = TaskFormat.of(task)
    pool, test = task.split(30, 10, seed=0)
    vectors = np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32)
    data = TaskData(task, fmt, pool, test, [f"t-{e['idx']}" for e in pool], vectors[:30], vectors[30:],
                    [e["correct_choice"] for e in pool], split_key(task, fmt, pool, test, config))
    cost = Bench(config, progress=False).unlearning_cost(data)
    for name in ("erase", "knn"):
        assert len(cost[name]["seconds"]) == cost[name]["forgets"] == 5
        assert cost[name]["mean_seconds"] == pytest.approx(float(np.mean(cost[name]["seconds"])))


def test_a_stated_price_replaces_the_fit_for_every_task():
    from erase_core.evaluation.command import build_parser

    assert build_parser().parse_args(["--price", "0.1,0.002"]).price == {"a": 0.1, "b": 0.002}
    for bad in ("0.1", "a,b", "-1,0.002"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["--price", bad])
    results = _results() | {"price": {"a": 0.1, "b": 0.002}}
    tc = cost_summary(results)["tasks"]["t"]
    assert tc["price"]["stated"] and (tc["price"]["a"], tc["price"]["b"]) == (0.1, 0.002)
    assert tc["methods"]["knn"]["I"] == pytest.approx(0.1 + 0.002 * 212.5)
    assert tc["methods"]["erase"]["U"] == pytest.approx(0.002 + 0.5 * 0.002 * 165)
    assert not cost_summary(_results())["tasks"]["t"]["price"]["stated"]
