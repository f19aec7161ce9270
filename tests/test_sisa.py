"""SISA baseline: validated config, id-hash sharding, exact unlearning, aggregated prediction.

The model tests fine-tune the real SmolLM2-135M on a handful of BIG-bench examples (kept
tiny so the file runs in a few minutes on CPU)."""

from __future__ import annotations

import dataclasses
import importlib.util
import math
from pathlib import Path

import pytest

from erase_core._validation import DuplicateIdError, ERASEError, UnknownIdError
from erase_core.evaluation.prompts import TaskFormat
from erase_core.evaluation.sisa import SISAConfig, SISAEnsemble, SISAUnlearnReport, assign

REPO_ROOT = Path(__file__).resolve().parents[1]
BIGBENCH = (REPO_ROOT / ".." / "shared" / "data" / "bigbench").resolve()
TINY = dict(n_shards=2, n_slices=2, epochs=1, learning_rate=1e-4, batch_size=8, max_length=40, min_shard_size=1)


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def lm(smollm2):
    return smollm2  # tests/conftest.py: loaded once per test process (skips without the hf extra)


def _task(name: str):
    from erase_core.evaluation.bigbench import load_task

    if not (BIGBENCH / name / "task.json").is_file():
        pytest.skip(f"BIG-bench task {name} not found under {BIGBENCH}")
    return load_task(name, BIGBENCH)


def _with_ids(examples, prefix):
    for ex in examples:
        ex["id"] = f"{prefix}-{ex['idx']}"
    return examples


@pytest.fixture(scope="module")
def intent():
    task = _task("intent_recognition")
    pool, test = task.split(8, 2, seed=0)
    return TaskFormat.of(task), _with_ids(pool, "ir"), test


@pytest.fixture(scope="module")
def fitted(lm, intent):
    """2 shards x 2 slices on 8 intent_recognition examples (tests may forget from it)."""
    fmt, pool, _ = intent
    torch = lm._torch
    caller = {n: p.detach().clone() for n, p in list(lm.model.named_parameters())[:3]}
    ens = SISAEnsemble(SISAConfig(**TINY), fmt, lm=lm, show_progress=False).fit(pool)
    assert all(torch.equal(p, caller[n]) for n, p in list(lm.model.named_parameters())[:3]), "caller's model changed"
    yield ens
    ens.close()


def _metadata_ids(path: Path) -> list[str]:
    import json

    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return json.loads(fh.metadata()["ids"])


# ----------------------------------------------------------------------------- pure


def test_config_defaults_and_validation():
    cfg = SISAConfig()
    assert cfg.min_shard_size == 20 and cfg.n_shards >= 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.n_shards = 3
    bad = [
        dict(n_shards=0), dict(n_slices=0), dict(epochs=0), dict(batch_size=0), dict(max_length=7),
        dict(learning_rate=0), dict(learning_rate=-1e-4), dict(learning_rate=math.nan), dict(learning_rate="1e-4"),
        dict(seed=1.5), dict(seed=True), dict(seed="0"), dict(min_shard_size=-1), dict(n_shards=2.0),
        dict(weight_decay=-0.1), dict(max_new_tokens=0),
    ]
    for kwargs in bad:
        with pytest.raises(ERASEError):
            SISAConfig(**kwargs)
    SISAConfig(max_length=8, seed=-3, min_shard_size=0)  # the limits themselves are fine


def test_assignment_is_a_function_of_the_id_alone():
    ids = [f"ex-{i}" for i in range(400)]
    before = {i: assign(i, 4, 3, seed=7) for i in ids}
    kept = ids[::3]
    assert {i: assign(i, 4, 3, seed=7) for i in kept} == {i: before[i] for i in kept}  # removals move nothing
    assert all(0 <= s < 4 and 0 <= j < 3 for s, j in before.values())
    shards = [sum(1 for s, _ in before.values() if s == k) for k in range(4)]
    slices = [sum(1 for _, j in before.values() if j == k) for k in range(3)]
    assert min(shards) > 60 and min(slices) > 90  # roughly balanced
    assert {i: assign(i, 4, 3, seed=8) for i in ids} != before  # keyed by the seed
    with pytest.raises(ERASEError):
        assign(3, 4, 3, seed=7)


def test_fit_validates_before_loading_a_model():
    fmt = TaskFormat()
    examples = [{"id": f"e{i}", "input": f"question {i}", "target": "yes"} for i in range(8)]
    ens = SISAEnsemble(SISAConfig(n_shards=2), fmt, show_progress=False)  # default min_shard_size=20
    with pytest.raises(ERASEError, match="min_shard_size=20"):
        ens.fit(examples)
    small = SISAEnsemble(SISAConfig(n_shards=2, min_shard_size=1), fmt, show_progress=False)
    with pytest.raises(DuplicateIdError):
        small.fit(examples + [dict(examples[0])])
    with pytest.raises(ERASEError, match="'id'"):
        small.fit([{"input": "q", "target": "a"}])
    with pytest.raises(ERASEError, match="input"):
        small.fit([{"id": "x", "target": "a"}])
    with pytest.raises(ERASEError, match="not fitted"):
        small.predict(examples[0])
    with pytest.raises(ERASEError, match="SISAConfig"):
        SISAEnsemble({"n_shards": 2}, fmt)
    assert small._live_view is None  # no model was loaded for any of this
    small.close()
    ens.close()


# ----------------------------------------------------------------------------- model


def test_training_changes_the_weights_and_lowers_the_training_loss(fitted, intent, lm):
    torch = lm._torch
    _, pool, _ = intent
    by_id = {ex["id"]: ex for ex in pool}
    for shard in range(2):
        own = [by_id[i] for i in fitted.shard_ids_[shard]]
        base_loss, tuned_loss = fitted.answer_loss(own), fitted.answer_loss(own, shard=shard)
        assert tuned_loss < 0.8 * base_loss, (shard, base_loss, tuned_loss)
    weights = fitted.shard_weights(0)
    base = dict(lm.model.named_parameters())
    assert set(weights) == set(base)
    changed = sum(not torch.equal(weights[n], base[n].detach().cpu()) for n in weights)
    assert changed > 0.9 * len(weights)
    assert fitted.fit_seconds_ > 0 and len(fitted.shard_seconds_) == 2
    assert set(fitted.checkpoints_) == {(s, j) for s in range(2) for j in range(2)}


def test_unknown_id_raises_and_changes_nothing(fitted):
    paths, ids = fitted.checkpoints_, fitted.ids_
    mtimes = {k: p.stat().st_mtime_ns for k, p in paths.items()}
    with pytest.raises(UnknownIdError, match="no-such-id"):
        fitted.forget([ids[0], "no-such-id"])
    with pytest.raises(DuplicateIdError):
        fitted.forget([ids[0], ids[0]])
    assert fitted.checkpoints_ == paths and fitted.ids_ == ids
    assert {k: p.stat().st_mtime_ns for k, p in paths.items()} == mtimes


def test_evaluate_multiple_choice(fitted, intent):
    _, _, test = intent
    result = fitted.evaluate(test)
    assert 0.0 <= result["accuracy"] <= 1.0 and len(result["correct"]) == len(test)
    assert result["accuracy"] == pytest.approx(sum(result["correct"]) / len(test))
    assert all(p in ex["choices"] for p, ex in zip(result["predictions"], test))
    assert result["n_shards"] == 2 and result["prompt_tokens"] > 10 and result["seconds"] > 0
    unlabeled = {"input": test[0]["input"], "choices": test[0]["choices"]}  # predict needs no answer
    assert fitted.predict(unlabeled) == result["predictions"][0]


def test_forget_is_exact(fitted, intent, lm):
    """After forget, every checkpoint equals (bit for bit) a fresh fit without the example, and
    no checkpoint that saw the example is left on disk."""
    torch = lm._torch
    fmt, pool, _ = intent
    cfg = fitted.config
    victim = next((i for i in fitted.ids_ if fitted.assignment(i)[1] == 0), fitted.ids_[0])
    shard, first = fitted.assignment(victim)
    before = fitted.checkpoints_
    expected_examples = sum(
        sum(1 for i in fitted.shard_ids_[shard] if i != victim and fitted.assignment(i)[1] <= j)
        for j in range(first, cfg.n_slices)
    )

    report = fitted.forget([victim])

    assert isinstance(report, SISAUnlearnReport) and report.ids == (victim,)
    assert report.shards_retrained == (shard,) and report.slices_retrained == cfg.n_slices - first
    assert report.examples_retrained == expected_examples and report.seconds > 0
    after = fitted.checkpoints_
    for key, path in before.items():
        saw_it = key[0] == shard and key[1] >= first
        assert path.exists() != saw_it and (after[key] == path) != saw_it, key
    files = sorted(fitted.checkpoint_dir.glob("*.safetensors"))
    assert sorted(after.values()) == files
    assert all(victim not in _metadata_ids(f) for f in files)
    assert victim not in fitted.ids_
    with pytest.raises(UnknownIdError):
        fitted.forget(victim)

    remaining = [ex for ex in pool if ex["id"] != victim]
    with SISAEnsemble(cfg, fmt, lm=lm, show_progress=False).fit(remaining) as fresh:
        for key in after:
            a, b = fitted.shard_weights(*key), fresh.shard_weights(*key)
            assert a.keys() == b.keys()
            assert all(torch.equal(a[n], b[n]) for n in a), key
        fresh_dir = fresh.checkpoint_dir
    assert not fresh_dir.exists()  # the temporary checkpoint directory went with close()


def test_generative_task_with_one_shard(lm, tmp_path):
    task = _task("object_counting")
    pool, test = task.split(4, 2, seed=1)
    cfg = SISAConfig(n_shards=1, n_slices=1, epochs=1, learning_rate=1e-4, max_length=48, min_shard_size=1,
                     max_new_tokens=6)
    ckpt = tmp_path / "ckpt"
    with SISAEnsemble(cfg, TaskFormat.of(task), lm=lm, checkpoint_dir=ckpt, show_progress=False) as ens:
        ens.fit(_with_ids(pool, "oc"))
        first = list(ckpt.glob("*.safetensors"))
        ens.fit(pool)  # a refit on the same data replaces its checkpoint
        assert len(first) == 1 and list(ckpt.glob("*.safetensors")) == list(ens.checkpoints_.values()) != first
        result = ens.evaluate(test)
        assert 0.0 <= result["accuracy"] <= 1.0 and len(result["correct"]) == 2 and result["n_shards"] == 1
        assert all(isinstance(p, str) and "\n" not in p and p == p.strip() for p in result["predictions"])
    assert ckpt.is_dir() and not list(ckpt.glob("*.safetensors"))  # a chosen directory is kept, emptied
    with pytest.raises(ERASEError, match="closed"):
        ens.fit(pool)
