"""erase_core.evaluation.cost: holistic cost D×U + Q×I, break-even, fitting, table and plot."""

from __future__ import annotations

import math

import numpy as np
import pytest

from erase_core._validation import ERASEError
from erase_core.evaluation.cost import (
    DEFAULT_QUERIES_PER_DELETION,
    InferenceCost,
    MethodCost,
    break_even,
    cached_prefix_unlearn_seconds,
    cheaper_at,
    cost_table,
    deployment_cost,
    fit_inference_cost,
    markdown_table,
    plot_cost,
)

# The worked example of docs/cost.md.
PRICE = InferenceCost(a=0.05, b=0.0004)
ERASE = MethodCost.from_tokens("erase", unlearn_seconds=0.005, price=PRICE, tokens_per_call=900)
SISA = MethodCost.from_tokens("sisa-4", unlearn_seconds=12.0, price=PRICE, tokens_per_call=100, calls_per_query=4)


# --------------------------------------------------------------------------- deployment_cost

def test_deployment_cost_hand_computed():
    m = MethodCost("m", unlearn_seconds=2.0, query_seconds=0.5)
    assert deployment_cost(m, 3, 10) == 3 * 2.0 + 10 * 0.5 == 11.0
    assert deployment_cost(m, 0, 0) == 0.0
    assert deployment_cost(m, 1, 0) == 2.0
    assert deployment_cost(m, 0, 7) == 3.5
    assert m.cost(4, 2) == 9.0
    # doc example: 10 × 0.005 + 5000 × 0.41
    assert deployment_cost(ERASE, deletions=10, queries=5000) == pytest.approx(2050.05, rel=1e-12)


@pytest.mark.parametrize("d, q", [(-1, 0), (0, -1), (math.nan, 1), (1, math.inf), ("3", 1), (True, 1)])
def test_deployment_cost_rejects_bad_counts(d, q):
    m = MethodCost("m", 1.0, 1.0)
    with pytest.raises(ERASEError):
        deployment_cost(m, d, q)


def test_deployment_cost_rejects_non_method():
    with pytest.raises(ERASEError, match="MethodCost"):
        deployment_cost({"unlearn_seconds": 1, "query_seconds": 1}, 1, 1)


# --------------------------------------------------------------------------- break_even / cheaper_at

def test_break_even_hand_computed():
    a = MethodCost("a", unlearn_seconds=1.0, query_seconds=0.3)   # cheap unlearning, dear queries
    b = MethodCost("b", unlearn_seconds=21.0, query_seconds=0.1)  # dear unlearning, cheap queries
    # (21 - 1) / (0.3 - 0.1) = 100
    assert break_even(a, b) == pytest.approx(100.0, rel=1e-12)
    assert break_even(b, a) == pytest.approx(100.0, rel=1e-12)
    # the costs really are equal there
    assert deployment_cost(a, 1, 100) == pytest.approx(deployment_cost(b, 1, 100), rel=1e-12)
    assert deployment_cost(a, 1, 100) == pytest.approx(31.0, rel=1e-12)
    # below q*: cheaper unlearning wins; above: cheaper queries wins; at q*: tie
    assert cheaper_at(a, b, 99) is a
    assert cheaper_at(a, b, 0) is a
    assert cheaper_at(a, b, 101) is b
    assert cheaper_at(b, a, 1e6) is b
    assert cheaper_at(a, b, 100) is None


def test_break_even_doc_example():
    assert ERASE.query_seconds == pytest.approx(0.41, rel=1e-12)
    assert SISA.query_seconds == pytest.approx(0.36, rel=1e-12)
    assert SISA.prompt_tokens == 400.0
    q = break_even(ERASE, SISA)
    assert q == pytest.approx(239.9, rel=1e-9)
    assert cheaper_at(ERASE, SISA, 239) is ERASE
    assert cheaper_at(ERASE, SISA, 241) is SISA
    assert deployment_cost(ERASE, 1, 10) == pytest.approx(4.105, rel=1e-12)
    assert deployment_cost(SISA, 1, 10) == pytest.approx(15.6, rel=1e-12)
    # cached prefix: U = 0.005 + 0.25 × (0.05 + 0.0004 × 800), I = 0.05 + 0.0004 × 100
    prefix = PRICE.seconds(800)
    assert prefix == pytest.approx(0.37, rel=1e-12)
    u = cached_prefix_unlearn_seconds(0.005, 0.25, prefix)
    assert u == pytest.approx(0.0975, rel=1e-12)
    cached = MethodCost.from_tokens("erase-cached", unlearn_seconds=u, price=PRICE, tokens_per_call=100)
    assert cached.query_seconds == pytest.approx(0.09, rel=1e-12)
    assert break_even(cached, SISA) is None
    for r in (0, 1, 240, 1e6):
        assert cheaper_at(cached, SISA, r) is cached


def test_break_even_none_when_one_dominates():
    good = MethodCost("good", unlearn_seconds=1.0, query_seconds=0.1)
    bad = MethodCost("bad", unlearn_seconds=2.0, query_seconds=0.2)
    assert break_even(good, bad) is None
    assert break_even(bad, good) is None
    for r in (0, 1, 1e3, 1e9):
        assert cheaper_at(good, bad, r) is good
    # same query cost, different unlearning: the cheaper unlearner wins everywhere
    same_i = MethodCost("same-i", unlearn_seconds=5.0, query_seconds=0.1)
    assert break_even(good, same_i) is None
    assert cheaper_at(same_i, good, 1e9) is good


def test_break_even_equal_costs():
    a = MethodCost("a", unlearn_seconds=3.0, query_seconds=0.2)
    twin = MethodCost("twin", unlearn_seconds=3.0, query_seconds=0.2)
    assert break_even(a, twin) is None
    for r in (0, 1, 1e6):
        assert cheaper_at(a, twin, r) is None
    # equal U, different I: tie only at zero queries, the cheaper-query method wins after that
    fast_q = MethodCost("fast-q", unlearn_seconds=3.0, query_seconds=0.1)
    assert break_even(a, fast_q) is None
    assert cheaper_at(a, fast_q, 0) is None
    assert cheaper_at(a, fast_q, 1) is fast_q
    # zero-cost unlearning (random / kNN) against a slow unlearner with cheaper queries
    knn = MethodCost("knn", unlearn_seconds=0.0, query_seconds=0.5)
    assert break_even(knn, fast_q) == pytest.approx(3.0 / 0.4, rel=1e-12)


def test_cheaper_at_rejects_bad_ratio():
    with pytest.raises(ERASEError):
        cheaper_at(ERASE, SISA, -1)
    with pytest.raises(ERASEError):
        cheaper_at(ERASE, SISA, math.nan)
    with pytest.raises(ERASEError):
        break_even(ERASE, "sisa")


# --------------------------------------------------------------------------- fit_inference_cost

def test_fit_recovers_exact_linear_data():
    tokens = [120, 480, 900, 1500]
    seconds = [0.05 + 0.0004 * t for t in tokens]
    fit = fit_inference_cost(tokens, seconds)
    assert isinstance(fit, InferenceCost)
    assert fit.a == pytest.approx(0.05, rel=1e-9)
    assert fit.b == pytest.approx(0.0004, rel=1e-9)
    assert fit.seconds(900) == pytest.approx(0.41, rel=1e-9)
    assert fit(100, calls=4) == pytest.approx(0.36, rel=1e-9)


def test_fit_recovers_random_linear_data():
    rng = np.random.default_rng(0)
    tokens = rng.integers(10, 4000, size=50)
    seconds = 0.3 + 2.5e-5 * tokens
    fit = fit_inference_cost(tokens, seconds)
    assert fit.a == pytest.approx(0.3, rel=1e-9)
    assert fit.b == pytest.approx(2.5e-5, rel=1e-9)


def test_fit_least_squares_on_noisy_data():
    # (0,1), (1,2), (2,2), (3,4): slope 0.9, intercept 0.9 (hand-computed normal equations)
    fit = fit_inference_cost([0, 1, 2, 3], [1, 2, 2, 4])
    assert fit.b == pytest.approx(0.9, rel=1e-12)
    assert fit.a == pytest.approx(0.9, rel=1e-12)


def test_fit_constant_tokens_gives_mean():
    fit = fit_inference_cost([500, 500, 500], [0.2, 0.4, 0.3])
    assert fit.b == 0.0
    assert fit.a == pytest.approx(0.3, rel=1e-12)


def test_fit_clamps_negative_coefficients():
    # OLS slope -0.1 (seconds fall with tokens): constrained fit is b = 0, a = mean
    fit = fit_inference_cost([0, 10, 20], [2.0, 1.0, 0.0])
    assert fit.b == 0.0
    assert fit.a == pytest.approx(1.0, rel=1e-12)
    # OLS intercept negative: (10,0), (20,1), (30,2) → s = -1 + 0.1 t; constrained a = 0,
    # b = Σts / Σt² = (0 + 20 + 60) / (100 + 400 + 900) = 80 / 1400
    fit = fit_inference_cost([10, 20, 30], [0.0, 1.0, 2.0])
    assert fit.a == 0.0
    assert fit.b == pytest.approx(80 / 1400, rel=1e-12)


@pytest.mark.parametrize(
    "tokens, seconds, match",
    [
        ([1, 2, 3], [1, 2], "differ in length"),
        ([1], [1], "at least 2"),
        ([], [], "at least 2"),
        ([1, math.nan], [1, 2], "NaN or infinite"),
        ([1, 2], [1, math.inf], "NaN or infinite"),
        ([1, -2], [1, 2], "non-negative"),
        ([1, 2], [-1, 2], "non-negative"),
        ([[1, 2]], [[1, 2]], "1-dimensional"),
        (["a", "b"], [1, 2], "numbers"),
    ],
)
def test_fit_rejects_bad_input(tokens, seconds, match):
    with pytest.raises(ERASEError, match=match):
        fit_inference_cost(tokens, seconds)


def test_inference_cost_validation():
    with pytest.raises(ERASEError):
        InferenceCost(a=-0.1, b=0.0)
    with pytest.raises(ERASEError):
        InferenceCost(a=0.0, b=math.nan)
    with pytest.raises(ERASEError):
        PRICE.seconds(-5)


# --------------------------------------------------------------------------- MethodCost validation

@pytest.mark.parametrize(
    "kwargs",
    [
        dict(name="", unlearn_seconds=1.0, query_seconds=1.0),
        dict(name="   ", unlearn_seconds=1.0, query_seconds=1.0),
        dict(name=None, unlearn_seconds=1.0, query_seconds=1.0),
        dict(name="m", unlearn_seconds=-1.0, query_seconds=1.0),
        dict(name="m", unlearn_seconds=1.0, query_seconds=-0.5),
        dict(name="m", unlearn_seconds=math.nan, query_seconds=1.0),
        dict(name="m", unlearn_seconds=1.0, query_seconds=math.inf),
        dict(name="m", unlearn_seconds="1", query_seconds=1.0),
        dict(name="m", unlearn_seconds=1.0, query_seconds=1.0, prompt_tokens=-3),
        dict(name="m", unlearn_seconds=1.0, query_seconds=1.0, prompt_tokens=math.nan),
        dict(name="m", unlearn_seconds=1.0, query_seconds=1.0, notes=3),
    ],
)
def test_method_cost_validation(kwargs):
    with pytest.raises(ERASEError):
        MethodCost(**kwargs)


def test_method_cost_normalises_and_is_frozen():
    m = MethodCost("m", unlearn_seconds=np.float32(0.5), query_seconds=2, prompt_tokens=np.int64(7), notes="x")
    assert type(m.unlearn_seconds) is float and m.unlearn_seconds == 0.5
    assert type(m.query_seconds) is float and m.query_seconds == 2.0
    assert m.prompt_tokens == 7.0
    assert m.to_dict() == {"name": "m", "unlearn_seconds": 0.5, "query_seconds": 2.0, "prompt_tokens": 7.0, "notes": "x"}
    with pytest.raises(Exception):
        m.unlearn_seconds = 1.0  # type: ignore[misc]


def test_from_tokens_and_cached_prefix_validation():
    with pytest.raises(ERASEError, match="InferenceCost"):
        MethodCost.from_tokens("m", unlearn_seconds=1, price=(0.05, 0.0004), tokens_per_call=10)
    with pytest.raises(ERASEError):
        MethodCost.from_tokens("m", unlearn_seconds=1, price=PRICE, tokens_per_call=-1)
    with pytest.raises(ERASEError):
        cached_prefix_unlearn_seconds(0.001, 1.5, 0.3)
    with pytest.raises(ERASEError):
        cached_prefix_unlearn_seconds(-0.001, 0.5, 0.3)
    assert cached_prefix_unlearn_seconds(0.001, 0.0, 0.3) == 0.001
    assert cached_prefix_unlearn_seconds(0.001, 1.0, 0.3) == pytest.approx(0.301, rel=1e-12)


# --------------------------------------------------------------------------- tables

def test_cost_table_content():
    cheap_u = MethodCost("cheap-u", unlearn_seconds=1.0, query_seconds=0.3)
    cheap_q = MethodCost("cheap-q", unlearn_seconds=21.0, query_seconds=0.1)
    rows = cost_table([cheap_u, cheap_q], queries_per_deletion=(1, 100, 1000))
    assert [r["queries_per_deletion"] for r in rows] == [1, 100, 1000]
    assert list(rows[0]) == ["queries_per_deletion", "cheap-u", "cheap-q", "cheapest"]
    assert rows[0]["cheap-u"] == pytest.approx(1.3, rel=1e-12)
    assert rows[0]["cheap-q"] == pytest.approx(21.1, rel=1e-12)
    assert rows[0]["cheapest"] == "cheap-u"
    assert rows[1]["cheap-u"] == pytest.approx(31.0, rel=1e-12)
    assert rows[1]["cheapest"] == "cheap-u = cheap-q"  # the break-even ratio: a tie
    assert rows[2]["cheap-u"] == pytest.approx(301.0, rel=1e-12)
    assert rows[2]["cheap-q"] == pytest.approx(121.0, rel=1e-12)
    assert rows[2]["cheapest"] == "cheap-q"


def test_cost_table_defaults_and_validation():
    rows = cost_table([ERASE, SISA])
    assert [r["queries_per_deletion"] for r in rows] == list(DEFAULT_QUERIES_PER_DELETION)
    assert [r["cheapest"] for r in rows] == ["erase", "erase", "erase", "sisa-4", "sisa-4", "sisa-4"]
    # a numpy ratio that is integral prints as an int
    assert cost_table([ERASE], np.array([10.0, 2.5]))[0]["queries_per_deletion"] == 10
    assert cost_table([ERASE], np.array([10.0, 2.5]))[1]["queries_per_deletion"] == 2.5
    with pytest.raises(ERASEError, match="twice"):
        cost_table([ERASE, ERASE])
    with pytest.raises(ERASEError, match="no methods"):
        cost_table([])
    with pytest.raises(ERASEError, match="column"):
        cost_table([MethodCost("cheapest", 1, 1)])
    with pytest.raises(ERASEError):
        cost_table([ERASE], queries_per_deletion=(1, -10))
    with pytest.raises(ERASEError):
        cost_table([ERASE], queries_per_deletion=())


def test_markdown_table_content():
    rows = cost_table([ERASE, SISA], queries_per_deletion=(10, 1000, 100_000))
    md = markdown_table(rows)
    lines = md.splitlines()
    assert md.endswith("\n")
    assert lines[0] == "| queries_per_deletion | erase | sisa-4 | cheapest |"
    assert lines[1] == "|---:|---:|---:|---|"
    assert lines[2] == "| 10 | 4.105 | 15.6 | erase |"
    assert lines[3] == "| 1,000 | 410 | 372 | sisa-4 |"
    assert lines[4] == "| 100,000 | 41,000 | 36,012 | sisa-4 |"
    assert len(lines) == 5


def test_markdown_table_generic_rows():
    md = markdown_table([{"x": "a|b", "y": None, "z": True}, {"x": "c", "w": 0.000123456}])
    assert md.splitlines() == [
        "| x | y | z | w |",
        "|---|---:|---|---:|",
        "| a\\|b |  | True |  |",
        "| c |  |  | 0.0001235 |",
    ]
    with pytest.raises(ERASEError):
        markdown_table([])
    with pytest.raises(ERASEError):
        markdown_table([("a", 1)])


# --------------------------------------------------------------------------- plot

def test_plot_cost_writes_png(tmp_path):
    knn = MethodCost("knn", unlearn_seconds=0.0, query_seconds=0.5)  # U = 0: U + r·I still > 0 for r ≥ 1
    out = plot_cost([ERASE, SISA, knn], tmp_path / "sub" / "cost.png")
    assert out == tmp_path / "sub" / "cost.png"
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 5_000


def test_plot_cost_custom_ratios_and_validation(tmp_path):
    out = plot_cost([ERASE], str(tmp_path / "one.png"), ratios=[1, 10, 100])
    assert out.stat().st_size > 0
    with pytest.raises(ERASEError, match="positive"):
        plot_cost([ERASE], tmp_path / "bad.png", ratios=[0, 1, 10])
    with pytest.raises(ERASEError):
        plot_cost([], tmp_path / "none.png")
    assert not (tmp_path / "bad.png").exists()


@pytest.mark.processes
def test_no_matplotlib_at_import():
    import subprocess
    import sys

    code = "import sys, erase_core.evaluation.cost; print('matplotlib' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "False"
