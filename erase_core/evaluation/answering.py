"""Answer BIG-bench questions with a local causal LM, given each question's prompt prefix.

Multiple-choice tasks are graded by log-likelihood (BIG-bench's ``multiple_choice_grade``:
the option with the highest summed token log-probability after the prompt); generative
tasks by greedy generation and exact string match (``exact_str_match``).

Two back ends give the same tokens to the same model (segments tokenized separately and
concatenated, as :class:`~erase_core.models.MultipleChoiceScorer` does):

- ``cached`` (default on CPU): one question at a time, the prefix's KV cache reused while
  the prefix stays the same (ERASE's fixed prefix is paid once);
- ``batched`` (default on CUDA): many (prefix, question, option) sequences per forward pass,
  no cache; the GPU's throughput matters more than the repeated prefix.

Answers are memoised by (prefix, question): re-evaluating after a forget that left a
prompt unchanged costs nothing, and the prompt being identical, so is the answer.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from .._validation import ERASEError
from .prompts import TaskFormat, is_correct


@dataclass(frozen=True)
class Answer:
    """One graded answer and what it cost (tokens run through the model for it)."""

    answer: str
    correct: bool
    tokens: int


class Answerer:
    """Grades questions under a :class:`TaskFormat` with a loaded ``LocalCausalLM``."""

    def __init__(self, lm, fmt: TaskFormat, *, backend: str | None = None, batch_size: int = 32,
                 max_new_tokens: int = 24):
        from ..models.scoring import MultipleChoiceScorer

        if backend is None:
            backend = "batched" if str(lm.device).startswith("cuda") else "cached"
        if backend not in ("cached", "batched"):
            raise ERASEError(f"backend must be 'cached' or 'batched', got {backend!r}")
        self.lm, self.fmt, self.backend = lm, fmt, backend
        self.batch_size, self.max_new_tokens = int(batch_size), int(max_new_tokens)
        self.scorer = MultipleChoiceScorer(lm)
        self._memo: dict[str, Answer] = {}
        self.seconds = 0.0

    def answer_all(self, prefixes: Sequence[str], examples: Sequence[Mapping[str, Any]]) -> list[Answer]:
        """Grade ``examples[i]`` after ``prefixes[i]`` (the shots); memoised by prompt."""
        if len(prefixes) != len(examples):
            raise ERASEError("need one prefix per example")
        keys = [self._key(p, ex) for p, ex in zip(prefixes, examples)]
        todo = [i for i, key in enumerate(keys) if key not in self._memo]
        todo = list({keys[i]: i for i in todo}.values())
        start = time.perf_counter()
        if todo:
            todo_prefixes = [prefixes[i] for i in todo]
            todo_examples = [examples[i] for i in todo]
            if all("choices" in ex for ex in todo_examples):
                answers = (self._choose_batched if self.backend == "batched" else self._choose_cached)(todo_prefixes, todo_examples)
            else:
                answers = (self._generate_batched if self.backend == "batched" else self._generate_cached)(todo_prefixes, todo_examples)
            for i, answer in zip(todo, answers):
                self._memo[keys[i]] = answer
        self.seconds += time.perf_counter() - start
        return [self._memo[key] for key in keys]

    # ------------------------------------------------------------------ internals
    def _key(self, prefix: str, example: Mapping[str, Any]) -> str:
        h = hashlib.sha256()
        for part in (prefix, self.fmt.question(example), *example.get("choices", [])):
            h.update(part.encode())
            h.update(b"\x00")
        return h.hexdigest()

    def _ids(self, text: str) -> list[int]:
        return self.lm.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    def _choose_cached(self, prefixes, examples) -> list[Answer]:
        out = []
        for prefix, ex in zip(prefixes, examples):
            before = self.scorer.stats.tokens_processed
            options = [" " + c for c in ex["choices"]]
            key = hashlib.sha256(prefix.encode()).hexdigest() if prefix else None
            choice = ex["choices"][int(np.argmax(self.scorer.score(self.fmt.question(ex), options,
                                                                   prefix=prefix, prefix_key=key)))]
            out.append(Answer(choice, is_correct(choice, ex), self.scorer.stats.tokens_processed - before))
        return out

    def _choose_batched(self, prefixes, examples) -> list[Answer]:
        torch = self.lm._torch
        rows: list[tuple[int, int, list[int], list[int]]] = []  # (question, option index, context ids, option ids)
        prefix_ids: dict[str, list[int]] = {}
        for q, (prefix, ex) in enumerate(zip(prefixes, examples)):
            if prefix not in prefix_ids:
                prefix_ids[prefix] = self._ids(prefix)
            context = prefix_ids[prefix] + self._ids(self.fmt.question(ex))
            if not context:
                raise ERASEError("prefix and prompt are both empty: there is nothing to condition on")
            for o, choice in enumerate(ex["choices"]):
                rows.append((q, o, context, self._ids(" " + choice)))
        scores = [np.full(len(ex["choices"]), -np.inf) for ex in examples]
        tokens = [0] * len(examples)
        order = sorted(range(len(rows)), key=lambda r: len(rows[r][2]) + len(rows[r][3]))
        pad = self.lm.tokenizer.pad_token_id
        with torch.inference_mode():
            for b in range(0, len(order), self.batch_size):
                batch = [rows[r] for r in order[b : b + self.batch_size]]
                width = max(len(c) + len(o) for _, _, c, o in batch)
                ids = torch.full((len(batch), width), pad, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for i, (_, _, c, opt) in enumerate(batch):
                    seq = c + opt
                    ids[i, : len(seq)] = torch.tensor(seq)
                    mask[i, : len(seq)] = 1
                logits = self.lm.model(input_ids=ids.to(self.lm.device), attention_mask=mask.to(self.lm.device)).logits
                # gather the option tokens' log-probabilities on the device; only those come back
                rows_i: list[int] = []
                cols: list[int] = []
                toks: list[int] = []
                for i, (_, _, c, opt) in enumerate(batch):
                    rows_i += [i] * len(opt)
                    cols += range(len(c) - 1, len(c) + len(opt) - 1)
                    toks += opt
                picked = logits[torch.tensor(rows_i), torch.tensor(cols)].float()
                logp = (torch.log_softmax(picked, dim=-1).gather(1, torch.tensor(toks, device=picked.device)[:, None])[:, 0]
                        .double().cpu().numpy())
                at = 0
                for i, (q, o, c, opt) in enumerate(batch):
                    scores[q][o] = float(logp[at : at + len(opt)].sum())
                    at += len(opt)
                    tokens[q] += len(c) + len(opt)
        out = []
        for q, ex in enumerate(examples):
            choice = ex["choices"][int(np.argmax(scores[q]))]
            out.append(Answer(choice, is_correct(choice, ex), tokens[q]))
        return out

    def _cut(self, text: str) -> str:
        stops = self.fmt.stop_strings()
        cut = min((text.find(s) for s in stops if s in text), default=-1)
        return (text[:cut] if cut >= 0 else text).strip()

    def _generate_cached(self, prefixes, examples) -> list[Answer]:
        out = []
        for prefix, ex in zip(prefixes, examples):
            prompt = prefix + self.fmt.question(ex)
            text = self._cut(self.lm.generate(prompt, max_new_tokens=self.max_new_tokens, stop=self.fmt.stop_strings()))
            out.append(Answer(text, is_correct(text, ex), len(self._ids(prompt))))
        return out

    def _generate_batched(self, prefixes, examples) -> list[Answer]:
        torch = self.lm._torch
        tok = self.lm.tokenizer
        prompts = [self._ids(p) + self._ids(self.fmt.question(ex)) for p, ex in zip(prefixes, examples)]
        texts = [""] * len(prompts)
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        pad = tok.pad_token_id
        with torch.inference_mode():
            for b in range(0, len(order), self.batch_size):
                batch = order[b : b + self.batch_size]
                width = max(len(prompts[i]) for i in batch)
                ids = torch.full((len(batch), width), pad, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, i in enumerate(batch):  # left padding for generation
                    ids[row, width - len(prompts[i]) :] = torch.tensor(prompts[i])
                    mask[row, width - len(prompts[i]) :] = 1
                gen = self.lm.model.generate(input_ids=ids.to(self.lm.device), attention_mask=mask.to(self.lm.device),
                                             max_new_tokens=self.max_new_tokens, do_sample=False, pad_token_id=pad)
                for row, i in enumerate(batch):
                    texts[i] = tok.decode(gen[row, width:], skip_special_tokens=True)
        return [Answer(self._cut(t), is_correct(self._cut(t), ex), len(p)) for t, ex, p in zip(texts, examples, prompts)]


def normalized_score(accuracy: float, low: float, high: float = 1.0) -> float:
    """BIG-bench's normalized score: 100·(raw − low)/(high − low)."""
    if high <= low:
        raise ERASEError(f"high ({high}) must exceed low ({low})")
    return 100.0 * (accuracy - low) / (high - low)


def random_baseline(examples: Sequence[Mapping[str, Any]]) -> float:
    """The ``low`` of BIG-bench's normalization for these questions: the expected grade of a
    uniform random choice for multiple choice (correct choices / choices, averaged), 0 for
    exact string match."""
    if not examples:
        raise ERASEError("no examples")
    if all("choices" in ex for ex in examples):
        return float(np.mean([len(ex["correct_choices"]) / len(ex["choices"]) for ex in examples]))
    return 0.0
