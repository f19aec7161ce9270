"""SISA baseline (Bourtoule et al. 2021, "Machine Unlearning"): Sharded, Isolated, Sliced, Aggregated.

The training examples are split into ``n_shards`` disjoint shards, each fine-tuning its own
copy of the base LLM; each shard's data is split again into ``n_slices`` slices, trained
cumulatively (step ``j`` trains on slices ``0..j``, starting from the weights after step
``j - 1``) with a checkpoint after every step. Forgetting an example restores its shard's
checkpoint from before the example's slice and retrains the later steps without it: the
result is exactly the model a fresh fit on the remaining data would give, at a fraction of
the cost. Predictions aggregate the shards by majority vote.

Objective: causal-LM loss on the answer only, ``" " + answer`` followed by the stop string that
ends an answer (so greedy generation learns to stop), after the question ``fmt.question(input)``
(prompt tokens masked). Prediction is zero-shot: ``fmt.prefix([])`` (the task prefix, when the
task has one) + question; options are scored, or an answer generated, after it.

Exactness rests on three things, all functions of the data alone, never of its history:

* shard and slice of an example are a keyed hash of its id (:func:`assign`), so removing
  one example never moves another;
* the order of a step's examples is the id-hash order, shuffled by a generator seeded from
  ``(seed, shard, step, epoch)``; each step starts a fresh AdamW (no optimizer state
  crosses a checkpoint);
* training runs in float32 on CPU, where the kernels are deterministic.

Checkpoints are safetensors files (no pickle) in a directory the ensemble owns (a temporary
one by default); :meth:`SISAEnsemble.close` deletes them.
"""

from __future__ import annotations

import copy
import hashlib
import json
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence, TypeVar

import numpy as np

from .._validation import ERASEError, check_ids, check_known_ids, check_positive_int, check_real
from ..models.llm import LocalCausalLM
from ..models.scoring import MultipleChoiceScorer
from .prompts import TaskFormat, answer_text, is_correct

__all__ = ["SISAConfig", "SISAEnsemble", "SISAUnlearnReport", "assign", "id_hash"]


# ----------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class SISAConfig:
    """Hyper-parameters of a SISA ensemble (validated on construction).

    ``min_shard_size``: :meth:`SISAEnsemble.fit` refuses shards with fewer examples (the
    paper keeps shards at >= 20 examples, which fine-tuning needs to converge).
    ``weight_decay``: AdamW's decoupled weight decay. ``max_new_tokens``: generation length
    for generative tasks.
    """

    n_shards: int = 4
    n_slices: int = 2
    epochs: int = 2
    learning_rate: float = 5e-5
    batch_size: int = 8
    max_length: int = 128
    seed: int = 0
    min_shard_size: int = 20
    weight_decay: float = 0.0
    max_new_tokens: int = 16

    def __post_init__(self):
        check_positive_int(self.n_shards, "n_shards")
        check_positive_int(self.n_slices, "n_slices")
        check_positive_int(self.epochs, "epochs")
        check_positive_int(self.batch_size, "batch_size")
        check_positive_int(self.max_length, "max_length", minimum=8)
        check_positive_int(self.min_shard_size, "min_shard_size", minimum=0)
        check_positive_int(self.max_new_tokens, "max_new_tokens")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise ERASEError(f"seed must be an integer, got {self.seed!r}")
        if check_real(self.learning_rate, "learning_rate") <= 0:
            raise ERASEError(f"learning_rate must be > 0, got {self.learning_rate!r}")
        if check_real(self.weight_decay, "weight_decay") < 0:
            raise ERASEError(f"weight_decay must be >= 0, got {self.weight_decay!r}")


@dataclass(frozen=True)
class SISAUnlearnReport:
    """What a :meth:`SISAEnsemble.forget` cost.

    ``slices_retrained``: slice steps retrained over all shards; ``examples_retrained``: the
    sum of their training-set sizes (one epoch), the work a full refit would spend on
    ``n_shards * n_slices`` steps.
    """

    ids: tuple[str, ...]
    shards_retrained: tuple[int, ...]
    slices_retrained: int
    examples_retrained: int
    seconds: float


# ----------------------------------------------------------------------------- assignment


def id_hash(example_id: str, seed: int) -> int:
    """64-bit keyed hash of an id (blake2b keyed by the seed): the example's place in SISA."""
    if not isinstance(example_id, str):
        raise ERASEError(f"ids must be strings; got {type(example_id).__name__} {example_id!r}")
    key = hashlib.blake2b(str(int(seed)).encode(), digest_size=32).digest()
    digest = hashlib.blake2b(example_id.encode("utf-8"), digest_size=8, key=key).digest()
    return int.from_bytes(digest, "big")


def assign(example_id: str, n_shards: int, n_slices: int, seed: int) -> tuple[int, int]:
    """(shard, slice) of an id: a function of the id and the seed alone, so removals move nothing."""
    h = id_hash(example_id, seed)
    return h % n_shards, (h // n_shards) % n_slices


def _rng_seed(*parts: int | str) -> int:
    return int.from_bytes(hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=8).digest(), "big")


# ----------------------------------------------------------------------------- model plumbing


class _ModelView(LocalCausalLM):
    """A LocalCausalLM over the ensemble's working model, for the scorer and generation (greedy,
    with stop strings). It wraps a model already in memory: nothing is loaded, so the base
    class's loading ``__init__`` is not called."""

    def __init__(self, model, tokenizer, device: str, torch):
        self.model_name_or_path, self.gguf_file = "(SISA working model)", None
        self.model, self.tokenizer, self.device, self._torch = model, tokenizer, device, torch
        self._lock = threading.Lock()


@dataclass(frozen=True)
class _Encoded:
    """One training example as token ids (prompt tokens masked out of the loss)."""

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]


def token_ids(tok, text: str) -> list[int]:
    """The tokens of ``text`` without special tokens ([] for "")."""
    return tok(text, add_special_tokens=False)["input_ids"] if text else []


def encode_answer(tok, prompt: str, answer: str, stop: str, limit: int) -> _Encoded:
    """Prompt tokens (masked) + ``" " + answer`` + the stop string's tokens, at most ``limit``
    tokens: the prompt is cut from the left, and an answer that does not fit keeps one prompt
    token. The training encoding; scoring uses it too, so both see the same tokens."""

    prompt_ids = token_ids(tok, prompt)
    answer_ids = token_ids(tok, " " + answer) + token_ids(tok, stop)
    if len(answer_ids) >= limit:
        prompt_ids, answer_ids = prompt_ids[-1:], answer_ids[: limit - 1]
    elif len(prompt_ids) + len(answer_ids) > limit:
        prompt_ids = prompt_ids[len(prompt_ids) + len(answer_ids) - limit :]
    return _Encoded(tuple(prompt_ids + answer_ids), tuple([-100] * len(prompt_ids) + answer_ids))


def pad_batch(torch, rows: Sequence[_Encoded], pad_id: int):
    """(input_ids, attention_mask, labels) of ``rows``, right-padded to the longest (CPU tensors)."""
    width = max(len(e.input_ids) for e in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, e in enumerate(rows):
        input_ids[r, : len(e.input_ids)] = torch.tensor(e.input_ids)
        labels[r, : len(e.labels)] = torch.tensor(e.labels)
        mask[r, : len(e.input_ids)] = 1
    return input_ids, mask, labels


# ----------------------------------------------------------------------------- the ensemble


_Ensemble = TypeVar("_Ensemble", bound="SISAEnsemble")


class SISAEnsemble:
    """SISA fine-tuning of a causal LM on few-shot pool examples, with exact unlearning.

    Parameters
    ----------
    config : :class:`SISAConfig`.
    fmt : the task's :class:`~erase_core.evaluation.prompts.TaskFormat`.
    lm : an already loaded ``LocalCausalLM``; its weights are copied (the caller's model is
        never modified). Otherwise a model is loaded from ``model_name_or_path`` /
        ``gguf_file`` (default SmolLM2-135M-Instruct) on first use.
    device : "cpu", "cuda" or None (the lm's device, else CUDA when available).
    checkpoint_dir : where slice checkpoints go (default: a temporary directory).
    """

    def __init__(
        self,
        config: SISAConfig,
        fmt: TaskFormat,
        *,
        lm=None,
        model_name_or_path: str | None = None,
        gguf_file: str | None = None,
        device: str | None = None,
        checkpoint_dir: str | Path | None = None,
        show_progress: bool = True,
    ):
        if not isinstance(config, SISAConfig):
            raise ERASEError(f"config must be a SISAConfig, got {type(config).__name__}")
        if not isinstance(fmt, TaskFormat):
            raise ERASEError(f"fmt must be a TaskFormat, got {type(fmt).__name__}")
        if lm is not None and (model_name_or_path is not None or gguf_file is not None):
            raise ERASEError("pass either lm= or model_name_or_path=/gguf_file=, not both")
        self.config, self.fmt, self.show_progress = config, fmt, bool(show_progress)
        self._source_lm, self._load_args = lm, (model_name_or_path, gguf_file)
        self._device_arg = device
        self._tmpdir = None
        if checkpoint_dir is None:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="erase-sisa-")
            checkpoint_dir = self._tmpdir.name
        self.checkpoint_dir = Path(checkpoint_dir).expanduser()
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        self._token = uuid.uuid4().hex[:8]  # keeps two ensembles sharing a directory apart
        self._live_view: _ModelView | None = None  # see _view
        self._live_base: dict | None = None  # see _base
        self._examples: dict[str, dict] = {}
        self._encoded: dict[str, _Encoded] = {}
        self._place: dict[str, tuple[int, int]] = {}
        self._checkpoints: dict[tuple[int, int], Path] = {}
        self.fit_seconds_: float | None = None
        self.shard_seconds_: list[float] = []
        self._optimizer = None
        self._writes = 0
        self._closed = False

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self: _Ensemble) -> _Ensemble:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Delete every checkpoint (and the temporary directory) and drop the models."""
        for path in self._checkpoints.values():
            path.unlink(missing_ok=True)
        self._checkpoints.clear()
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None
        self._optimizer, self._live_view, self._live_base, self._closed = None, None, None, True

    def __repr__(self) -> str:
        state = "closed" if self._closed else (f"{len(self._examples)} examples" if self.is_fitted else "unfitted")
        return f"SISAEnsemble({self.config}, {state})"

    # ------------------------------------------------------------------ fitted state
    @property
    def is_fitted(self) -> bool:
        return bool(self._checkpoints)

    @property
    def ids_(self) -> list[str]:
        """Ids of the examples the ensemble is currently trained on."""
        return sorted(self._examples)

    @property
    def shard_ids_(self) -> list[list[str]]:
        """Ids per shard, in id-hash order."""
        shards: list[list[str]] = [[] for _ in range(self.config.n_shards)]
        for i, (s, _) in self._place.items():
            shards[s].append(i)
        return [self._order(ids) for ids in shards]

    @property
    def checkpoints_(self) -> dict[tuple[int, int], Path]:
        """Checkpoint file of each (shard, slice step)."""
        return dict(self._checkpoints)

    def assignment(self, example_id: str) -> tuple[int, int]:
        """(shard, slice) of an id under this ensemble's config."""
        return assign(example_id, self.config.n_shards, self.config.n_slices, self.config.seed)

    # ------------------------------------------------------------------ fit
    def fit(self, examples: Sequence[Mapping[str, Any]]) -> "SISAEnsemble":
        """Train every shard from the base weights, slice by slice, checkpointing each step."""
        self._check_open()
        examples = self._check_examples(examples)
        cfg = self.config
        place = {ex["id"]: self.assignment(ex["id"]) for ex in examples}
        sizes = Counter(s for s, _ in place.values())
        small = [(s, sizes.get(s, 0)) for s in range(cfg.n_shards) if sizes.get(s, 0) < cfg.min_shard_size]
        if small:
            shard, size = small[0]
            raise ERASEError(
                f"shard {shard} would get {size} example(s), fewer than min_shard_size={cfg.min_shard_size} "
                f"({len(examples)} examples over n_shards={cfg.n_shards}); use fewer shards or more examples"
            )
        self._prepare_model()
        encoded = {ex["id"]: self._encode(ex) for ex in examples}
        old = dict(self._checkpoints)
        new: dict[tuple[int, int], Path] = {}
        shard_seconds = []
        start = time.perf_counter()
        try:
            with self._progress(cfg.n_shards * cfg.n_slices, "SISA fit") as bar:
                for shard in range(cfg.n_shards):
                    t0 = time.perf_counter()
                    ids = [i for i, (s, _) in place.items() if s == shard]
                    new.update(self._train_shard(shard, 0, ids, place, encoded, bar))
                    shard_seconds.append(time.perf_counter() - t0)
        except BaseException:
            for path in new.values():
                path.unlink(missing_ok=True)
            raise
        finally:
            self._release_optimizer()
        for path in old.values():
            path.unlink(missing_ok=True)
        self._examples = {ex["id"]: ex for ex in examples}
        self._encoded, self._place, self._checkpoints = encoded, place, new
        self.fit_seconds_ = time.perf_counter() - start
        self.shard_seconds_ = shard_seconds
        return self

    # ------------------------------------------------------------------ forget
    def forget(self, ids: Iterable[str] | str) -> SISAUnlearnReport:
        """Exactly unlearn ``ids``: retrain each affected shard from the checkpoint before the
        earliest affected slice, without them; checkpoints that saw them are deleted.

        Unknown ids raise :class:`~erase_core._validation.UnknownIdError` with nothing changed.
        """
        self._check_fitted()
        ids = check_known_ids(ids, self._examples)
        start = time.perf_counter()
        gone = set(ids)
        first: dict[int, int] = {}
        for i in ids:
            shard, slc = self._place[i]
            first[shard] = min(first.get(shard, slc), slc)
        place = {i: p for i, p in self._place.items() if i not in gone}
        steps = sum(self.config.n_slices - j for j in first.values())
        new: dict[tuple[int, int], Path] = {}
        examples_retrained = 0
        try:
            with self._progress(steps, "SISA forget") as bar:
                for shard in sorted(first):
                    shard_ids = [i for i, (s, _) in place.items() if s == shard]
                    trained = self._train_shard(shard, first[shard], shard_ids, place, self._encoded, bar)
                    new.update(trained)
                    examples_retrained += sum(
                        sum(1 for i in shard_ids if place[i][1] <= j) for (_, j) in trained
                    )
        except BaseException:
            for path in new.values():
                path.unlink(missing_ok=True)
            raise
        finally:
            self._release_optimizer()
        for key, path in new.items():  # commit: replace every checkpoint that saw a forgotten id
            self._checkpoints.pop(key).unlink(missing_ok=True)
            self._checkpoints[key] = path
        for i in ids:
            del self._examples[i], self._encoded[i], self._place[i]
        return SISAUnlearnReport(
            ids=tuple(ids), shards_retrained=tuple(sorted(first)), slices_retrained=steps,
            examples_retrained=examples_retrained, seconds=time.perf_counter() - start,
        )

    # ------------------------------------------------------------------ prediction
    def predict(self, example: Mapping[str, Any]) -> str:
        """The ensemble's answer to one example (a choice, or generated text)."""
        return self._predict_many([example], need_answer=False)[0]

    def evaluate(self, test_examples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Accuracy of the aggregated predictions, BIG-bench graded.

        Returns ``accuracy``, ``correct`` (per example), ``predictions``, ``seconds``,
        ``prompt_tokens`` (mean prompt tokens per query per shard) and ``n_shards`` (voting).
        """
        start = time.perf_counter()
        test_examples = list(test_examples)
        predictions = self._predict_many(test_examples)
        correct = [bool(is_correct(p, ex)) for p, ex in zip(predictions, test_examples)]
        tok, prefix = self._view.tokenizer, self._prefix()
        prompts = [prefix + self.fmt.question(ex) for ex in test_examples]
        tokens = [len(tok(p, add_special_tokens=False)["input_ids"]) for p in prompts]
        return {
            "accuracy": float(np.mean(correct)),
            "correct": correct,
            "predictions": predictions,
            "seconds": time.perf_counter() - start,
            "prompt_tokens": float(np.mean(tokens)),
            "n_shards": len(self._voting_shards()),
        }

    def answer_loss(self, examples: Sequence[Mapping[str, Any]], shard: int | None = None) -> float:
        """Mean answer-token loss (the training objective) under a shard's final weights,
        or under the base weights when ``shard`` is None."""
        self._check_fitted()
        if shard is not None:
            check_positive_int(shard, "shard", minimum=0, maximum=self.config.n_shards - 1)
        examples = list(examples)
        if not examples:
            raise ERASEError("examples must not be empty")
        encoded = [self._encode(self._check_example(ex, need_id=False)) for ex in examples]
        self._load_weights(self._base if shard is None else self.shard_weights(shard))
        torch = self._view._torch
        total, count = 0.0, 0
        with torch.inference_mode():
            for batch in self._batches(encoded):
                input_ids, mask, labels = batch
                logits = self._view.model(input_ids=input_ids, attention_mask=mask).logits.float()
                logp = torch.log_softmax(logits[:, :-1], dim=-1)
                target = labels[:, 1:]
                keep = target != -100
                picked = logp.gather(-1, target.clamp_min(0).unsqueeze(-1)).squeeze(-1)
                total += float(-(picked * keep).sum())
                count += int(keep.sum())
        return total / max(count, 1)

    def shard_weights(self, shard: int, slice_step: int | None = None) -> dict:
        """A shard's weights (CPU tensors) after ``slice_step`` (default: the last one)."""
        self._check_fitted()
        check_positive_int(shard, "shard", minimum=0, maximum=self.config.n_shards - 1)
        step = self.config.n_slices - 1 if slice_step is None else check_positive_int(
            slice_step, "slice_step", minimum=0, maximum=self.config.n_slices - 1
        )
        return self._read(self._checkpoints[(shard, step)])

    # ------------------------------------------------------------------ validation
    def _check_open(self) -> None:
        if self._closed:
            raise ERASEError("this SISAEnsemble is closed")

    def _check_fitted(self) -> None:
        self._check_open()
        if not self.is_fitted:
            raise ERASEError("the SISAEnsemble is not fitted yet: call fit(examples) first")

    @staticmethod
    def _check_example(ex, *, need_id: bool, need_answer: bool = True) -> dict:
        if not isinstance(ex, Mapping):
            raise ERASEError(f"examples must be mappings, got {type(ex).__name__}")
        if not isinstance(ex.get("input"), str):
            raise ERASEError(f"example {ex.get('id', '')!r} has no string 'input'")
        if "choices" in ex and not (
            isinstance(ex["choices"], list) and ex["choices"] and all(isinstance(c, str) and c for c in ex["choices"])
        ):
            raise ERASEError(f"example {ex.get('id', '')!r}: 'choices' must be a non-empty list of non-empty strings")
        try:
            answer = answer_text(ex) if need_answer else "-"
        except KeyError:
            answer = None
        if not isinstance(answer, str) or not answer:
            raise ERASEError(f"example {ex.get('id', '')!r} has no answer ('correct_choice' or 'target')")
        if need_id and "id" not in ex:
            raise ERASEError("every training example needs a unique string 'id'")
        return copy.deepcopy(dict(ex))

    def _check_examples(self, examples) -> list[dict]:
        if isinstance(examples, (str, bytes, Mapping)) or not isinstance(examples, Iterable):
            raise ERASEError("examples must be a sequence of example mappings")
        out = [self._check_example(ex, need_id=True) for ex in examples]
        if not out:
            raise ERASEError("examples must not be empty")
        check_ids([ex["id"] for ex in out], len(out))
        return out

    # ------------------------------------------------------------------ model
    def _prepare_model(self) -> None:
        """Set up the working float32 model (a private copy) and the CPU copy of the base weights."""
        if self._live_view is not None:
            return
        from ..models.embeddings import _require

        torch = _require("torch")
        lm = self._source_lm
        device = self._device_arg or (lm.device if lm is not None else None)
        if lm is None:
            name, gguf = self._load_args
            lm = LocalCausalLM(name, gguf_file=gguf, device=device)
            model = lm.model  # ours alone: used in place
        else:
            model = copy.deepcopy(lm.model)  # never touch the caller's model
        device = device or lm.device
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ERASEError("device='cuda' was asked for but no CUDA device is available")
        model = model.to(device=device, dtype=torch.float32)
        model.eval()
        for p in model.parameters():
            p.requires_grad_(True)
        self._live_view = _ModelView(model, lm.tokenizer, device, torch)
        self._live_base = self._snapshot()

    @property
    def _view(self) -> _ModelView:
        """The working model (set up by :meth:`_prepare_model`)."""
        if self._live_view is None:
            raise ERASEError("the ensemble's model is not set up: fit() first (and not after close())")
        return self._live_view

    @property
    def _base(self) -> dict:
        """CPU float32 copy of the base weights (set up with the working model)."""
        if self._live_base is None:
            raise ERASEError("the ensemble's model is not set up: fit() first (and not after close())")
        return self._live_base

    def _snapshot(self) -> dict:
        return {n: p.detach().to("cpu", copy=True) for n, p in self._view.model.named_parameters()}

    def _load_weights(self, weights: Mapping) -> None:
        torch = self._view._torch
        with torch.no_grad():
            for name, p in self._view.model.named_parameters():
                p.copy_(weights[name])

    def _read(self, path: Path) -> dict:
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")

    def _write(self, shard: int, step: int, ids: list[str]) -> Path:
        """Checkpoint the working model; the file name and metadata record the ids it saw."""
        from safetensors.torch import save_file

        digest = hashlib.blake2b("\n".join(ids).encode(), digest_size=6).hexdigest()
        self._writes += 1  # a refit on the same data must not overwrite a file it is about to delete
        name = f"sisa-{self._token}-shard{shard:03d}-slice{step:03d}-{digest}-{self._writes:06d}.safetensors"
        path = self.checkpoint_dir / name
        tensors = {n: p.detach().to("cpu").contiguous() for n, p in self._view.model.named_parameters()}
        meta = {"shard": str(shard), "slice": str(step), "ids": json.dumps(ids)}
        save_file(tensors, str(path), metadata=meta)
        return path

    # ------------------------------------------------------------------ training
    def _order(self, ids: Iterable[str]) -> list[str]:
        seed = self.config.seed
        return sorted(ids, key=lambda i: (id_hash(i, seed), i))

    def _encode(self, ex: Mapping[str, Any]) -> _Encoded:
        """Prompt tokens (masked) + answer tokens + the stop string that ends an answer."""
        return encode_answer(self._view.tokenizer, self.fmt.question(ex), answer_text(ex),
                             self.fmt.stop_strings()[0], self.config.max_length)

    def _batches(self, encoded: Sequence[_Encoded]):
        torch, device = self._view._torch, self._view.device
        size = self.config.batch_size
        for k in range(0, len(encoded), size):
            input_ids, mask, labels = pad_batch(torch, encoded[k : k + size], self._view.tokenizer.pad_token_id)
            yield input_ids.to(device), mask.to(device), labels.to(device)

    def _train_shard(self, shard, first_step, ids, place, encoded, bar) -> dict[tuple[int, int], Path]:
        """Train slice steps ``first_step..n_slices-1`` of a shard (from the checkpoint before
        ``first_step``, or the base weights); returns the new checkpoints."""
        cfg = self.config
        start = self._base if first_step == 0 else self._read(self._checkpoints[(shard, first_step - 1)])
        self._load_weights(start)
        written: dict[tuple[int, int], Path] = {}
        try:
            for step in range(first_step, cfg.n_slices):
                train_ids = self._order(i for i in ids if place[i][1] <= step)
                self._train_step(shard, step, [encoded[i] for i in train_ids])
                written[(shard, step)] = self._write(shard, step, train_ids)
                bar.update(1)
        except BaseException:
            for path in written.values():
                path.unlink(missing_ok=True)
            raise
        return written

    def _fresh_optimizer(self):
        """AdamW in the state of a new one: built once per fit/forget, zeroed before every slice
        step (no state crosses a checkpoint; no gigabyte re-allocation per step). Gradients are
        zero buffers too, so every step accumulates into zeros whichever call runs it."""
        torch, model = self._view._torch, self._view.model
        if self._optimizer is None:
            cfg = self.config
            for p in model.parameters():
                p.grad = torch.zeros_like(p)
            kwargs = dict(lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
            try:  # the fused kernel: one pass over the weights (4x faster on CPU), same every run
                self._optimizer = torch.optim.AdamW(model.parameters(), fused=True, **kwargs)
            except (RuntimeError, TypeError, ValueError):
                self._optimizer = torch.optim.AdamW(model.parameters(), **kwargs)
        with torch.no_grad():
            for state in self._optimizer.state.values():
                for value in state.values():
                    if torch.is_tensor(value):
                        value.zero_()
            self._optimizer.zero_grad(set_to_none=False)
        return self._optimizer

    def _release_optimizer(self) -> None:
        self._optimizer = None
        if self._live_view is not None:
            for p in self._live_view.model.parameters():
                p.grad = None

    def _train_step(self, shard: int, step: int, data: list[_Encoded]) -> None:
        """``epochs`` passes of AdamW (fresh state) over ``data`` in a seeded order."""
        if not data:
            return
        torch, model, cfg = self._view._torch, self._view.model, self.config
        cuda = self._view.device.startswith("cuda")
        optimizer = self._fresh_optimizer()
        model.train()
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(_rng_seed(cfg.seed, shard, step) % 2**63)
                for epoch in range(cfg.epochs):
                    perm = np.random.default_rng(_rng_seed(cfg.seed, shard, step, epoch)).permutation(len(data))
                    for input_ids, mask, labels in self._batches([data[k] for k in perm]):
                        optimizer.zero_grad(set_to_none=False)
                        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                            loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
                        loss.backward()
                        optimizer.step()
        finally:
            model.eval()

    # ------------------------------------------------------------------ aggregation
    def _prefix(self) -> str:
        return self.fmt.prefix([]) if self.fmt.task_prefix else ""

    def _voting_shards(self) -> list[int]:
        """Shards with training data left (a shard emptied by forgetting holds the base model)."""
        sizes = Counter(s for s, _ in self._place.values())
        return [s for s in range(self.config.n_shards) if sizes.get(s, 0) > 0]

    def _predict_many(self, examples: list, *, need_answer: bool = True) -> list[str]:
        """One pass per shard (its final weights loaded into the one working model) over all
        questions, then a vote per question."""
        self._check_fitted()
        examples = [self._check_example(ex, need_id=False, need_answer=need_answer) for ex in examples]
        if not examples:
            raise ERASEError("test examples must not be empty")
        shards = self._voting_shards()
        if not shards:
            raise ERASEError("every shard's training data was forgotten: there is no model left to vote")
        prefix = self._prefix()
        votes: list[list] = [[] for _ in examples]  # per example: one (answer, scores) per shard
        for shard in self._progress_iter(shards, "SISA predict"):
            self._load_weights(self._read(self._checkpoints[(shard, self.config.n_slices - 1)]))
            scorer = MultipleChoiceScorer(self._view)  # fresh per shard: no stale prefix cache
            for k, ex in enumerate(examples):
                question = self.fmt.question(ex)
                if "choices" in ex:
                    scores = scorer.score(question, [" " + c for c in ex["choices"]], prefix=prefix)
                    votes[k].append((ex["choices"][int(np.argmax(scores))], scores))
                else:
                    text = self._view.generate(
                        prefix + question, max_new_tokens=self.config.max_new_tokens, stop=self.fmt.stop_strings()
                    )
                    votes[k].append((text.strip(), None))
        return [self._vote(ex, v) for ex, v in zip(examples, votes)]

    @staticmethod
    def _vote(ex: Mapping[str, Any], votes: list) -> str:
        """Majority vote; ties go to the highest summed log-likelihood (multiple choice) or to
        the answer of the earliest shard (generative)."""
        counts = Counter(answer for answer, _ in votes)
        best = max(counts.values())
        tied = [a for a in dict.fromkeys(answer for answer, _ in votes) if counts[a] == best]
        if len(tied) == 1 or "choices" not in ex:
            return tied[0]
        total = np.sum([scores for _, scores in votes], axis=0)
        return max(tied, key=lambda a: total[ex["choices"].index(a)])

    # ------------------------------------------------------------------ progress
    def _progress(self, total: int, desc: str):
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, leave=False, disable=not self.show_progress)

    def _progress_iter(self, items, desc: str):
        from tqdm.auto import tqdm

        return tqdm(items, desc=desc, leave=False, disable=not self.show_progress)
