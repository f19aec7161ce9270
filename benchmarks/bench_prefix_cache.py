"""The real saving of a KV-cached fixed prefix (ERASE) against per-query kNN prompts.

SmolLM2-135M-Instruct (the bench's GGUF, float32 through transformers) scores intent_recognition
questions (7 options, log-likelihood) with the product's :class:`MultipleChoiceScorer`, k = 4
shots, three arms timed per question:

* ``fixed-cached``: ERASE's fixed shots; the prefix's ``past_key_values`` computed once before
  the timing and reused (copied) for every query, which then runs question + options only;
* ``knn-full``: the 4 nearest pool examples of each question (a different prefix per query),
  the whole prompt computed per query (nothing to reuse);
* ``fixed-full``: ERASE's fixed shots with reuse off, the whole prompt per query (the same
  tokens as ``knn-full`` would be for a fixed set: isolates the cache from the prompt length);

plus ``prefix-build``: one computation of the fixed prefix (what a deletion that changes the
selected set costs on top of the index update).

The machine is shared, so the arms are interleaved: each round visits the questions in a fresh
random order and, per question, the arms in a rotated order; every arm sees the same load. The
per-query time of an arm is the median over its samples; ratios are per round (sum of the
round's query times) and quoted as the median and the min–max over rounds. The tokens each
arm processes are counted (``ScorerStats.tokens_processed``), and the per-token price
``seconds ≈ a + b · tokens`` is fitted (Theil–Sen) on the full-prompt samples.

    OMP_NUM_THREADS=1 python benchmarks/bench_prefix_cache.py [--rounds 7 --questions 20]

Writes ``benchmarks/results/prefix_cache.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from erase_core.evaluation.bigbench import load_task  # noqa: E402
from erase_core.evaluation.cost import fit_inference_cost  # noqa: E402
from erase_core.evaluation.methods import make_method  # noqa: E402
from erase_core.evaluation.prompts import TaskFormat  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
ARMS = ("fixed-cached", "knn-full", "fixed-full")


def spread(values) -> dict:
    v = sorted(float(x) for x in values)
    return {"median": statistics.median(v), "min": v[0], "max": v[-1],
            "q1": float(np.percentile(v, 25)), "q3": float(np.percentile(v, 75)), "n": len(v)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_dir = os.environ.get("ERASE_BIGBENCH_DIR") or str((ROOT / ".." / "shared" / "data" / "bigbench").resolve())
    parser.add_argument("--data-dir", default=default_dir)
    parser.add_argument("--task", default="intent_recognition")
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--questions", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(RESULTS / "prefix_cache.json"))
    args = parser.parse_args()
    import torch
    from tqdm.auto import tqdm

    from erase_core.models.embeddings import HFEmbedder
    from erase_core.models.llm import LocalCausalLM
    from erase_core.models.scoring import MultipleChoiceScorer

    torch.set_num_threads(args.threads)
    task = load_task(args.task, args.data_dir)
    pool, test = task.split(len(task) - 40, 40, seed=0)
    fmt = TaskFormat.of(task)
    test = [ex for ex in test if ex.get("choices")][: args.questions]
    embedder = HFEmbedder()
    vectors = embedder.embed_documents([ex["input"] for ex in pool + test])
    pool_v, test_v = vectors[: len(pool)], vectors[len(pool):]
    ids = [str(ex["idx"]) for ex in pool]
    by_id = dict(zip(ids, pool))
    erase = make_method("erase", args.k, 0).fit(ids, pool_v)
    knn = make_method("knn", args.k, 0).fit(ids, pool_v)
    fixed_prefix = fmt.prefix([by_id[i] for i in erase.shots()])
    knn_prefixes = [fmt.prefix([by_id[i] for i in knn.shots(q)]) for q in test_v]
    erase.close()

    lm = LocalCausalLM()
    cached = MultipleChoiceScorer(lm, reuse_prefix=True)
    full = MultipleChoiceScorer(lm, reuse_prefix=False)
    options = [[" " + c for c in ex["choices"]] for ex in test]
    questions = [fmt.question(ex) for ex in test]
    fixed_key = "erase-fixed"

    def run(arm: str, q: int) -> tuple[float, int]:
        scorer = cached if arm == "fixed-cached" else full
        prefix = knn_prefixes[q] if arm == "knn-full" else fixed_prefix
        before = scorer.stats.tokens_processed
        start = time.perf_counter()
        scorer.score(questions[q], options[q], prefix=prefix, prefix_key=fixed_key if arm == "fixed-cached" else None)
        return time.perf_counter() - start, scorer.stats.tokens_processed - before

    # warm-up (first calls allocate) and the cached prefix, built once outside the timing
    for q in range(min(2, len(test))):
        for arm in ARMS:
            run(arm, q)
    samples: dict[str, list[tuple[int, int, float, int]]] = {arm: [] for arm in ARMS}  # (round, q, seconds, tokens)
    builds: list[float] = []
    rng = random.Random(0)
    bar = tqdm(total=args.rounds * len(test), desc="prefix cache", unit="question")
    for r in range(args.rounds):
        order = list(range(len(test)))
        rng.shuffle(order)
        for j, q in enumerate(order):
            arms = ARMS[j % len(ARMS):] + ARMS[: j % len(ARMS)]
            for arm in arms:
                seconds, tokens = run(arm, q)
                samples[arm].append((r, q, seconds, tokens))
            bar.update(1)
        # one prefix build per round, between the rounds' queries (the cost a changed set pays)
        builds.append(min(1e9, _time_build(lm, fixed_prefix)))
    bar.close()
    if cached.stats.prefix_builds != 1:
        raise SystemExit(f"the fixed prefix was built {cached.stats.prefix_builds} times; expected once")

    per_arm = {}
    for arm in ARMS:
        secs = [s for _, _, s, _ in samples[arm]]
        per_arm[arm] = {"seconds_per_query": spread(secs),
                        "tokens_per_query": statistics.fmean(t for _, _, _, t in samples[arm]),
                        "round_totals": [sum(s for rr, _, s, _ in samples[arm] if rr == r) for r in range(args.rounds)]}
    ratios = {}
    for a, b in (("knn-full", "fixed-cached"), ("fixed-full", "fixed-cached"), ("knn-full", "fixed-full")):
        ratios[f"{a} / {b}"] = spread(x / y for x, y in zip(per_arm[a]["round_totals"], per_arm[b]["round_totals"]))
    full_samples = samples["knn-full"] + samples["fixed-full"]
    price = fit_inference_cost([t for *_, t in full_samples], [s for _, _, s, _ in full_samples], robust=True)
    prefix_tokens = len(lm.tokenizer(fixed_prefix, add_special_tokens=False)["input_ids"])
    knn_prefix_tokens = statistics.fmean(len(lm.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in knn_prefixes)
    build = spread(builds)
    saving = per_arm["knn-full"]["seconds_per_query"]["median"] - per_arm["fixed-cached"]["seconds_per_query"]["median"]
    out = {
        "benchmark": "bench_prefix_cache", "task": args.task, "k": args.k, "questions": len(test), "rounds": args.rounds,
        "model": f"{lm.gguf_file or lm.model_name_or_path} (float32, transformers)", "device": lm.device,
        "torch_threads": torch.get_num_threads(),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_avg_at_end": os.getloadavg()},
        "conditions": "shared development VM, other jobs running; arms interleaved per question, rotated order",
        "fixed_prefix_tokens": prefix_tokens, "knn_prefix_tokens_mean": knn_prefix_tokens,
        "arms": per_arm, "ratios_per_round": ratios, "prefix_build_seconds": build,
        "price_theil_sen": {"a_seconds_per_call": price.a, "b_seconds_per_token": price.b},
        "queries_to_repay_one_prefix_build": build["median"] / saving if saving > 0 else None,
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:]),
    }
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"fixed prefix {prefix_tokens} tokens, kNN prefix {knn_prefix_tokens:.0f} tokens (mean); "
          f"{len(test)} questions x {args.rounds} rounds, {torch.get_num_threads()} thread(s)")
    print("| arm | tokens per query | seconds per query: median | q1–q3 |")
    print("|---|---:|---:|---|")
    for arm in ARMS:
        s = per_arm[arm]["seconds_per_query"]
        print(f"| {arm} | {per_arm[arm]['tokens_per_query']:.0f} | {s['median']:.4f} | {s['q1']:.4f}–{s['q3']:.4f} |")
    print(f"| prefix-build | {prefix_tokens} | {build['median']:.4f} | {build['q1']:.4f}–{build['q3']:.4f} |")
    for name, s in ratios.items():
        print(f"{name}: median {s['median']:.2f} (min {s['min']:.2f}, max {s['max']:.2f}, {s['n']} rounds)")
    print(f"price (Theil–Sen on full prompts): a = {price.a:.4g} s/call, b = {price.b:.4g} s/token")
    print(f"wrote {args.out}")


def _time_build(lm, prefix: str) -> float:
    """Seconds to compute the prefix's KV cache (``past_key_values``) once, from scratch."""
    import torch

    ids = torch.tensor([lm.tokenizer(prefix, add_special_tokens=False)["input_ids"]], device=lm.device)
    with torch.inference_mode():
        start = time.perf_counter()
        lm.model(input_ids=ids, use_cache=True)
        return time.perf_counter() - start


if __name__ == "__main__":
    main()
