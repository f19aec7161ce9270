"""Mistakes raise, as in the LangChain adapter: unknown keywords (``TypeError`` naming the
keyword and the accepted ones) and ids that are not non-empty strings (one rule for every
entry point that takes ids), without a change."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from erase_core import ERASEError, ExampleIndex, InvalidIdError, UnknownArgumentError
from erase_llamaindex import ERASERetriever, ERASEVectorStore

from .helpers import HashingEmbedding, example_nodes


def _retriever(embed):
    return ERASERetriever.from_defaults(nodes=example_nodes(8), embed_model=embed, similarity_top_k=2)


def _store(embed):
    store = ERASEVectorStore.from_defaults()
    nodes = example_nodes(8)
    for n in nodes:
        n.embedding = embed.get_text_embedding(n.get_content())
    store.add(nodes)
    return store


MISSPELT = {
    "retriever()": (lambda e: ERASERetriever(ExampleIndex(2), e, similarity_topk=2), "similarity_topk",
                    "similarity_top_k"),
    "retriever.from_defaults": (lambda e: ERASERetriever.from_defaults(embed_model=e, stratgy="erase"), "stratgy",
                                "strategy"),
    "retriever.from_persist_dir": (lambda e: ERASERetriever.from_persist_dir("nowhere", e, filtres=None), "filtres",
                                   "filters"),
    "retriever.delete_ref_doc": (lambda e: _retriever(e).delete_ref_doc("doc", delete_from_docstor=True),
                                 "delete_from_docstor", "delete_from_docstore"),
    "store()": (lambda e: ERASEVectorStore(indx=None), "indx", "index"),
    "store.from_defaults": (lambda e: ERASEVectorStore.from_defaults(stratgy="erase"), "stratgy", "strategy"),
    "store.add": (lambda e: _store(e).add([], node_idz=["x"]), "node_idz", "nodes"),
    "store.delete": (lambda e: _store(e).delete("doc", cascade=True), "cascade", "ref_doc_id"),
    "store.delete_nodes": (lambda e: _store(e).delete_nodes(["node-000"], filter=None), "filter", "filters"),
    "store.adelete_nodes": (lambda e: asyncio.run(_store(e).adelete_nodes(["node-000"], filter=None)), "filter",
                            "filters"),
}


@pytest.mark.parametrize("name", sorted(MISSPELT))
def test_an_unknown_keyword_raises_naming_it_and_the_accepted_ones(embed, name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    call, bad, good = MISSPELT[name]
    with pytest.raises(UnknownArgumentError) as info:
        call(embed)
    assert isinstance(info.value, TypeError) and isinstance(info.value, ERASEError)
    message = str(info.value)
    assert repr(bad) in message and "accepted:" in message and good in message.split("accepted:")[1]
    assert not list(tmp_path.iterdir())


BAD_IDS = [7, b"node-000", "", 1.5]

ENTRY_POINTS = {
    "retriever.forget": (_retriever, lambda r, bad: r.forget(["node-000", bad])),
    "retriever.forget one": (_retriever, lambda r, bad: r.forget(bad)),
    "retriever.forget missing=ignore": (_retriever, lambda r, bad: r.forget([bad], missing="ignore")),
    "retriever.aforget": (_retriever, lambda r, bad: asyncio.run(r.aforget([bad]))),
    "retriever.get_node": (_retriever, lambda r, bad: r.get_node(bad)),
    "store.delete_nodes": (_store, lambda s, bad: s.delete_nodes(["node-000", bad])),
    "store.adelete_nodes": (_store, lambda s, bad: asyncio.run(s.adelete_nodes([bad]))),
    "store.get_nodes": (_store, lambda s, bad: s.get_nodes([bad])),
}


@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_an_id_is_a_non_empty_string_everywhere(embed, name, bad):
    make, call = ENTRY_POINTS[name]
    obj = make(embed)
    before = obj.index.digest()
    with pytest.raises(InvalidIdError, match="must be a non-empty string") as info:
        call(obj, bad)
    assert isinstance(info.value, TypeError) and repr(bad) in str(info.value)
    assert obj.index.digest() == before and obj.index.verify()


def test_the_core_applies_the_same_rule():
    index = ExampleIndex(2, strategy="similarity")
    X = np.eye(3)
    for call in (lambda: index.add(X, [{}, {}, {}], ids=["a", 7, "c"]),
                 lambda: index.upsert(X, [{}, {}, {}], ["a", "", "c"]),
                 lambda: index.forget([7]), lambda: index.get(7), lambda: index.vector(b"a"),
                 lambda: index.attributes("")):
        with pytest.raises(InvalidIdError, match="must be a non-empty string"):
            call()
    assert len(index) == 0
