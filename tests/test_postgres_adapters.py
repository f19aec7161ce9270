"""The framework adapters take a PostgreSQL DSN wherever they take a store path: a second
construction on the same DSN opens the pool the first one made (it does not start a new one),
and a delete through one handle is gone for the other, equal to a fresh build."""

from __future__ import annotations

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding

from erase_core import ExampleIndex

pytest.importorskip("psycopg", reason='psycopg is not installed (pip install "erase-icl[postgres]")')

TEXTS = [f"example {i}: the parcel to district {i % 5} left on day {i}" for i in range(30)]
IDS = [f"doc-{i}" for i in range(30)]


def test_langchain_vector_store_reopens_a_dsn_and_sees_the_other_handles_delete(pg_dsn):
    from erase_langchain import ERASEVectorStore

    embedding = DeterministicFakeEmbedding(size=12)
    first = ERASEVectorStore(embedding, persist_path=pg_dsn, k=3, seed=4)
    first.add_texts(TEXTS, ids=IDS)
    second = ERASEVectorStore(embedding, persist_path=pg_dsn, k=3, seed=4)
    assert len(second.index) == len(TEXTS)  # opened, not created anew
    first.delete(["doc-3", "doc-17"])
    hits = second.similarity_search(TEXTS[3], k=30)
    assert {d.id for d in hits} == set(IDS) - {"doc-3", "doc-17"}

    fresh = ERASEVectorStore(embedding, k=3, seed=4)
    keep = [i for i in range(30) if IDS[i] not in ("doc-3", "doc-17")]
    fresh.add_texts([TEXTS[i] for i in keep], ids=[IDS[i] for i in keep])
    assert second.index.digest() == fresh.index.digest()
    first.index.close()
    second.index.close()


def test_llamaindex_vector_store_from_defaults_reopens_a_dsn(pg_dsn):
    from erase_llamaindex import ERASEVectorStore

    made = ERASEVectorStore.from_defaults(pg_dsn, k=2, seed=1)
    import numpy as np

    made.index.add(np.eye(4, dtype=np.float32), [{"text": f"t{i}"} for i in range(4)], ids=[f"n{i}" for i in range(4)])
    again = ERASEVectorStore.from_defaults(pg_dsn, k=2, seed=1)
    assert sorted(again.index.ids) == ["n0", "n1", "n2", "n3"]
    with ExampleIndex.open(pg_dsn) as plain:
        assert plain.digest() == again.index.digest()
    made.index.close()
    again.index.close()
