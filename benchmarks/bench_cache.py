#!/usr/bin/env python
"""``ForgettingCache`` lookup and update latency against the caches it wraps.

A ``FewShotPromptTemplate`` over a stock ``SemanticSimilarityExampleSelector`` over an
``ERASEVectorStore`` (300 examples of ~420 characters, k = 5) renders ``--prompts`` prompts of
about 2.2k characters. Five caches are timed on the same prompts: ``InMemoryCache``,
``ForgettingCache(InMemoryCache())`` watching the prompt, a SQLite cache (one table, one
row per entry, the shape of langchain-community's ``SQLiteCache``; written here since
langchain-community is not a dependency), ``ForgettingCache`` around that SQLite cache, and
``ForgettingCache(InMemoryCache())`` over a persisted store (each lookup asks the store whether
another handle forgot something). Per round every prompt is written (``update``) and then
looked up (a hit) in every cache, the caches in a rotating order (A/B interleaved); the table
gives the median microseconds per call.

    python benchmarks/bench_cache.py [--prompts 200] [--rounds 5] [--quick]

Writes ``benchmarks/results/cache.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from langchain_core.caches import RETURN_VAL_TYPE, BaseCache, InMemoryCache  # noqa: E402
from langchain_core.embeddings import Embeddings  # noqa: E402
from langchain_core.example_selectors import SemanticSimilarityExampleSelector  # noqa: E402
from langchain_core.outputs import Generation  # noqa: E402
from langchain_core.prompts import FewShotPromptTemplate, PromptTemplate  # noqa: E402

from erase_langchain import ERASEVectorStore, ForgettingCache  # noqa: E402

WORDS = ("match goal striker season oven sauce garlic simmer rain storm forecast wind laptop "
         "software update battery market shares bond rate budget invoice tenant river bridge").split()


class HashEmbeddings(Embeddings):
    """Deterministic hashed bag of words (no model download; ranking quality is irrelevant here)."""

    def _vector(self, text: str) -> list[float]:
        v = np.zeros(64)
        for w in re.findall(r"\w+", text.lower()):
            h = int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(), "little")
            v[h % 64] += 1.0 if (h >> 40) & 1 else -1.0
        n = np.linalg.norm(v)
        return (v / n if n else np.eye(64)[0]).tolist()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._vector(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._vector(text)


class SQLiteLLMCache(BaseCache):
    """A SQLite LLM cache: one row per (prompt, llm_string, generation), generations as JSON."""

    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path, check_same_thread=False)
        self.db.execute("CREATE TABLE IF NOT EXISTS cache (prompt TEXT, llm TEXT, idx INTEGER, response TEXT, "
                        "PRIMARY KEY (prompt, llm, idx))")
        self.db.commit()

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        rows = self.db.execute("SELECT response FROM cache WHERE prompt = ? AND llm = ? ORDER BY idx",
                               (prompt, llm_string)).fetchall()
        return [Generation.model_validate_json(r[0]) for r in rows] if rows else None

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO cache VALUES (?, ?, ?, ?)",
                                [(prompt, llm_string, i, g.model_dump_json()) for i, g in enumerate(return_val)])

    def clear(self, **kwargs) -> None:
        with self.db:
            self.db.execute("DELETE FROM cache")


def make_examples(n: int, rng) -> list[dict]:
    out = []
    for i in range(n):
        text = " ".join(rng.choice(WORDS, size=60))
        out.append({"input": f"case {i}: {text}", "output": str(rng.choice(WORDS))})
    return out


def few_shot(store: ERASEVectorStore) -> FewShotPromptTemplate:
    return FewShotPromptTemplate(
        example_selector=SemanticSimilarityExampleSelector(vectorstore=store, k=5, input_keys=["input"]),
        example_prompt=PromptTemplate.from_template("Text: {input}\nLabel: {output}"),
        prefix="Label each text with the word that best describes it.", suffix="Text: {input}\nLabel:",
        input_variables=["input"],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="20 prompts, 2 rounds; no results file")
    args = parser.parse_args()
    if args.quick:
        args.prompts, args.rounds = 20, 2
    rng = np.random.default_rng(0)
    examples = make_examples(300, rng)
    embeddings = HashEmbeddings()
    tmp = Path(tempfile.mkdtemp(prefix="bench_cache_"))

    def store_of(path=None) -> ERASEVectorStore:
        store = ERASEVectorStore(embeddings, persist_path=path)
        store.add_texts([e["input"] for e in examples], [dict(e) for e in examples],
                        ids=[f"e{i:03d}" for i in range(len(examples))])
        return store

    memory_prompt, stored_prompt = few_shot(store_of()), few_shot(store_of(tmp / "store.sqlite"))
    caches = {
        "InMemoryCache": InMemoryCache(),
        "ForgettingCache(InMemoryCache)": ForgettingCache(InMemoryCache()).watch(memory_prompt),
        "SQLite cache": SQLiteLLMCache(str(tmp / "plain.sqlite")),
        "ForgettingCache(SQLite cache)": ForgettingCache(SQLiteLLMCache(str(tmp / "wrapped.sqlite"))).watch(memory_prompt),
        "ForgettingCache(InMemoryCache), persisted store": ForgettingCache(InMemoryCache()).watch(stored_prompt),
    }
    queries = [" ".join(rng.choice(WORDS, size=8)) for _ in range(args.prompts)]
    prompts = [memory_prompt.format(input=q) for q in queries]  # selections: the caches see the examples
    for q in queries:
        stored_prompt.format(input=q)
    value = [Generation(text="label")]
    times: dict[str, dict[str, list[float]]] = {name: {"update": [], "lookup": []} for name in caches}
    names = list(caches)
    for r in range(args.rounds):
        for j, prompt in enumerate(prompts):
            order = names[(r + j) % len(names):] + names[: (r + j) % len(names)]
            for op in ("update", "lookup"):
                for name in order:
                    cache = caches[name]
                    t0 = time.perf_counter()
                    if op == "update":
                        cache.update(prompt, "llm", value)
                    else:
                        hit = cache.lookup(prompt, "llm")
                    times[name][op].append(time.perf_counter() - t0)
                    if op == "lookup":
                        assert hit is not None and hit[0].text == "label", name
    lengths = [len(p) for p in prompts]
    rows = {name: {op: statistics.median(v) * 1e6 for op, v in ops.items()} for name, ops in times.items()}
    base = rows["InMemoryCache"]
    print(f"{len(prompts)} prompts of {min(lengths)}-{max(lengths)} characters (median {statistics.median(lengths):.0f}), "
          f"{args.rounds} rounds; median microseconds per call")
    print(f"{'cache':<50}{'lookup':>10}{'update':>10}{'lookup / InMemory':>20}")
    for name, row in rows.items():
        print(f"{name:<50}{row['lookup']:>10.1f}{row['update']:>10.1f}{row['lookup'] / base['lookup']:>19.1f}x")
    if not args.quick:
        out = ROOT / "benchmarks" / "results" / "cache.json"
        out.write_text(json.dumps({
            "benchmark": "bench_cache.py", "prompts": len(prompts), "rounds": args.rounds,
            "prompt_chars": {"min": min(lengths), "median": statistics.median(lengths), "max": max(lengths)},
            "median_us": rows,
            "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()},
        }, indent=2) + "\n")
        print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
