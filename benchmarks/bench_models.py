"""Model-side benchmarks: HFEmbedder vs sentence-transformers, and the scorer with/without prefix reuse.

1. Embedding throughput (texts/s) of ``HFEmbedder`` beside sentence-transformers on the same
   model (all-MiniLM-L6-v2), batch size and texts, and the largest absolute difference of the
   vectors (target: ≥ 0.9× throughput, ≤ 1e-5 difference).
2. ``MultipleChoiceScorer`` throughput (questions/s) on BIG-bench intent_recognition with a fixed
   k-shot prefix (the ERASE case), with prefix KV reuse and without, and whether the choices agree.

Prints tables and writes ``benchmarks/results/models.json``.

    python benchmarks/bench_models.py [--data-dir ../shared/data/bigbench] [--texts 1024] [--questions 60]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from erase_core.evaluation.bigbench import load_task  # noqa: E402
from erase_core.models.embeddings import HFEmbedder, default_minilm_path  # noqa: E402
from erase_core.models.llm import LocalCausalLM  # noqa: E402
from erase_core.models.scoring import MultipleChoiceScorer  # noqa: E402


def bench_embeddings(texts: list[str], batch_size: int, repeats: int) -> dict:
    from sentence_transformers import SentenceTransformer

    ours = HFEmbedder(batch_size=batch_size, device="cpu")
    theirs = SentenceTransformer(default_minilm_path(), device="cpu")
    ours.embed_documents(texts[:64])
    theirs.encode(texts[:64], batch_size=batch_size)
    t_ours, t_theirs = [], []
    for _ in range(repeats):  # interleaved, so load changes hit both alike
        start = time.perf_counter()
        a = ours.embed_documents(texts)
        t_ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        b = theirs.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)
        t_theirs.append(time.perf_counter() - start)
    ours_tps, theirs_tps = len(texts) / statistics.median(t_ours), len(texts) / statistics.median(t_theirs)
    return {
        "texts": len(texts), "batch_size": batch_size, "repeats": repeats,
        "hf_embedder_texts_per_s": ours_tps, "sentence_transformers_texts_per_s": theirs_tps,
        "throughput_ratio": ours_tps / theirs_tps, "max_abs_diff": float(np.abs(a - b).max()),
    }


def bench_scorer(data_dir: str | None, n_questions: int, k: int) -> dict:
    task = load_task("intent_recognition", data_dir)
    pool, test = task.split(len(task) - n_questions, n_questions, seed=0)
    m = task.metadata
    prefix = m.get("task_prefix", "") + "".join(
        f"{ex['input']}{m['example_output_prefix']}{ex['correct_choice']}{m['few_shot_example_separator']}" for ex in pool[:k]
    )
    lm = LocalCausalLM(device="cpu")
    out = {"questions": len(test), "k": k, "prefix_chars": len(prefix)}
    choices = {}
    for reuse in (True, False):
        scorer = MultipleChoiceScorer(lm, reuse_prefix=reuse)
        scorer.score("warm-up" + m["example_output_prefix"].rstrip(), [" a"], prefix=prefix, prefix_key="warm")
        start = time.perf_counter()
        picks = [
            scorer.choose(ex["input"] + m["example_output_prefix"].rstrip(), [" " + c for c in ex["choices"]],
                          prefix=prefix, prefix_key="fixed-k-shot")
            for ex in test
        ]
        seconds = time.perf_counter() - start
        name = "with_reuse" if reuse else "without_reuse"
        choices[name] = picks
        out[name] = {"seconds": seconds, "questions_per_s": len(test) / seconds,
                     "tokens_processed": scorer.stats.tokens_processed,
                     "accuracy": float(np.mean([p == ex["correct_index"] for p, ex in zip(picks, test)]))}
    out["speedup"] = out["with_reuse"]["questions_per_s"] / out["without_reuse"]["questions_per_s"]
    out["same_choices"] = choices["with_reuse"] == choices["without_reuse"]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_dir = os.environ.get("ERASE_BIGBENCH_DIR") or str((ROOT / ".." / "shared" / "data" / "bigbench").resolve())
    p.add_argument("--data-dir", default=default_dir)
    p.add_argument("--texts", type=int, default=1024)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--questions", type=int, default=60)
    p.add_argument("--k", type=int, default=4)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "models.json")
    args = p.parse_args()
    task = load_task("intent_recognition", args.data_dir)
    texts = [ex["input"] for ex in task.examples][: args.texts]
    emb = bench_embeddings(texts, args.batch_size, args.repeats)
    print(f"\nembeddings ({emb['texts']} intent_recognition inputs, batch {emb['batch_size']}, median of {emb['repeats']}):")
    print(f"  HFEmbedder            {emb['hf_embedder_texts_per_s']:8.1f} texts/s")
    print(f"  sentence-transformers {emb['sentence_transformers_texts_per_s']:8.1f} texts/s")
    print(f"  ratio {emb['throughput_ratio']:.2f} (target >= 0.9), max |diff| {emb['max_abs_diff']:.2e} (target <= 1e-5)")
    sc = bench_scorer(args.data_dir, args.questions, args.k)
    print(f"\nscorer ({sc['questions']} questions, 7 options, fixed {sc['k']}-shot prefix):")
    for name in ("with_reuse", "without_reuse"):
        r = sc[name]
        print(f"  {name:<14} {r['questions_per_s']:6.2f} q/s  {r['tokens_processed']:7d} tokens  accuracy {r['accuracy']:.3f}")
    print(f"  speed-up {sc['speedup']:.2f}x, same choices: {sc['same_choices']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"date": time.strftime("%Y-%m-%dT%H:%M:%S"), "cpu_count": os.cpu_count(),
                                    "embeddings": emb, "scorer": sc}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
