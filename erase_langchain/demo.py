"""`erase demo`: the product end to end on a real BIG-bench task with local models.

1. load the task (``--data-dir``, ``ERASE_BIGBENCH_DIR`` or the tasks bundled with erase_core);
2. split it into an example pool and test questions (seeded);
3. build an ``ERASEExampleSelector`` and a LangChain few-shot chain with the local LLM and
   answer the test questions: ERASE k-shot beside zero-shot, random k-shot and similarity
   k-shot;
4. forget examples (one of them in the selected set), print the receipts and the new
   prompt, and show ``verify()`` passing;
5. print what each forget cost beside a full rebuild of the index on the remaining pool.

Multiple-choice tasks are answered by ranking the options by log-likelihood (BIG-bench's
``multiple_choice_grade``), reusing the few-shot prefix's KV cache keyed by the selector's
fingerprint; other tasks by greedy generation through ``LocalLLM`` and exact match.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from langchain_core.embeddings import Embeddings
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import FewShotPromptTemplate, PromptTemplate
from langchain_core.runnables import RunnableLambda
from tqdm.auto import tqdm

from erase_core.evaluation.bigbench import load_task
from erase_core.evaluation.prompts import TaskFormat as CoreTaskFormat
from erase_core.evaluation.prompts import answer_text as _answer_text
from erase_core.evaluation.prompts import is_correct as _is_correct
from erase_core.models.llm import LocalCausalLM
from erase_core.models.scoring import MultipleChoiceScorer

from .embeddings import HFEmbeddings
from .example_selector import ERASEExampleSelector
from .llms import LocalLLM

DEFAULT_TASK = "intent_recognition"


class TaskFormat(CoreTaskFormat):
    """BIG-bench's prompt format (:class:`erase_core.evaluation.prompts.TaskFormat`) as LangChain templates."""

    def example_prompt(self) -> PromptTemplate:
        return PromptTemplate.from_template(
            _escape(self.input_prefix) + "{input}" + _escape(self.output_prefix) + "{target}", template_format="f-string"
        )

    def suffix(self) -> str:
        return _escape(self.input_prefix) + "{input}" + _escape(self.answer_cue)


def _escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


@dataclass
class Condition:
    """One way of choosing the k shots (the chain that answers a test example), and its results."""

    name: str
    chain_for: Callable[[dict], Any]
    correct: list[bool] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def accuracy(self) -> float:
        return sum(self.correct) / len(self.correct) if self.correct else float("nan")


class FewShotAnswerer:
    """A LangChain chain: few-shot prompt → local LLM → answer (choice or generated text)."""

    def __init__(self, fmt: TaskFormat, lm: LocalCausalLM, scorer: MultipleChoiceScorer):
        self.fmt, self.lm, self.scorer = fmt, lm, scorer
        self.llm = LocalLLM(model=lm, max_new_tokens=24)

    def prompt_for(self, selector=None, shots: list[dict] | None = None) -> FewShotPromptTemplate:
        common = dict(
            example_prompt=self.fmt.example_prompt(), prefix=_escape(self.fmt.task_prefix).rstrip("\n"),
            suffix=self.fmt.suffix(), input_variables=["input"], example_separator=self.fmt.separator,
        )
        if selector is not None:
            return FewShotPromptTemplate(example_selector=selector, **common)
        return FewShotPromptTemplate(examples=shots or [], **common)

    def chain(self, prompt: FewShotPromptTemplate, *, multiple_choice: bool, fingerprint: Callable[[], str] | None):
        question_part = self.fmt.suffix()

        def pick(inputs: dict[str, Any]) -> str:
            text = prompt.format(input=inputs["input"])
            question = question_part.format(input=inputs["input"])
            prefix = text[: len(text) - len(question)] if text.endswith(question) else ""
            question = question if prefix else text
            options = [" " + c for c in inputs["choices"]]
            key = fingerprint() if fingerprint else None
            return inputs["choices"][self.scorer.choose(question, options, prefix=prefix, prefix_key=key)]

        if multiple_choice:
            return RunnableLambda(pick)
        return (
            RunnableLambda(lambda inputs: {"input": inputs["input"]})
            | prompt
            | self.llm.bind(stop=[self.fmt.separator.strip("\n") or "\n", "\n"])
            | StrOutputParser()
            | RunnableLambda(str.strip)
        )


def _evaluate(condition: Condition, test: list[dict]) -> None:
    start = time.perf_counter()
    for example in tqdm(test, desc=f"{condition.name:>16}", unit="q", leave=False):
        inputs = {"input": example["input"], "choices": example.get("choices", [])}
        condition.correct.append(_is_correct(condition.chain_for(example).invoke(inputs), example))
    condition.seconds = time.perf_counter() - start


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="erase demo", description=__doc__.splitlines()[0])
    parser.add_argument("--task", default=DEFAULT_TASK, help=f"BIG-bench task (default {DEFAULT_TASK})")
    parser.add_argument("--data-dir", default=None, help="folder of <task>/task.json (default: $ERASE_BIGBENCH_DIR, else the bundled tasks)")
    parser.add_argument("--k", type=int, default=4, help="shots per prompt (default 4)")
    parser.add_argument("--n-test", type=int, default=150, help="test questions (default 150)")
    parser.add_argument("--n-pool", type=int, default=None, help="pool size (default: the rest of the task)")
    parser.add_argument("--forget", type=int, default=3, help="examples to forget, one of them selected (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--skip-baselines", action="store_true", help="only evaluate the ERASE selector")
    parser.add_argument("--json", default=None, help="also write the summary as JSON to this file")
    return parser


def run(args: argparse.Namespace) -> dict:
    t0 = time.perf_counter()
    print(f"== ERASE demo: task {args.task}, k={args.k}, seed={args.seed}")
    task = load_task(args.task, args.data_dir)
    n_test = min(args.n_test, len(task) - args.k)
    n_pool = args.n_pool or len(task) - n_test
    pool, test = task.split(n_pool, n_test, seed=args.seed)
    multiple_choice = task.is_multiple_choice
    fmt = TaskFormat.of(task)
    print(f"   {len(task)} examples: pool {len(pool)}, test {len(test)}; "
          f"{'multiple choice, ranked by log-likelihood' if multiple_choice else 'generation, exact match'}")

    examples = [{"id": f"{args.task}-{ex['idx']}", "input": ex["input"], "target": _answer_text(ex)} for ex in pool]
    print("-- loading the embedder (all-MiniLM-L6-v2) and the LLM (SmolLM2-135M-Instruct)")
    embeddings = _MemoizedEmbeddings(HFEmbeddings(device=args.device))
    lm = LocalCausalLM(device=args.device)
    scorer = MultipleChoiceScorer(lm)
    answerer = FewShotAnswerer(fmt, lm, scorer)

    print("-- building the selectors")
    texts = [ex["input"] for ex in examples]
    with tqdm(total=len(texts), desc="embedding the pool", unit="ex") as bar:  # ticks as batches finish
        for start in range(0, len(texts), 64):
            embeddings.embed_documents(texts[start : start + 64])
            bar.update(len(texts[start : start + 64]))
    erase_sel = ERASEExampleSelector.from_examples(examples, embeddings, k=args.k, input_keys=["input"], id_key="id",
                                                   example_keys=["input", "target"], seed=args.seed, strategy="erase")
    def chain(prompt: FewShotPromptTemplate, fingerprint: Callable[[], str] | None = None):
        return answerer.chain(prompt, multiple_choice=multiple_choice, fingerprint=fingerprint)

    erase_chain = chain(answerer.prompt_for(erase_sel), lambda: erase_sel.fingerprint)
    conditions = [Condition("ERASE k-shot", lambda ex: erase_chain)]
    if not args.skip_baselines:
        sim_sel = ERASEExampleSelector.from_examples(examples, embeddings, k=args.k, input_keys=["input"], id_key="id",
                                                     example_keys=["input", "target"], strategy="similarity")
        sim_chain = chain(answerer.prompt_for(sim_sel))
        zero_chain = chain(answerer.prompt_for(shots=[]), lambda: "zero-shot")
        rng = random.Random(args.seed)

        def random_chain(example: dict):
            shots = [{"input": e["input"], "target": e["target"]} for e in rng.sample(examples, args.k)]
            return chain(answerer.prompt_for(shots=shots))

        conditions = [
            Condition("zero-shot", lambda ex: zero_chain),
            Condition("random k-shot", random_chain),
            Condition("similarity k-shot", lambda ex: sim_chain),
            *conditions,
        ]

    print(f"-- answering {len(test)} test questions")
    for condition in tqdm(conditions, desc="conditions", unit="cond"):
        _evaluate(condition, test)
    _print_accuracy(conditions)

    print("\n-- the ERASE prompt (the same prefix for every question):\n")
    print(_indent(answerer.prompt_for(erase_sel).format(input=test[0]["input"])))

    print("\n-- forgetting examples")
    embeddings.clear()
    selected_ids = [s.id for s in erase_sel.select()]
    others = [i for i in erase_sel.ids if i not in selected_ids]
    victims = [selected_ids[0]] + random.Random(args.seed + 1).sample(others, max(0, args.forget - 1))
    receipts = []
    for victim in victims:
        receipt = erase_sel.forget([victim])
        receipts.append(receipt)
        print(f"   forgot {victim}: selected set changed={receipt.selected_changed}, recomputed={receipt.recomputed}"
              f" (from {_from(receipt.recompute_from)}), {receipt.seconds * 1e3:.2f} ms, "
              f"digest {receipt.digest_before[:12]} -> {receipt.digest_after[:12]}")
    print("\n   receipt of the first forget:")
    print(_indent(json.dumps(receipts[0].to_dict(), indent=2)))
    print("\n-- the new ERASE prompt:\n")
    new_prompt = answerer.prompt_for(erase_sel).format(input=test[0]["input"])
    print(_indent(new_prompt))
    forgotten_inputs = [ex["input"] for ex in examples if ex["id"] in victims]
    leaked = [text for text in forgotten_inputs if text in new_prompt]
    verified = erase_sel.verify()
    print(f"\n   verify(): {'PASSED' if verified else 'FAILED'} (rebuilt from scratch on the remaining "
          f"{len(erase_sel)} examples: identical digest); forgotten text in the new prompt: {len(leaked)}")

    index = erase_sel.index
    if index is None:  # validation always builds one
        raise RuntimeError("the ERASE selector has no example index")
    rebuild_times = []
    for _ in range(3):
        began = time.perf_counter()
        index.rebuilt()
        rebuild_times.append(time.perf_counter() - began)
    rebuild = statistics.median(rebuild_times)
    embed_start = time.perf_counter()
    embeddings.inner.embed_documents([ex["input"] for ex in examples[:64]])
    reembed = (time.perf_counter() - embed_start) / 64 * len(erase_sel)
    print("\n-- cost of each forget beside a full rebuild on the remaining pool")
    print(f"   {'forget':<28}{'seconds':>12}{'x rebuild':>12}")
    for victim, receipt in zip(victims, receipts):
        print(f"   {victim:<28}{receipt.seconds:>12.6f}{receipt.seconds / rebuild:>12.4f}")
    print(f"   {'index rebuild (median of 3)':<28}{rebuild:>12.6f}{1.0:>12.4f}")
    print(f"   {'+ re-embedding the pool':<28}{reembed:>12.3f}{reembed / rebuild:>12.1f}")

    after = Condition("ERASE after forget", lambda ex: erase_chain)
    _evaluate(after, test)
    print(f"\n   ERASE k-shot accuracy after the forgets: {after.accuracy:.3f} "
          f"(prefix cache: {scorer.stats.prefix_builds} builds, {scorer.stats.prefix_hits} reuses)")

    summary = {
        "task": args.task, "k": args.k, "seed": args.seed, "pool": len(pool), "test": len(test),
        "accuracy": {c.name: c.accuracy for c in conditions} | {after.name: after.accuracy},
        "seconds": {c.name: c.seconds for c in conditions},
        "forgets": [r.to_dict() for r in receipts], "rebuild_seconds": rebuild, "reembed_seconds": reembed,
        "verified": verified, "forgotten_text_in_prompt": len(leaked), "total_seconds": time.perf_counter() - t0,
    }
    print(f"\n== summary: {json.dumps({k: round(v, 3) for k, v in summary['accuracy'].items()})}; "
          f"verify {'passed' if verified else 'FAILED'}; median forget "
          f"{statistics.median(r.seconds for r in receipts) * 1e3:.2f} ms vs rebuild {rebuild * 1e3:.1f} ms; "
          f"total {summary['total_seconds']:.0f} s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(summary, fh, indent=2)
    erase_sel.close()
    return summary


class _MemoizedEmbeddings(Embeddings):
    """Embeds each distinct text once (the demo builds several selectors over one pool).

    Forgotten examples' vectors would linger here, so the demo clears it before forgetting."""

    def __init__(self, inner: Embeddings):
        self.inner = inner
        self._cache: dict[str, list[float]] = {}

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            self._cache.update(zip(missing, self.inner.embed_documents(missing)))
        return [self._cache[t] for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.inner.embed_query(text)

    def clear(self) -> None:
        self._cache.clear()


def _from(recompute_from: int | None) -> str:
    return {None: "-", -1: "seeding"}.get(recompute_from, f"iteration {recompute_from}")


def _indent(text: str) -> str:
    return "\n".join("   | " + line for line in text.splitlines())


def _print_accuracy(conditions: list[Condition]) -> None:
    print(f"\n   {'condition':<20}{'accuracy':>10}{'seconds':>10}")
    for c in conditions:
        print(f"   {c.name:<20}{c.accuracy:>10.3f}{c.seconds:>10.1f}")


def main(argv: list[str] | None = None) -> int:
    summary = run(build_parser().parse_args(argv))
    return 0 if summary["verified"] and not summary["forgotten_text_in_prompt"] else 1
