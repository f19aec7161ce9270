"""Exact (ERASE) versus approximate (gradient-ascent) unlearning: the quality metrics, input
validation, ERASE's measured zero distance, gradient ascent's direction and determinism, and
``erase unlearn --quick`` end to end (real SmolLM2, real BIG-bench tasks, a few minutes on CPU)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from erase_core._validation import DuplicateIdError, ERASEError, UnknownIdError
from erase_core.evaluation.bigbench import TaskNotFoundError
from erase_core.evaluation.quality import fade_distance, loglik_distance, rank_distance, rank_percentiles
from erase_core.evaluation.unlearning import (
    SECTION_BEGIN, SECTION_END, Condition, UnlearnConfig, UnlearningExperiment, _check_condition, replace_section,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
BIGBENCH = (REPO_ROOT / ".." / "shared" / "data" / "bigbench").resolve()


def _needs_data(*names):
    for name in names:
        if not (BIGBENCH / name / "task.json").is_file():
            pytest.skip(f"BIG-bench task {name} not found under {BIGBENCH}")


@pytest.fixture(scope="module")
def lm(smollm2):
    return smollm2  # tests/conftest.py: loaded once per test process (skips without the hf extra)


def fake_embed(texts):
    """Deterministic unit vectors from a hash of each text (no embedding model needed)."""
    out = []
    for t in texts:
        seed = int.from_bytes(hashlib.blake2b(t.encode(), digest_size=8).digest(), "big")
        v = np.random.default_rng(seed).normal(size=16)
        out.append(v / np.linalg.norm(v))
    return np.asarray(out, dtype=np.float32)


# ----------------------------------------------------------------------------- metrics (pure)


def test_metrics_are_zero_for_identical_models_and_positive_for_different_ones():
    ll = [-3.0, -7.5, -1.25]
    assert loglik_distance(ll, ll) == 0.0
    assert loglik_distance(ll, [-4.0, -7.5, -2.25]) == pytest.approx(2 / 3)
    assert fade_distance(ll, ll, ll, ll) == 0.0
    # unlearned samples: u finds them likelier than r by 1; retrained samples: r likelier by 3
    assert fade_distance([-1, -2], [-2, -3], [-4, -4], [-7, -7]) == pytest.approx((1 + 3) / 2)
    assert fade_distance([-1], [-2], [-4], [-7]) == fade_distance([-4], [-7], [-1], [-2])  # symmetric
    pct = rank_percentiles([-1.0, -5.0], [-2.0, -3.0, -4.0, -6.0])
    assert rank_distance(pct, pct) == 0.0
    assert pct.tolist() == [1.0, 0.25]
    assert rank_distance([1.0, 0.25], [0.5, 0.5]) == pytest.approx(0.375)


def test_rank_percentiles_use_mid_ranks_for_ties():
    assert rank_percentiles([2.0], [1.0, 2.0, 3.0, 2.0]).tolist() == [0.5]
    assert rank_percentiles([0.0, 9.0], [1.0]).tolist() == [0.0, 1.0]


def test_metric_inputs_are_validated():
    with pytest.raises(ERASEError, match="same length"):
        loglik_distance([1.0, 2.0], [1.0])
    with pytest.raises(ERASEError, match="empty"):
        loglik_distance([], [])
    with pytest.raises(ERASEError, match="finite"):
        rank_percentiles([np.nan], [1.0])
    with pytest.raises(ERASEError, match="empty"):
        rank_percentiles([1.0], [])
    with pytest.raises(ERASEError, match="one-dimensional"):
        fade_distance([[1.0]], [[1.0]], [1.0], [1.0])


# ----------------------------------------------------------------------------- validation (no model)


def test_config_validation():
    UnlearnConfig().validate()
    for kwargs, match in [
        (dict(forget=0), "forget set must not be empty"),
        (dict(pool=4, forget=4), "smaller than pool"),
        (dict(pool=5, forget=2, k=4), "k=4"),
        (dict(steps=[0, -1]), "steps"),
        (dict(steps=[]), "steps"),
        (dict(ood_task="intent_recognition"), "ood_task"),
        (dict(n_test=0), "n_test"),
        (dict(learning_rate=0.0), "learning_rate"),
        (dict(max_length=4), "max_length"),
    ]:
        with pytest.raises(ERASEError, match=match):
            UnlearnConfig(**kwargs).validate()
    cfg = UnlearnConfig(steps=[4, 1, 1]).validate()
    assert cfg.steps == [0, 1, 4]  # sorted, unique, 0 (the fine-tuned model) always measured
    assert UnlearnConfig().key() == UnlearnConfig(data_dir="/elsewhere").key() != UnlearnConfig(seed=1).key()


def test_bad_forget_sets_raise_clear_errors():
    pool = [{"id": f"e{i}", "input": f"q{i}", "target": "a"} for i in range(4)]
    ref = [{"id": "r0", "input": "r", "target": "a"}]
    with pytest.raises(UnknownIdError, match="not in the training pool"):
        _check_condition(Condition("in", pool, ["e1", "nope"], ref))
    with pytest.raises(ERASEError, match="forget set is empty"):
        _check_condition(Condition("in", pool, [], ref))
    with pytest.raises(DuplicateIdError):
        _check_condition(Condition("in", pool, ["e1", "e1"], ref))
    with pytest.raises(ERASEError, match="too few"):
        _check_condition(Condition("in", pool, ["e0", "e1", "e2", "e3"], ref))
    with pytest.raises(ERASEError, match="too few"):
        _check_condition(Condition("in", pool, ["e0", "e1"], ref), k=3)
    with pytest.raises(ERASEError, match="not one string"):
        _check_condition(Condition("in", pool, "e1", ref))
    with pytest.raises(ERASEError, match="reference"):
        _check_condition(Condition("in", pool, ["e1"], []))
    forget, rest = _check_condition(Condition("in", pool, ["e2"], ref))
    assert [ex["id"] for ex in forget] == ["e2"] and [ex["id"] for ex in rest] == ["e0", "e1", "e3"]


def test_unknown_task_raises_before_any_model_is_loaded(tmp_path, capsys):
    _needs_data("intent_recognition")
    exp = UnlearningExperiment(UnlearnConfig(task="no_such_task", data_dir=str(BIGBENCH)), cache_dir=tmp_path)
    with pytest.raises(TaskNotFoundError, match="no_such_task"):
        exp.load()
    assert exp._lm is None
    from erase_core import cli

    argv = ["unlearn", "--task", "no_such_task", "--data-dir", str(BIGBENCH), "--cache-dir", str(tmp_path), "--out", str(tmp_path)]
    assert cli.main(argv) == 2
    assert "no_such_task" in capsys.readouterr().err
    assert cli.main(["unlearn", "--forget", "0", "--out", str(tmp_path)]) == 2
    assert "forget set must not be empty" in capsys.readouterr().err


def test_replace_section_keeps_the_other_sections(tmp_path):
    md = tmp_path / "results.md"
    md.write_text("# Results\n\n## Accuracy\n\nnumbers\n")
    replace_section(md, f"{SECTION_BEGIN}\n## Unlearning\n\nfirst\n{SECTION_END}\n")
    replace_section(md, f"{SECTION_BEGIN}\n## Unlearning\n\nsecond\n{SECTION_END}\n")
    text = md.read_text()
    assert text.startswith("# Results\n\n## Accuracy\n\nnumbers\n")
    assert text.count(SECTION_BEGIN) == 1 and "second" in text and "first" not in text


# ----------------------------------------------------------------------------- with the model


def _small_task(name, n_pool, n_ref, n_test):
    from erase_core.evaluation.bigbench import load_task
    from erase_core.evaluation.prompts import TaskFormat

    task = load_task(name, BIGBENCH)
    head, test = task.split(n_pool + n_ref, n_test, seed=0)
    for ex in head:
        ex["id"], ex["task"] = f"{name}-{ex['idx']}", name
    return TaskFormat.of(task), head[:n_pool], head[n_pool:], test


def test_erase_distance_is_exactly_zero_after_a_real_forget(lm):
    """Forget ERASE's selected shots: the prompt changes, and the distances to a fresh build,
    computed with the models, are exactly 0 after forget() and positive before it."""
    _needs_data("intent_recognition")
    from erase_core.evaluation.methods import make_method
    from erase_core.evaluation.unlearning import compare_erase

    fmt, pool, ref, test = _small_task("intent_recognition", 8, 3, 1)
    cfg = UnlearnConfig(pool=8, forget=2, k=2, n_test=1, n_reference=3, sample_tokens=3).validate()
    shots = make_method("erase", 2, 0).fit([ex["id"] for ex in pool], fake_embed([ex["input"] for ex in pool])).shots()
    cond = Condition("in-distribution", pool, shots, ref)
    formats = {"intent_recognition": fmt}
    out = compare_erase(cond, test, formats, "intent_recognition", cfg, lm=lm, embed=fake_embed)
    assert out["forgotten_selected_before"] == 2 and out["same_prompt"]
    assert not set(shots) & set(out["selected_after"])
    after, before = out["after"], out["before"]
    assert after["loglik_distance"] == after["rank_distance"] == after["fade_distance"] == 0.0
    assert after["same_samples"] and after["accuracy"] == out["fresh"]["accuracy"]
    assert before["loglik_distance"] > 0 and before["fade_distance"] > 0  # the metric does see a change


def test_gradient_ascent_lowers_the_forget_likelihood_deterministically(lm):
    """Fine-tune on 4 examples, ascend on 1 of them twice from the same weights: the same
    numbers both times, and the forgotten target's likelihood falls with every step."""
    _needs_data("intent_recognition")
    from erase_core.evaluation.sisa import SISAConfig
    from erase_core.evaluation.unlearning import System, _Trainer, score_rows

    fmt, pool, _, _ = _small_task("intent_recognition", 4, 0, 0)
    formats = {"intent_recognition": fmt}
    cfg = SISAConfig(n_shards=1, n_slices=1, epochs=1, learning_rate=1e-4, batch_size=4, max_length=32, min_shard_size=1)
    forget = pool[:1]
    with _Trainer(cfg, formats, "intent_recognition", lm=lm, show_progress=False) as trainer:
        trainer.fit(pool)
        weights = trainer.shard_weights(0)
        system = System(trainer.view(), formats, "intent_recognition", "", "", cfg.max_length)
        runs = []
        for _ in range(2):
            seen = []
            trainer.ascend(weights, forget, [0, 1, 2],
                           lambda step, secs, loss: seen.append((step, loss, score_rows(system.view, system.answer_rows(forget))[0][0])))
            runs.append(seen)
    assert [s for s, _, _ in runs[0]] == [0, 1, 2]
    assert [(s, ll) for s, _, ll in runs[0]] == [(s, ll) for s, _, ll in runs[1]]  # bit-identical
    lls = [ll for _, _, ll in runs[0]]
    assert lls[0] > lls[1] > lls[2], lls


def test_erase_unlearn_quick(tmp_path, lm, monkeypatch):
    """The command in --quick mode, made smaller still (pool 5, one test question, two reference
    examples), writes the table, plots, JSON and a results.md section into tmp (never docs/); a
    rerun comes from the cache and replaces the section in place. ERASE's exact zero on the real
    model is also checked in process by test_erase_distance_is_exactly_zero_after_a_real_forget."""
    _needs_data("intent_recognition", "sports_understanding")
    from erase_core import cli
    from erase_core.evaluation import unlearning

    monkeypatch.setattr(unlearning.UnlearningExperiment, "lm", property(lambda self: lm))
    docs_md = REPO_ROOT / "docs" / "results.md"
    docs_before = docs_md.read_text() if docs_md.exists() else None
    out, cache = tmp_path / "out", tmp_path / "cache"
    out.mkdir()
    md = out / "results.md"
    md.write_text("# Results\n\n## Accuracy\n\nkept\n")
    argv = ["unlearn", "--quick", "--pool", "5", "--n-test", "1", "--n-reference", "2",
            "--data-dir", str(BIGBENCH), "--cache-dir", str(cache), "--out", str(out)]
    assert cli.main(argv) == 0
    results = json.loads((out / "unlearning.json").read_text())
    assert set(results["conditions"]) == {"in-distribution", "out-of-distribution"}
    for name, entry in results["conditions"].items():
        ga = entry["gradient_ascent"]
        assert [r["step"] for r in ga["ascent"]] == [0, 2]
        assert ga["retrain_seconds"] > 0 and ga["ascent"][-1]["seconds"] > 0
        first, last = ga["ascent"][0], ga["ascent"][-1]
        assert last["forget_loglik"] < first["forget_loglik"], name  # ascent pushes the forget set down
        assert first["loglik_distance"] > 0  # the fine-tuned model differs from the retrained one
        assert all(0 <= r["accuracy"] <= 1 and 0 <= r["rank_distance"] <= 1 for r in ga["ascent"])
        for key in ("erase", "erase_selected"):
            if key in entry:
                e = entry[key]
                assert e["same_prompt"] and e["after"]["same_samples"]
                assert e["after"]["loglik_distance"] == e["after"]["rank_distance"] == e["after"]["fade_distance"] == 0.0
    assert results["conditions"]["in-distribution"]["erase_selected"]["forgotten_selected_before"] == 2
    for png in ("unlearning_quality", "unlearning_utility"):
        assert (out / "img" / f"{png}.png").stat().st_size > 1000
    text = md.read_text()
    assert text.startswith("# Results\n\n## Accuracy\n\nkept\n") and "## Exact versus approximate unlearning" in text
    assert "| in-distribution | gradient ascent | 2 |" in text and "(img/unlearning_quality.png)" in text

    def refuse(*args, **kwargs):
        raise AssertionError("a cached condition was recomputed")

    monkeypatch.setattr(unlearning, "compare_gradient_ascent", refuse)
    monkeypatch.setattr(unlearning, "compare_erase", refuse)
    assert cli.main(argv) == 0
    assert md.read_text().count(SECTION_BEGIN) == 1
    assert json.loads((out / "unlearning.json").read_text())["conditions"] == results["conditions"]
    assert (docs_md.read_text() if docs_md.exists() else None) == docs_before  # docs/ untouched
