"""Exact (ERASE) versus approximate (gradient-ascent) unlearning, measured side by side.

The common alternative to ERASE fine-tunes the LLM on the example pool and, on a deletion
request, unlearns the forget set approximately by gradient ascent (Baluta et al. 2024). This
module measures both against the gold standard, a model retrained without the forget set:

1. fine-tune SmolLM2 on the training pool (:class:`_Trainer`, the SISA fine-tuning code with
   one shard and one slice: answer-only loss, float32 CPU, seeded order);
2. retrain from the base weights without the forget set (same seed): the gold model;
3. gradient ascent on the forget set (negated loss, the same AdamW settings), measured after
   each of ``steps`` optimizer steps;
4. ERASE: build the prompt on the pool, ``forget()`` the forget set, compare with a fresh
   build on the remaining pool, measured exactly like the models (nothing assumed).

Two conditions: *in-distribution* (the forget set is drawn from the task's own pool) and
*out-of-distribution* (examples of another task mixed into the training pool, then
forgotten). Metrics (see ``docs/quality.md`` and :mod:`.quality`): utility (test accuracy),
log-likelihood distance, rank distance, FADE-style distance, wall time. Results are cached as
JSON; ``erase unlearn`` writes a markdown table, two plots and a section of docs/results.md.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import json
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .._validation import DuplicateIdError, ERASEError, UnknownIdError
from .bigbench import ENV_VAR, load_task
from .prompts import TaskFormat, answer_text, is_correct
from .lazy_models import LazyModels
from .quality import fade_distance, loglik_distance, rank_distance, rank_percentiles
from .bench import _Cache
from .bench import default_cache_dir as bench_cache_dir
from .report import _figure
from .sisa import SISAConfig, SISAEnsemble, _Encoded, _ModelView, _rng_seed, encode_answer, pad_batch, token_ids

__all__ = ["Condition", "System", "UnlearnConfig", "UnlearningExperiment", "compare_erase", "compare_gradient_ascent",
           "main", "write_unlearning_report"]

#: Conditions, in table order.
CONDITIONS = ("in-distribution", "out-of-distribution")
SECTION_BEGIN, SECTION_END = "<!-- erase unlearn: begin -->", "<!-- erase unlearn: end -->"
#: Token limit of ERASE prompts (k shots + question); the fine-tuned models use ``max_length``.
PROMPT_LIMIT = 2048


# ----------------------------------------------------------------------------- configuration


@dataclass
class UnlearnConfig:
    """What ``erase unlearn`` runs; the defaults are the small CPU experiment."""

    task: str = "intent_recognition"
    ood_task: str = "sports_understanding"
    pool: int = 40
    forget: int = 4
    n_test: int = 40
    n_reference: int = 16
    steps: list[int] = field(default_factory=lambda: [0, 1, 2, 4, 8, 16])
    epochs: int = 2
    learning_rate: float = 5e-5
    batch_size: int = 8
    max_length: int = 64
    k: int = 4
    samples: int = 1
    sample_tokens: int = 8
    seed: int = 0
    split_seed: int = 0
    data_dir: str | None = None
    device: str | None = None
    model: str | None = None
    gguf_file: str | None = None

    def validate(self) -> "UnlearnConfig":
        for name in ("pool", "n_test", "n_reference", "epochs", "batch_size", "k", "samples", "sample_tokens"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ERASEError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(self.forget, bool) or not isinstance(self.forget, int) or self.forget < 1:
            raise ERASEError(f"the forget set must not be empty: forget must be >= 1, got {self.forget!r}")
        if self.forget >= self.pool:
            raise ERASEError(f"forget={self.forget} must be smaller than pool={self.pool} (retraining needs data left)")
        if self.k > self.pool - self.forget:
            raise ERASEError(f"k={self.k} is larger than the pool left after forgetting ({self.pool - self.forget})")
        if not self.steps or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in self.steps):
            raise ERASEError(f"steps must be non-negative integers, got {self.steps!r}")
        self.steps = sorted(set(self.steps) | {0})
        if self.task == self.ood_task:
            raise ERASEError("ood_task must differ from task")
        SISAConfig(**self.sisa_kwargs())  # validates the training hyper-parameters
        return self

    def sisa_kwargs(self) -> dict:
        return dict(n_shards=1, n_slices=1, epochs=self.epochs, learning_rate=self.learning_rate,
                    batch_size=self.batch_size, max_length=self.max_length, seed=self.seed, min_shard_size=1,
                    max_new_tokens=self.sample_tokens)

    def key(self) -> str:
        """Names cached results: everything that changes a number (not where the data lie)."""
        from ..models.llm import SMOLLM2_GGUF

        d = {k: v for k, v in asdict(self).items() if k not in ("data_dir", "device")}
        d["model"] = self.gguf_file or (Path(self.model).name if self.model else SMOLLM2_GGUF)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class Condition:
    """One forget scenario: the training pool, the ids to forget, reference examples of the
    forget set's distribution (held out from training) for the rank metric."""

    name: str
    train: list[dict]
    forget_ids: list[str]
    reference: list[dict]


# ----------------------------------------------------------------------------- model side


class _Trainer(SISAEnsemble):
    """SISA fine-tuning with one shard and one slice: ``fit`` fine-tunes on every example and
    ``forget`` retrains from the base weights without the forgotten ones (the gold standard).
    Each example is encoded with its own task's format (``ex["task"]``), so out-of-distribution
    examples mixed into the pool keep their own prompts."""

    def __init__(self, config: SISAConfig, formats: Mapping[str, TaskFormat], main: str, **kwargs):
        super().__init__(config, formats[main], **kwargs)
        self.formats = dict(formats)

    def fmt_of(self, ex: Mapping[str, Any]) -> TaskFormat:
        task = ex.get("task")
        return self.formats.get(task, self.fmt) if isinstance(task, str) else self.fmt

    def _encode(self, ex: Mapping[str, Any]) -> _Encoded:
        fmt = self.fmt_of(ex)
        return encode_answer(self._view.tokenizer, fmt.question(ex), answer_text(ex), fmt.stop_strings()[0],
                      self.config.max_length)

    def view(self) -> _ModelView:
        self._prepare_model()
        return self._view

    def ascend(self, weights: Mapping, forget: Sequence[Mapping], checkpoints: Sequence[int],
               on_checkpoint: Callable[[int, float, float], None]) -> None:
        """Gradient ascent on ``forget`` from ``weights``: AdamW (the fine-tuning settings, fresh
        state) on the negated answer loss, one batch per step, passes in a seeded order.
        ``on_checkpoint(step, seconds, loss)`` runs (in eval mode) after each step count in
        ``checkpoints`` (0 = before any step); ``seconds`` counts optimizer steps only."""
        self._prepare_model()
        torch, model, cfg = self._view._torch, self._view.model, self.config
        by_id = {ex["id"]: ex for ex in forget}
        data = [self._encode(by_id[i]) for i in self._order(by_id)]  # id-hash order, as fit orders
        self._load_weights(weights)
        last = max(checkpoints)
        marks = set(checkpoints)
        if 0 in marks:
            on_checkpoint(0, 0.0, float("nan"))
        seconds, step, epoch = 0.0, 0, 0
        optimizer = self._fresh_optimizer()
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(_rng_seed(cfg.seed, "ascent") % 2**63)
                while step < last:
                    perm = np.random.default_rng(_rng_seed(cfg.seed, "ascent", epoch)).permutation(len(data))
                    for input_ids, mask, labels in self._batches([data[k] for k in perm]):
                        t0 = time.perf_counter()
                        model.train()
                        optimizer.zero_grad(set_to_none=False)
                        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
                        (-loss).backward()
                        optimizer.step()
                        model.eval()
                        seconds += time.perf_counter() - t0
                        step += 1
                        if step in marks:
                            on_checkpoint(step, seconds, float(loss.detach()))
                        if step >= last:
                            break
                    epoch += 1
        finally:
            model.eval()
            self._release_optimizer()


@contextlib.contextmanager
def _flush_denormal(torch):
    """Flush subnormal floats to zero while gradient ascent runs: it drives logits far
    negative, the softmaxes then fill with subnormals, and those slow CPU kernels down many
    times over. Values below ~1e-38 become 0 (deterministic either way); torch's default (off)
    is restored afterwards."""
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


@dataclass
class System:
    """A model and the prompt it is used with: a fine-tuned model (``prefix`` empty: the
    training objective; ``answer_prefix``: the task instruction, as SISA predicts) or the base
    model with an ERASE prompt (both prefixes the k-shot prefix)."""

    view: Any
    formats: Mapping[str, TaskFormat]
    main: str
    prefix: str = ""
    answer_prefix: str = ""
    limit: int = PROMPT_LIMIT

    def fmt_of(self, ex: Mapping[str, Any]) -> TaskFormat:
        task = ex.get("task")
        return self.formats.get(task, self.formats[self.main]) if isinstance(task, str) else self.formats[self.main]

    def prompt(self, ex: Mapping[str, Any]) -> str:
        return self.prefix + self.fmt_of(ex).question(ex)

    def answer_rows(self, examples: Sequence[Mapping]) -> list[_Encoded]:
        tok = self.view.tokenizer
        return [encode_answer(tok, self.prompt(ex), answer_text(ex), self.fmt_of(ex).stop_strings()[0], self.limit)
                for ex in examples]

    def sample_rows(self, examples: Sequence[Mapping], samples: Sequence[tuple[int, tuple[int, ...]]]) -> list[_Encoded]:
        """Rows scoring continuation ``ids`` after example ``r``'s prompt, for each ``(r, ids)``."""
        tok, out = self.view.tokenizer, []
        for r, cont in samples:
            prompt = token_ids(tok, self.prompt(examples[r]))[-max(1, self.limit - len(cont)):]
            out.append(_Encoded(tuple(prompt) + tuple(cont), tuple([-100] * len(prompt)) + tuple(cont)))
        return out


def score_rows(view, rows: Sequence[_Encoded], batch_size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the summed log-probability (float64) of its unmasked tokens, and their count.
    Right padding, so the scores do not depend on the other rows of a batch in exact arithmetic."""
    torch = view._torch
    pad = view.tokenizer.pad_token_id
    sums, counts = [], []
    with torch.inference_mode():
        for k in range(0, len(rows), batch_size):
            chunk = rows[k : k + batch_size]
            input_ids, mask, labels = pad_batch(torch, chunk, pad)
            # the output layer only where a scored token is predicted (the vocabulary is large)
            hidden = view.model.get_decoder()(input_ids=input_ids.to(view.device),
                                              attention_mask=mask.to(view.device)).last_hidden_state
            target = labels[:, 1:].to(view.device)
            rows_, cols = (target != -100).nonzero(as_tuple=True)
            logits = view.model.get_output_embeddings()(hidden[rows_, cols])
            logp = torch.log_softmax(logits.double(), dim=-1)
            picked = logp.gather(-1, target[rows_, cols].unsqueeze(-1)).squeeze(-1)
            per_row = torch.zeros(len(chunk), dtype=torch.float64, device=picked.device).index_add_(0, rows_, picked)
            sums += per_row.cpu().tolist()
            counts += torch.bincount(rows_, minlength=len(chunk)).cpu().tolist()
    return np.asarray(sums, dtype=np.float64), np.asarray(counts, dtype=np.float64)


def sample_answers(system: System, examples: Sequence[Mapping], *, n: int, max_new_tokens: int, seed: int):
    """``n`` continuations per example's prompt (greedy when ``n == 1``, else seeded sampling at
    temperature 1), each cut after the token that completes a stop string (or EOS).
    Returns ``[(example row, token ids), ...]``."""
    view, tok = system.view, system.view.tokenizer
    torch = view._torch
    out = []
    with torch.inference_mode():
        for r, ex in enumerate(examples):
            prompt = token_ids(tok, system.prompt(ex))[-system.limit:]
            input_ids = torch.tensor([prompt], device=view.device)
            stops = system.fmt_of(ex).stop_strings()
            for j in range(n):
                kwargs = dict(do_sample=False) if n == 1 else dict(do_sample=True, temperature=1.0, top_k=0, top_p=1.0)
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(_rng_seed(seed, "sample", r, j) % 2**63)
                    gen = view.model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                              max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id, **kwargs)
                cont = gen[0, len(prompt):].tolist()
                for m in range(1, len(cont) + 1):
                    if cont[m - 1] == tok.eos_token_id or any(s in tok.decode(cont[:m]) for s in stops):
                        cont = cont[:m]
                        break
                out.append((r, tuple(cont)))
    return out


def test_accuracy(system: System, test: Sequence[Mapping], max_new_tokens: int = 16) -> tuple[float, list[bool]]:
    """Accuracy of the system on the main task's test questions (options scored for multiple
    choice, greedy generation otherwise), BIG-bench graded."""
    from ..models.scoring import MultipleChoiceScorer

    scorer = MultipleChoiceScorer(system.view)  # fresh: the weights may have changed
    fmt = system.formats[system.main]
    correct = []
    for ex in test:
        question = fmt.question(ex)
        if "choices" in ex:
            scores = scorer.score(question, [" " + c for c in ex["choices"]], prefix=system.answer_prefix)
            answer = ex["choices"][int(np.argmax(scores))]
        else:
            answer = system.view.generate(system.answer_prefix + question, max_new_tokens=max_new_tokens,
                                          stop=fmt.stop_strings()).strip()
        correct.append(bool(is_correct(answer, ex)))
    return float(np.mean(correct)), correct


@dataclass
class Measurement:
    """What one system gives on the forget set, the reference set and the test set."""

    forget_ll: np.ndarray
    forget_tokens: np.ndarray
    reference_ll: np.ndarray
    reference_tokens: np.ndarray
    samples: list
    own_ll: np.ndarray
    accuracy: float

    @property
    def percentiles(self) -> np.ndarray:
        return rank_percentiles(self.forget_ll / self.forget_tokens, self.reference_ll / self.reference_tokens)


def measure(system: System, forget: Sequence[Mapping], reference: Sequence[Mapping], test: Sequence[Mapping],
            cfg: UnlearnConfig) -> Measurement:
    f_ll, f_tok = score_rows(system.view, system.answer_rows(forget), cfg.batch_size)
    r_ll, r_tok = score_rows(system.view, system.answer_rows(reference), cfg.batch_size)
    samples = sample_answers(system, forget, n=cfg.samples, max_new_tokens=cfg.sample_tokens, seed=cfg.seed)
    own, _ = score_rows(system.view, system.sample_rows(forget, samples), cfg.batch_size)
    acc, _ = test_accuracy(system, test, max_new_tokens=cfg.sample_tokens)
    return Measurement(f_ll, f_tok, r_ll, r_tok, samples, own, acc)


def distances(u: Measurement, r: Measurement, u_sys: System, r_sys: System, forget: Sequence[Mapping],
              batch_size: int = 8) -> dict:
    """Metrics (a)-(c) of the unlearned system ``u`` against the retrained ``r`` (docs/quality.md)."""
    r_on_u, _ = score_rows(r_sys.view, r_sys.sample_rows(forget, u.samples), batch_size)
    u_on_r, _ = score_rows(u_sys.view, u_sys.sample_rows(forget, r.samples), batch_size)
    pu, pr = u.percentiles, r.percentiles
    return {
        "loglik_distance": loglik_distance(u.forget_ll, r.forget_ll),
        "rank_distance": rank_distance(pu, pr),
        "fade_distance": fade_distance(u.own_ll, r_on_u, r.own_ll, u_on_r),
        "forget_loglik": float(np.mean(u.forget_ll)),
        "forget_percentile": float(np.mean(pu)),
        "accuracy": u.accuracy,
        "same_samples": u.samples == r.samples,
    }


def _summary(m: Measurement) -> dict:
    return {"accuracy": m.accuracy, "forget_loglik": float(np.mean(m.forget_ll)),
            "forget_percentile": float(np.mean(m.percentiles)), "forget_logliks": m.forget_ll.tolist(),
            "reference_loglik": float(np.mean(m.reference_ll))}


def _check_condition(cond: Condition, k: int | None = None) -> tuple[list[dict], list[dict]]:
    """(forget examples, remaining examples); clear errors for a bad forget set."""
    if not cond.train:
        raise ERASEError("the training pool is empty")
    ids = [ex.get("id") for ex in cond.train]
    if len(set(ids)) != len(ids):
        raise DuplicateIdError("training pool ids must be unique")
    if isinstance(cond.forget_ids, str):
        raise ERASEError("forget_ids must be a list of ids, not one string")
    forget_ids = list(cond.forget_ids)
    if not forget_ids:
        raise ERASEError("the forget set is empty: nothing to unlearn")
    if len(set(forget_ids)) != len(forget_ids):
        raise DuplicateIdError("forget ids must be distinct")
    missing = sorted(set(forget_ids) - set(ids))
    if missing:
        raise UnknownIdError(f"forget ids not in the training pool: {missing[:5]}")
    gone = set(forget_ids)
    rest = [ex for ex in cond.train if ex["id"] not in gone]
    if not rest or (k is not None and len(rest) < k):
        raise ERASEError(f"forgetting {len(gone)} of {len(cond.train)} examples leaves too few to retrain on")
    if not cond.reference:
        raise ERASEError("the reference set (held-out examples for the rank metric) is empty")
    by_id = {ex["id"]: ex for ex in cond.train}
    return [by_id[i] for i in forget_ids], rest


# ----------------------------------------------------------------------------- the two methods


def compare_gradient_ascent(cond: Condition, test: Sequence[Mapping], formats: Mapping[str, TaskFormat], main: str,
                            cfg: UnlearnConfig, *, lm=None, progress: bool = False) -> dict:
    """Fine-tune on ``cond.train``, retrain without the forget set (gold), gradient-ascend the
    forget set; metrics against the retrained model after each step count in ``cfg.steps``."""
    forget, _ = _check_condition(cond)
    from tqdm.auto import tqdm

    with _Trainer(SISAConfig(**cfg.sisa_kwargs()), formats, main, lm=lm, device=cfg.device,
                  model_name_or_path=None if lm is not None else cfg.model,
                  gguf_file=None if lm is not None else cfg.gguf_file, show_progress=progress) as trainer:
        trainer.fit(cond.train)
        fit_seconds = trainer.fit_seconds_
        original = trainer.shard_weights(0)
        report = trainer.forget(list(cond.forget_ids))
        view = trainer.view()
        gold = _ModelView(copy.deepcopy(view.model), view.tokenizer, view.device, view._torch)
        retrained = trainer.shard_weights(0)
        with view._torch.no_grad():
            for n, p in gold.model.named_parameters():
                p.copy_(retrained[n])
        gold.model.eval()
        answer_prefix = formats[main].prefix([]) if formats[main].task_prefix else ""
        r_sys = System(gold, formats, main, "", answer_prefix, cfg.max_length)
        u_sys = System(view, formats, main, "", answer_prefix, cfg.max_length)
        r = measure(r_sys, forget, cond.reference, test, cfg)
        rows = []
        bar = tqdm(total=len(cfg.steps), desc=f"{cond.name} ascent", leave=False, disable=not progress)

        def checkpoint(step: int, seconds: float, loss: float) -> None:
            u = measure(u_sys, forget, cond.reference, test, cfg)
            rows.append({"step": step, "seconds": seconds, "ascent_loss": None if np.isnan(loss) else loss}
                        | distances(u, r, u_sys, r_sys, forget, cfg.batch_size))
            bar.update(1)

        with _flush_denormal(view._torch):
            trainer.ascend(original, forget, cfg.steps, checkpoint)
        bar.close()
        del gold
    return {"train": len(cond.train), "forget_ids": list(cond.forget_ids), "fit_seconds": fit_seconds,
            "retrain_seconds": report.seconds, "retrained": _summary(r), "ascent": rows}


def compare_erase(cond: Condition, test: Sequence[Mapping], formats: Mapping[str, TaskFormat], main: str,
                  cfg: UnlearnConfig, *, lm, embed: Callable[[list[str]], np.ndarray], forget_ids=None) -> dict:
    """Build the ERASE prompt on the pool, ``forget()`` the forget set (``forget_ids``, default
    ``cond.forget_ids``), build afresh on the remaining pool; measure both prompts with the base
    model and compute the distances: exactness is measured, not assumed. Also the distance
    before the forget (the unforgotten prompt against the fresh one), which is not zero when
    the forget set held a selected shot."""
    from .methods import make_method

    cond = Condition(cond.name, cond.train, list(cond.forget_ids if forget_ids is None else forget_ids), cond.reference)
    forget, _ = _check_condition(cond, cfg.k)
    gone = set(cond.forget_ids)
    ids = [ex["id"] for ex in cond.train]
    vectors = np.asarray(embed([ex["input"] for ex in cond.train]), dtype=np.float32)
    labels = [answer_text(ex) for ex in cond.train]
    method = make_method("erase", cfg.k, cfg.seed).fit(ids, vectors, labels)
    before = method.shots()
    forget_seconds = method.forget(cond.forget_ids)
    after = method.shots()
    keep = [r for r, i in enumerate(ids) if i not in gone]
    t0 = time.perf_counter()
    fresh_method = make_method("erase", cfg.k, cfg.seed).fit([ids[r] for r in keep], vectors[keep], [labels[r] for r in keep])
    fresh_seconds = time.perf_counter() - t0
    fresh = fresh_method.shots()
    method.close()
    fresh_method.close()
    by_id = {ex["id"]: ex for ex in cond.train}
    fmt = formats[main]

    def system(shots):
        prefix = fmt.prefix([by_id[i] for i in shots])
        return System(lm, formats, main, prefix, prefix, PROMPT_LIMIT)

    s_before, s_after, s_fresh = system(before), system(after), system(fresh)
    m_fresh = measure(s_fresh, forget, cond.reference, test, cfg)
    m_after = measure(s_after, forget, cond.reference, test, cfg)
    m_before = measure(s_before, forget, cond.reference, test, cfg)
    return {"forget_ids": list(cond.forget_ids), "selected_before": before, "selected_after": after,
            "selected_fresh": fresh, "same_prompt": s_after.prefix == s_fresh.prefix and after == fresh,
            "forgotten_selected_before": sum(i in gone for i in before),
            "forget_seconds": forget_seconds, "fresh_seconds": fresh_seconds,
            "after": distances(m_after, m_fresh, s_after, s_fresh, forget, cfg.batch_size),
            "before": distances(m_before, m_fresh, s_before, s_fresh, forget, cfg.batch_size),
            "fresh": _summary(m_fresh)}


# ----------------------------------------------------------------------------- the experiment


def default_cache_dir() -> Path:
    return bench_cache_dir().with_name("unlearn")


class UnlearningExperiment(LazyModels):
    """Loads the tasks, builds both conditions and runs both methods on each; every condition's
    result is cached as JSON under ``cache_dir`` (a rerun with the same config recomputes nothing)."""

    def __init__(self, config: UnlearnConfig, *, cache_dir: str | Path | None = None, lm=None,
                 embed: Callable[[list[str]], np.ndarray] | None = None, progress: bool = True):
        self.config = config.validate()
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.progress = progress
        self._lm, self._embed = lm, embed

    def embed(self, texts: list[str]) -> np.ndarray:
        if self._embed is not None:  # an embedding function given by the caller (tests)
            return np.asarray(self._embed(texts), dtype=np.float32)
        return super().embed(texts)

    def load(self) -> tuple[dict[str, TaskFormat], list[dict], dict[str, Condition]]:
        """(formats, test questions, conditions): disjoint seeded splits of the task (pool,
        reference, test) and of the OOD task (forget set, reference)."""
        cfg = self.config
        task, ood = load_task(cfg.task, cfg.data_dir), load_task(cfg.ood_task, cfg.data_dir)
        formats = {cfg.task: TaskFormat.of(task), cfg.ood_task: TaskFormat.of(ood)}
        head, test = task.split(cfg.pool + cfg.n_reference, cfg.n_test, seed=cfg.split_seed)
        for ex in head:
            ex["id"], ex["task"] = f"{cfg.task}-{ex['idx']}", cfg.task
        pool, reference = head[: cfg.pool], head[cfg.pool :]
        ood_head, _ = ood.split(cfg.forget + cfg.n_reference, 0, seed=cfg.split_seed)
        for ex in ood_head:
            ex["id"], ex["task"] = f"{cfg.ood_task}-{ex['idx']}", cfg.ood_task
        ood_forget, ood_reference = ood_head[: cfg.forget], ood_head[cfg.forget :]
        victims = random.Random(f"forget/{cfg.seed}").sample(sorted(ex["id"] for ex in pool), cfg.forget)
        conditions = {
            "in-distribution": Condition("in-distribution", pool, victims, reference),
            "out-of-distribution": Condition("out-of-distribution", pool + ood_forget,
                                             [ex["id"] for ex in ood_forget], ood_reference),
        }
        return formats, test, conditions

    def _cached(self, name: str, compute: Callable[[], dict]) -> dict:
        cache, key = _Cache(self.cache_dir), f"{self.config.key()}-{name}"
        return cache.get(key) or cache.put(compute(), key)

    def run(self) -> dict:
        from tqdm.auto import tqdm

        cfg = self.config
        formats, test, conditions = self.load()
        out: dict[str, Any] = {"config": asdict(cfg), "conditions": {}}
        start = time.perf_counter()
        for name in tqdm(CONDITIONS, desc="conditions", leave=False, disable=not self.progress):
            cond = conditions[name]
            slug = name.split("-")[0]
            entry = {"gradient_ascent": self._cached(f"{slug}-ascent", lambda: compare_gradient_ascent(
                cond, test, formats, cfg.task, cfg, lm=self.lm, progress=self.progress)),
                "erase": self._cached(f"{slug}-erase", lambda: compare_erase(
                    cond, test, formats, cfg.task, cfg, lm=self.lm, embed=self.embed))}
            if name == "in-distribution":  # the hard case for ERASE: forget the selected shots themselves
                shots = entry["erase"]["selected_before"]  # the same fit on the same pool
                entry["erase_selected"] = self._cached(f"{slug}-erase-selected", lambda: compare_erase(
                    cond, test, formats, cfg.task, cfg, lm=self.lm, embed=self.embed, forget_ids=shots[: cfg.forget]))
            out["conditions"][name] = entry
        out["seconds"] = time.perf_counter() - start
        out["device"] = cfg.device or ("cuda" if _cuda() else "cpu")
        return out


def _cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


# ----------------------------------------------------------------------------- report


METRICS = (("loglik_distance", "(a) log-likelihood distance (nats)"), ("rank_distance", "(b) rank distance"),
           ("fade_distance", "(c) FADE-style distance (nats)"))
COLORS = {"in-distribution": "tab:blue", "out-of-distribution": "tab:orange"}


def _step_axis(ax, results: dict) -> None:
    """Steps on a symlog axis (0, then doublings), labelled with the measured step counts."""
    steps = results["config"]["steps"]
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xticks(steps)
    ax.set_xticklabels([str(s) for s in steps])
    ax.minorticks_off()
    ax.set_xlabel("gradient-ascent steps (ERASE forget() drawn at 0)")


def plot_quality(results: dict, path: Path) -> None:
    """Each metric against gradient-ascent steps per condition; ERASE after forget() as a star."""
    fig = _figure(12, 3.8)
    for n, (key, label) in enumerate(METRICS):
        ax = fig.add_subplot(1, len(METRICS), n + 1)
        for name, entry in results["conditions"].items():
            rows = entry["gradient_ascent"]["ascent"]
            ax.plot([r["step"] for r in rows], [r[key] for r in rows], marker="o", color=COLORS.get(name),
                    label=f"gradient ascent, {name}")
            ax.plot([0], [entry["erase"]["after"][key]], marker="*", ms=14, ls="none", color=COLORS.get(name),
                    markeredgecolor="k", label=f"ERASE forget(), {name}")
        ax.axhline(0, color="k", lw=0.6, ls="--")
        _step_axis(ax, results)
        ax.set_title(label, fontsize=9)
        if n == 0:
            ax.set_ylabel("distance to the retrained model (0 = retrained)")
            ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_utility(results: dict, path: Path) -> None:
    """Test accuracy against gradient-ascent steps; retrained model dashed; ERASE as a star."""
    fig = _figure(6.5, 4)
    ax = fig.add_subplot(1, 1, 1)
    for name, entry in results["conditions"].items():
        ga, color = entry["gradient_ascent"], COLORS.get(name)
        rows = ga["ascent"]
        ax.plot([r["step"] for r in rows], [r["accuracy"] for r in rows], marker="o", color=color,
                label=f"gradient ascent, {name}")
        ax.axhline(ga["retrained"]["accuracy"], color=color, ls="--", lw=1, label=f"retrained, {name}")
        ax.plot([0], [entry["erase"]["after"]["accuracy"]], marker="*", ms=14, ls="none", color=color,
                markeredgecolor="k", label=f"ERASE (k-shot) after forget(), {name}")
    _step_axis(ax, results)
    ax.set_ylabel("test accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _f(x, digits: int = 3) -> str:
    return "" if x is None else f"{x:.{digits}f}"


def markdown_table(results: dict) -> str:
    lines = ["| condition | method | GA steps | unlearn time (s) | test accuracy | (a) loglik dist. | (b) rank dist. | "
             "(c) FADE dist. | forget loglik (mean) | forget percentile (mean) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, entry in results["conditions"].items():
        ga = entry["gradient_ascent"]
        rt = ga["retrained"]
        lines.append(f"| {name} | retrain without forget set (gold) | | {_f(ga['retrain_seconds'], 1)} | {_f(rt['accuracy'])} "
                     f"| 0 | 0 | 0 | {_f(rt['forget_loglik'], 2)} | {_f(rt['forget_percentile'], 2)} |")
        for r in ga["ascent"]:
            lines.append(f"| {name} | gradient ascent | {r['step']} | {_f(r['seconds'], 2)} | {_f(r['accuracy'])} | "
                         f"{_f(r['loglik_distance'], 3)} | {_f(r['rank_distance'], 3)} | {_f(r['fade_distance'], 3)} | "
                         f"{_f(r['forget_loglik'], 2)} | {_f(r['forget_percentile'], 2)} |")
        for label, key in (("ERASE forget()", "erase"), ("ERASE forget() of the selected shots", "erase_selected")):
            e = entry.get(key)
            if e is None:
                continue
            for when, secs in (("before forget", None), ("after", e["forget_seconds"])):
                d = e["before" if when == "before forget" else "after"]
                lines.append(f"| {name} | {label}{' (' + when + ')' if when != 'after' else ''} | | "
                             f"{_f(secs, 4) if secs is not None else ''} | {_f(d['accuracy'])} | {d['loglik_distance']:.3g} | "
                             f"{d['rank_distance']:.3g} | {d['fade_distance']:.3g} | {_f(d['forget_loglik'], 2)} | "
                             f"{_f(d['forget_percentile'], 2)} |")
    return "\n".join(lines)


def erase_summary(results: dict) -> list[str]:
    out = []
    for name, entry in results["conditions"].items():
        for key in ("erase", "erase_selected"):
            e = entry.get(key)
            if e is None:
                continue
            a = e["after"]
            out.append(f"- {name}, {'forget set' if key == 'erase' else 'forgetting the selected shots'}: "
                       f"{e['forgotten_selected_before']} of {len(e['forget_ids'])} forgotten examples were selected shots "
                       f"before; prompt after forget() equals a fresh build: {e['same_prompt']}; identical samples: "
                       f"{a['same_samples']}; distances (a) {a['loglik_distance']:.3g}, (b) {a['rank_distance']:.3g}, "
                       f"(c) {a['fade_distance']:.3g}; before the forget: (a) {e['before']['loglik_distance']:.3g}, "
                       f"(b) {e['before']['rank_distance']:.3g}, (c) {e['before']['fade_distance']:.3g}.")
    return out


def section(results: dict, img_prefix: str = "img/", notes: str = "") -> str:
    cfg = results["config"]
    md = [SECTION_BEGIN, "## Exact versus approximate unlearning", "",
          "Written by `erase unlearn` (erase_core/evaluation/unlearning.py); metrics defined in "
          "[quality.md](quality.md). Distances are to the model retrained without the forget set (0 = "
          "indistinguishable from it).", "",
          f"Configuration: task {cfg['task']} (pool {cfg['pool']}, {cfg['n_test']} test questions, "
          f"{cfg['n_reference']} reference examples), out-of-distribution task {cfg['ood_task']}; forget set "
          f"{cfg['forget']} examples; fine-tuning {cfg['epochs']} epoch(s), AdamW lr {cfg['learning_rate']}, batch "
          f"{cfg['batch_size']}, max length {cfg['max_length']}; gradient-ascent steps {cfg['steps']}; ERASE k = {cfg['k']}; "
          f"{'greedy samples' if cfg['samples'] == 1 else str(cfg['samples']) + ' seeded samples'} of {cfg['sample_tokens']} "
          f"tokens for (c); seed {cfg['seed']}; device {results.get('device', '')}; total {results.get('seconds', 0):.0f} s.", ""]
    if notes:
        md += [notes.strip(), ""]
    md += [f"![quality against gradient-ascent steps]({img_prefix}unlearning_quality.png)", "",
           f"![utility against gradient-ascent steps]({img_prefix}unlearning_utility.png)", "",
           markdown_table(results), "", "ERASE, measured:", ""] + erase_summary(results) + ["", SECTION_END, ""]
    return "\n".join(md)


def replace_section(path: Path, text: str) -> None:
    """Replace the ``erase unlearn`` section of a markdown file, or append it at the end; the
    other sections are left as they are."""
    old = path.read_text() if path.exists() else ""
    if SECTION_BEGIN in old and SECTION_END in old:
        head, rest = old.split(SECTION_BEGIN, 1)
        tail = rest.split(SECTION_END, 1)[1].lstrip("\n")
        new = head + text + tail
    else:
        new = old.rstrip("\n") + ("\n\n" if old else "") + text
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(new)
    os.replace(tmp, path)


def write_unlearning_report(results: dict, out_dir: str | Path, *, results_md: str | Path | None = None,
                            notes: str = "") -> dict[str, Path]:
    """``unlearning.json``, ``unlearning.md`` (the section alone) and ``img/unlearning_*.png``
    under ``out_dir``; the section is also put into ``results_md`` when given."""
    out = Path(out_dir)
    img = out / "img"
    img.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "unlearning.json", "md": out / "unlearning.md",
             "quality": img / "unlearning_quality.png", "utility": img / "unlearning_utility.png"}
    paths["json"].write_text(json.dumps(results, indent=1, sort_keys=True))
    plot_quality(results, paths["quality"])
    plot_utility(results, paths["utility"])
    paths["md"].write_text(section(results, "img/", notes))
    if results_md is not None:
        md = Path(results_md)
        prefix = os.path.relpath(img, md.parent).replace(os.sep, "/") + "/"
        replace_section(md, section(results, prefix, notes))
        paths["results_md"] = md
    return paths


# ----------------------------------------------------------------------------- command


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


QUICK: dict[str, Any] = dict(pool=8, forget=2, n_test=3, n_reference=4, steps=[0, 2], epochs=1, max_length=40, k=2, sample_tokens=4)


def build_parser() -> argparse.ArgumentParser:
    d = UnlearnConfig()
    p = argparse.ArgumentParser(prog="erase unlearn", description=(
        "Exact (ERASE) versus approximate (gradient-ascent) unlearning on one BIG-bench task: fine-tune, "
        "retrain without the forget set (gold), gradient-ascend the forget set; unlearning quality "
        "(docs/quality.md), utility and wall time, in- and out-of-distribution. Cached; a rerun resumes."))
    p.add_argument("--task", default=None, help=f"task (default {d.task})")
    p.add_argument("--ood-task", default=None, help=f"task the out-of-distribution forget set comes from (default {d.ood_task})")
    p.add_argument("--pool", type=int, default=None, help=f"training pool size (default {d.pool})")
    p.add_argument("--forget", type=int, default=None, help=f"forget-set size (default {d.forget})")
    p.add_argument("--steps", type=_ints, default=None, help=f"gradient-ascent step counts (default {','.join(map(str, d.steps))})")
    p.add_argument("--epochs", type=int, default=None, help=f"fine-tuning epochs (default {d.epochs})")
    p.add_argument("--lr", type=float, default=None, help=f"AdamW learning rate, fine-tuning and ascent (default {d.learning_rate})")
    p.add_argument("--max-length", type=int, default=None, help=f"training tokens per example (default {d.max_length})")
    p.add_argument("--n-test", type=int, default=None, help=f"test questions (default {d.n_test})")
    p.add_argument("--n-reference", type=int, default=None, help=f"held-out reference examples per distribution (default {d.n_reference})")
    p.add_argument("--k", type=int, default=None, help=f"ERASE shots (default {d.k})")
    p.add_argument("--samples", type=int, default=None, help="samples per forget prompt for (c): 1 = greedy (default), more = seeded sampling")
    p.add_argument("--seed", type=int, default=None, help="seed of training, forget draw and ERASE (default 0)")
    p.add_argument("--quick", action="store_true", help="a tiny run (runs in the test suite)")
    p.add_argument("--data-dir", default=None, help=f"folder of <task>/task.json (default ${ENV_VAR}, else the bundled tasks)")
    p.add_argument("--cache-dir", default=None, help="where results are cached (default ~/.cache/erase/unlearn)")
    p.add_argument("--out", default="docs", help="folder for unlearning.json, unlearning.md and img/ (default docs)")
    p.add_argument("--results-md", default=None, help="markdown file whose 'erase unlearn' section is replaced or "
                   "appended (default <out>/results.md; 'none': do not touch one)")
    p.add_argument("--notes", default=None, help="a markdown file whose text goes into the section (reading, caveats)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--model", default=None, help="local model folder or hub id (default SmolLM2-135M-Instruct GGUF)")
    p.add_argument("--gguf-file", default=None, help="GGUF file inside --model")
    p.add_argument("--report-only", action="store_true", help="only rewrite the report from <out>/unlearning.json")
    return p


def config_from_args(args: argparse.Namespace) -> UnlearnConfig:
    cfg = UnlearnConfig(**(QUICK if args.quick else {}))
    for name, value in (("task", args.task), ("ood_task", args.ood_task), ("pool", args.pool), ("forget", args.forget),
                        ("steps", args.steps), ("epochs", args.epochs), ("learning_rate", args.lr),
                        ("max_length", args.max_length), ("n_test", args.n_test), ("n_reference", args.n_reference),
                        ("k", args.k), ("samples", args.samples), ("seed", args.seed), ("data_dir", args.data_dir),
                        ("device", args.device), ("model", args.model), ("gguf_file", args.gguf_file)):
        if value is not None:
            setattr(cfg, name, value)
    return cfg.validate()


def main(argv: list[str] | None = None, *, lm=None, embed=None) -> int:
    args = build_parser().parse_args(argv)
    notes = Path(args.notes).read_text() if args.notes else ""
    results_md = None if (args.results_md or "").lower() == "none" else Path(args.results_md or Path(args.out) / "results.md")
    try:
        if args.report_only:
            results = json.loads((Path(args.out) / "unlearning.json").read_text())
        else:
            cfg = config_from_args(args)
            progress = sys.stderr.isatty() or bool(os.environ.get("ERASE_PROGRESS"))
            results = UnlearningExperiment(cfg, cache_dir=args.cache_dir, lm=lm, embed=embed, progress=progress).run()
        paths = write_unlearning_report(results, args.out, results_md=results_md, notes=notes)
    except ERASEError as exc:
        print(f"erase unlearn: error: {exc}", file=sys.stderr)
        return 2
    exact = all(e[key]["same_prompt"] and e[key]["after"]["loglik_distance"] == 0 and e[key]["after"]["fade_distance"] == 0
                for e in results["conditions"].values() for key in ("erase", "erase_selected") if key in e)
    print(f"wrote {', '.join(str(p) for p in paths.values())}; ERASE distance exactly 0: {exact}")
    return 0 if exact else 1
