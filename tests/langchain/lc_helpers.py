"""Helpers for the LangChain tests (a module, not a conftest: a second ``conftest.py``
without ``__init__.py`` would shadow ``tests/conftest.py`` for ``from conftest import ...``)."""

from __future__ import annotations

import hashlib
import re
import threading
import time

import numpy as np
from langchain_core.embeddings import Embeddings

_WORD = re.compile(r"\w+")


class NGramEmbeddings(Embeddings):
    """Deterministic embedding with real similarity: hashed bag of words and character
    trigrams (signed feature hashing with real-valued weights, blake2b so it is stable
    across processes), L2-normalised. Texts sharing words or word pieces have positive cosine similarity.

    Counts calls, so tests can check what was (not) embedded.
    """

    def __init__(self, dim: int = 512, delay: float = 0.0):
        self.dim = dim
        self.delay = delay
        self.calls = {"documents": 0, "texts": 0, "query": 0}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:  # picklable, like a real embedding client
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _vector(self, text: str) -> list[float]:
        v = np.zeros(self.dim)
        words = _WORD.findall(text.lower())
        features = [("w", w) for w in words]
        for w in words:
            padded = f"#{w}#"
            features += [("c", padded[i : i + 3]) for i in range(len(padded) - 2)]
        for kind, f in features:
            h = int.from_bytes(hashlib.blake2b(f"{kind}:{f}".encode(), digest_size=8).digest(), "little")
            # signed, real-valued weight (0.5..1.5): exact score ties between texts are unlikely
            weight = 0.5 + ((h >> 33) & 0xFFFF) / 65536.0
            v[h % self.dim] += (1.0 if (h >> 32) & 1 else -1.0) * weight * (2.0 if kind == "w" else 1.0)
        norm = np.linalg.norm(v)
        if norm == 0:  # empty text: a fixed direction, never all zeros
            v[0], norm = 1.0, 1.0
        return (v / norm).tolist()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            self.calls["documents"] += 1
            self.calls["texts"] += len(texts)
        return [self._vector(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            self.calls["query"] += 1
        return self._vector(text)


#: A small labelled pool: topic classification, five topics.
EXAMPLES = [
    {"input": "The striker scored twice in the cup final", "output": "sports"},
    {"input": "The goalkeeper saved a penalty in extra time", "output": "sports"},
    {"input": "Our team won the basketball championship", "output": "sports"},
    {"input": "The tennis match went to a fifth set", "output": "sports"},
    {"input": "Simmer the tomato sauce for twenty minutes", "output": "cooking"},
    {"input": "Knead the bread dough until it is smooth", "output": "cooking"},
    {"input": "Roast the chicken with garlic and lemon", "output": "cooking"},
    {"input": "Whisk the eggs and sugar for the cake", "output": "cooking"},
    {"input": "Heavy rain and thunderstorms are expected tonight", "output": "weather"},
    {"input": "A sunny afternoon with a light breeze", "output": "weather"},
    {"input": "Snow will fall across the northern hills", "output": "weather"},
    {"input": "Fog and cold temperatures in the morning", "output": "weather"},
    {"input": "The new laptop has a faster processor", "output": "technology"},
    {"input": "Update the phone software to fix the bug", "output": "technology"},
    {"input": "The database server crashed after the upgrade", "output": "technology"},
    {"input": "A faster wireless network for the office", "output": "technology"},
    {"input": "The central bank raised interest rates again", "output": "finance"},
    {"input": "Stock prices fell sharply on Monday", "output": "finance"},
    {"input": "Her savings account pays monthly interest", "output": "finance"},
    {"input": "The company reported record quarterly profits", "output": "finance"},
]
IDS = [f"ex{n:02d}" for n in range(len(EXAMPLES))]

QUERIES = [
    "Who scored the winning goal in the final?",
    "How long should I bake the bread?",
    "Will it rain tomorrow afternoon?",
    "My laptop software keeps crashing",
    "Are interest rates going up?",
    "The chicken sauce needs more garlic",
]


def with_ids(examples=EXAMPLES, ids=IDS, key: str = "id") -> list[dict]:
    return [{**ex, key: i} for ex, i in zip(examples, ids)]


def sqlite_llm_cache(path):
    """A small SQLite-backed LangChain ``BaseCache`` (``langchain_community``'s ``SQLiteCache`` is
    not installed here), laid out like it: one row per (prompt, llm_string, generation index),
    the prompt in the primary key. ``PRAGMA secure_delete=ON`` and a rollback journal, so rows
    that ``clear()`` deletes are overwritten on disk, as a deployment that must forget would set.
    ``prompts()`` lists the stored prompts (for tests)."""
    import json
    import sqlite3

    from langchain_core.caches import BaseCache
    from langchain_core.messages import AIMessage
    from langchain_core.outputs import ChatGeneration, Generation

    class _SQLiteLLMCache(BaseCache):
        def __init__(self, path):
            self.path = str(path)
            self._lock = threading.Lock()
            self._con = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._con.execute("PRAGMA secure_delete=ON")
            self._con.execute("PRAGMA journal_mode=DELETE")
            self._con.execute(
                "CREATE TABLE IF NOT EXISTS full_llm_cache (prompt TEXT NOT NULL, llm TEXT NOT NULL, idx INTEGER NOT NULL, "
                "response TEXT, PRIMARY KEY (prompt, llm, idx))"
            )

        @staticmethod
        def _dump(gen) -> str:
            if isinstance(gen, ChatGeneration):
                return json.dumps({"chat": gen.message.content})
            return json.dumps({"text": gen.text})

        @staticmethod
        def _load(text: str):
            data = json.loads(text)
            if "chat" in data:
                return ChatGeneration(message=AIMessage(content=data["chat"]))
            return Generation(text=data["text"])

        def lookup(self, prompt, llm_string):
            with self._lock:
                rows = self._con.execute(
                    "SELECT response FROM full_llm_cache WHERE prompt = ? AND llm = ? ORDER BY idx", (prompt, llm_string)
                ).fetchall()
            return [self._load(r[0]) for r in rows] or None

        def update(self, prompt, llm_string, return_val):
            with self._lock:
                self._con.execute("BEGIN")
                self._con.execute("DELETE FROM full_llm_cache WHERE prompt = ? AND llm = ?", (prompt, llm_string))
                self._con.executemany(
                    "INSERT INTO full_llm_cache VALUES (?, ?, ?, ?)",
                    [(prompt, llm_string, i, self._dump(g)) for i, g in enumerate(return_val)],
                )
                self._con.execute("COMMIT")

        def clear(self, **kwargs):
            with self._lock:
                self._con.execute("DELETE FROM full_llm_cache")

        def prompts(self) -> list[str]:
            with self._lock:
                return [r[0] for r in self._con.execute("SELECT DISTINCT prompt FROM full_llm_cache").fetchall()]

        def close(self):
            self._con.close()

    return _SQLiteLLMCache(path)
