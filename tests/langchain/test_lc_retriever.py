"""ERASERetriever: langchain-tests' standard retriever suite (both strategies), ids, forget,
persistence."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("langchain_core")
pytest.importorskip("langchain_tests")

from langchain_core.documents import Document  # noqa: E402
from langchain_tests.integration_tests import RetrieversIntegrationTests  # noqa: E402

from erase_core import ERASEError  # noqa: E402
from erase_langchain import ERASERetriever  # noqa: E402
from lc_helpers import EXAMPLES, IDS, QUERIES, NGramEmbeddings  # noqa: E402

DOCS = [Document(page_content=ex["input"], metadata={"topic": ex["output"], "n": n}) for n, ex in enumerate(EXAMPLES)]


class TestERASERetrieverStandard(RetrieversIntegrationTests):
    """Default strategy ("erase": the fixed set, one document per cluster)."""

    @property
    def retriever_constructor(self) -> type[ERASERetriever]:
        return ERASERetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"embeddings": NGramEmbeddings(), "documents": DOCS, "ids": IDS}

    @property
    def retriever_query_example(self) -> str:
        return "Will it rain tomorrow?"


class TestERASERetrieverSimilarityStandard(RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> type[ERASERetriever]:
        return ERASERetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"embeddings": NGramEmbeddings(), "documents": DOCS, "strategy": "similarity", "k": 5}

    @property
    def retriever_query_example(self) -> str:
        return "Will it rain tomorrow?"


def test_documents_in_documents_out():
    r = ERASERetriever(embeddings=NGramEmbeddings(), documents=DOCS, ids=IDS, k=3, strategy="similarity")
    docs = r.invoke("Heavy snow and rain tonight")
    assert [d.metadata["topic"] for d in docs][0] == "weather"
    assert all(d.id in IDS and d.page_content == EXAMPLES[IDS.index(d.id)]["input"] for d in docs)
    assert r.ids == sorted(IDS)
    assert len(r.invoke("x", k=20)) == len(DOCS)  # similarity: what exists


def test_document_ids_are_used():
    docs = [Document(id=f"d{n}", page_content=d.page_content, metadata=d.metadata) for n, d in enumerate(DOCS)]
    r = ERASERetriever.from_documents(docs, NGramEmbeddings(), k=2)
    assert set(r.ids) == {f"d{n}" for n in range(len(docs))}
    t = ERASERetriever.from_texts(["a b", "c d", "e f"], NGramEmbeddings(), [{"x": 1}, {"x": 2}, {"x": 3}], ids=["a", "c", "e"], k=2)
    assert t.ids == ["a", "c", "e"] and len(t.invoke("q")) == 2
    mixed = ERASERetriever(embeddings=NGramEmbeddings(), documents=[docs[0], DOCS[1]])  # as a vector store:
    assert "d0" in mixed.ids and len(mixed.ids) == 2  # a document without an id gets a new UUID
    assert r.add_documents([Document(page_content="new text")], ids=["new"]) == ["new"]


def test_erase_is_fixed_and_k_is_bounded():
    emb = NGramEmbeddings()
    r = ERASERetriever(embeddings=emb, documents=DOCS, ids=IDS, k=4, strategy="erase")
    emb.calls["query"] = 0
    first = r.invoke(QUERIES[0])
    assert all(r.invoke(q) == first for q in QUERIES) and emb.calls["query"] == 0
    assert r.invoke("x", k=2) == first[:2]
    with pytest.raises(ERASEError, match="at most"):
        r.invoke("x", k=5)


@pytest.mark.parametrize("strategy", ["erase", "similarity"])
def test_forget(strategy):
    r = ERASERetriever(embeddings=NGramEmbeddings(), documents=DOCS, ids=IDS, k=3, strategy=strategy, seed=2)
    gone = sorted({d.id for q in QUERIES for d in r.invoke(q)})[:2]
    receipt = r.forget(gone)
    assert set(receipt.ids) == set(gone)
    assert not {d.id for q in QUERIES for d in r.invoke(q, k=3)} & set(gone)
    keep = [n for n, i in enumerate(IDS) if i not in gone]
    fresh = ERASERetriever(embeddings=NGramEmbeddings(), documents=[DOCS[n] for n in keep], ids=[IDS[n] for n in keep],
                           k=3, strategy=strategy, seed=2)
    assert r.digest() == fresh.digest() and r.verify()
    if strategy == "erase":
        assert r.fingerprint == fresh.fingerprint


async def test_async_retriever_and_forget():
    r = ERASERetriever(embeddings=NGramEmbeddings(), k=2, strategy="similarity")
    assert await r.ainvoke("anything") == []
    ids = await r.aadd_documents(DOCS[:6], ids=IDS[:6])
    assert ids == IDS[:6]
    top = await r.ainvoke("striker goal final", k=1)
    assert top[0].id == "ex00"
    await r.aforget(["ex00"])
    assert (await r.ainvoke("striker goal final", k=1))[0].id != "ex00"


def test_persistence(tmp_path):
    path = tmp_path / "docs.sqlite"
    r = ERASERetriever(embeddings=NGramEmbeddings(), documents=DOCS, ids=IDS, k=3, persist_path=path)
    expected, digest = r.invoke("x"), r.digest()
    r.close()
    emb = NGramEmbeddings()
    again = ERASERetriever.open(path, emb)
    assert again.k == 3 and again.digest() == digest and again.invoke("x") == expected
    assert emb.calls["texts"] == 0
    again.close()
