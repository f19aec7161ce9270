"""Multiple-choice scoring by log-likelihood, reusing key/value caches.

A prompt is scored in up to three segments: a shared ``prefix`` (the few-shot examples),
the ``prompt`` proper (the question) and each answer option. The prefix's key/value cache
is kept across calls, keyed by ``prefix_key`` (e.g. a selector's fingerprint) and dropped
when the key changes; the prompt's cache is computed once and shared by all options, which
are scored in one batch. Segments are tokenized separately and concatenated, with and
without reuse alike, so reuse changes the cost, not the scores.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import threading
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .._validation import ERASEError
from .llm import LocalCausalLM


def _cache_argument(model) -> str:
    """The forward() argument that takes a KV cache: ``cache`` in transformers >= 5.2x
    (``past_key_values`` is deprecated there and warns), ``past_key_values`` before."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _returned_cache(out):
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


@dataclass
class ScorerStats:
    """Counters: how many prefix caches were built or reused, and tokens run through the model."""

    prefix_builds: int = 0
    prefix_hits: int = 0
    tokens_processed: int = 0


class MultipleChoiceScorer:
    """Rank answer options by their log-likelihood under a local causal LM."""

    def __init__(self, lm: LocalCausalLM, *, reuse_prefix: bool = True):
        self.lm = lm
        self.reuse_prefix = reuse_prefix
        self.stats = ScorerStats()
        self._prefix_key: str | None = None
        self._prefix_cache: tuple[Any, int, Any] | None = None  # (KV cache, prefix length, last logits)
        self._prefix_len = 0
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ public
    def score(self, prompt: str, options: Sequence[str], *, prefix: str = "", prefix_key: str | None = None) -> np.ndarray:
        """Sum of token log-probabilities of each option after ``prefix + prompt``."""
        options = list(options)
        if not options:
            raise ERASEError("options must not be empty")
        if not all(isinstance(o, str) and o for o in options):
            raise ERASEError("options must be non-empty strings")
        torch = self.lm._torch
        with self._lock, torch.inference_mode():
            cache, past_len, last_logits = self._prefix_state(prefix, prefix_key)
            prompt_ids = self._ids(prompt)
            if prompt_ids:
                out = self._forward(prompt_ids, cache, past_len)
                cache, past_len, last_logits = _returned_cache(out), past_len + len(prompt_ids), out.logits[0, -1]
            if last_logits is None:
                raise ERASEError("prefix and prompt are both empty: there is nothing to condition on")
            return self._score_options(options, cache, past_len, last_logits)

    def choose(self, prompt: str, options: Sequence[str], **kwargs) -> int:
        """Index of the most likely option (first on ties)."""
        return int(np.argmax(self.score(prompt, options, **kwargs)))

    def clear(self) -> None:
        """Drop the cached prefix (e.g. after the few-shot set changed)."""
        with self._lock:
            self._prefix_key, self._prefix_cache, self._prefix_len = None, None, 0

    # ------------------------------------------------------------------ internals
    def _ids(self, text: str) -> list[int]:
        return self.lm.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    def _forward(self, ids: list[int], cache, past_len: int):
        torch = self.lm._torch
        input_ids = torch.tensor([ids], device=self.lm.device)
        mask = torch.ones((1, past_len + len(ids)), dtype=torch.long, device=self.lm.device)
        self.stats.tokens_processed += len(ids)
        return self.lm.model(input_ids=input_ids, attention_mask=mask, use_cache=True, **{_cache_argument(self.lm.model): cache})

    def _prefix_state(self, prefix: str, prefix_key: str | None):
        """(cache, length, last logits) after the prefix; a private copy the caller may extend."""
        if not prefix:
            return None, 0, None
        key = prefix_key or hashlib.sha256(prefix.encode()).hexdigest()
        if self.reuse_prefix and key == self._prefix_key and self._prefix_cache is not None:
            self.stats.prefix_hits += 1
            cache, length, logits = self._prefix_cache
            return copy.deepcopy(cache), length, logits
        ids = self._ids(prefix)
        out = self._forward(ids, None, 0)
        self.stats.prefix_builds += 1
        state = (_returned_cache(out), len(ids), out.logits[0, -1].clone())
        if self.reuse_prefix:
            self._prefix_key, self._prefix_cache = key, (copy.deepcopy(state[0]), state[1], state[2])
        return state

    def _score_options(self, options: list[str], cache, past_len: int, last_logits) -> np.ndarray:
        torch = self.lm._torch
        option_ids = [self._ids(o) for o in options]
        width = max(len(o) for o in option_ids)
        pad = self.lm.tokenizer.pad_token_id
        batch = torch.full((len(options), width), pad, dtype=torch.long, device=self.lm.device)
        mask = torch.zeros((len(options), past_len + width), dtype=torch.long, device=self.lm.device)
        mask[:, :past_len] = 1
        for i, ids in enumerate(option_ids):
            batch[i, : len(ids)] = torch.tensor(ids, device=self.lm.device)
            mask[i, past_len : past_len + len(ids)] = 1
        if cache is not None:
            cache.batch_repeat_interleave(len(options))
        self.stats.tokens_processed += int(sum(len(o) for o in option_ids))
        out = self.lm.model(input_ids=batch, attention_mask=mask, use_cache=cache is not None,
                            **{_cache_argument(self.lm.model): cache})
        logp = torch.log_softmax(out.logits.float(), dim=-1)
        first = torch.log_softmax(last_logits.float(), dim=-1)
        scores = []
        for i, ids in enumerate(option_ids):
            total = float(first[ids[0]])
            for pos in range(1, len(ids)):
                total += float(logp[i, pos - 1, ids[pos]])
            scores.append(total)
        return np.array(scores)
