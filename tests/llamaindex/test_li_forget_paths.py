"""Every forget entry point of the LlamaIndex retriever and vector store reaches the engine's
forget listeners (ExampleIndex.add_forget_listener) with exactly the ids that went (the forget
is decided once, in erase_core.forget)."""

from __future__ import annotations

import asyncio
import warnings

import numpy as np
import pytest
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters

from erase_llamaindex import ERASERetriever, ERASEVectorStore

from .helpers import HashingEmbedding

VICTIM = "n4"


def nodes(embed: HashingEmbedding | None = None) -> list[TextNode]:
    out = []
    for i in range(8):
        text = f"review {i} of item {i % 3} was {'good' if i % 2 else 'bad'}"
        out.append(TextNode(id_=f"n{i}", text=text, metadata={"lang": ["en", "de"][i % 2]},
                            relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=f"doc{i % 3}")},
                            embedding=None if embed is None else embed.vector(text)))
    return out


LANG = MetadataFilters(filters=[MetadataFilter(key="lang", value="en")])  # the victim's (n4 is "en")


def retriever_points() -> dict:
    def deprecated(r):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return r.forget_ref_doc("doc1")

    return {
        "forget(ids)": lambda r: r.forget([VICTIM]),
        "forget(one id)": lambda r: r.forget(VICTIM),
        "forget(node)": lambda r: r.forget(r.get_node(VICTIM)),
        "aforget": lambda r: asyncio.run(r.aforget([VICTIM])),
        "delete_ref_doc": lambda r: r.delete_ref_doc("doc1"),
        "adelete_ref_doc": lambda r: asyncio.run(r.adelete_ref_doc("doc1")),
        "forget_ref_doc": deprecated,
        "forget_where": lambda r: r.forget_where(LANG),
        "aforget_where": lambda r: asyncio.run(r.aforget_where({"lang": "en"})),
    }


def store_points() -> dict:
    return {
        "delete(ref_doc_id)": lambda s: s.delete("doc1"),
        "adelete": lambda s: asyncio.run(s.adelete("doc1")),
        "delete_nodes(ids)": lambda s: s.delete_nodes([VICTIM]),
        "delete_nodes(filters)": lambda s: s.delete_nodes(filters=LANG),
        "delete_nodes(ids, filters)": lambda s: s.delete_nodes([VICTIM, "n1"], filters=LANG),
        "adelete_nodes": lambda s: asyncio.run(s.adelete_nodes([VICTIM])),
        "clear": lambda s: s.clear(),
        "aclear": lambda s: asyncio.run(s.aclear()),
    }


def check(index, forget) -> None:
    heard: list[tuple[str, ...]] = []
    index.add_forget_listener(heard.append)
    before = set(index.ids)
    forget()
    gone = before - set(index.ids)
    assert VICTIM in gone
    assert [set(ids) for ids in heard] == [gone]  # one announcement, of exactly what went


@pytest.mark.parametrize("entry", list(retriever_points()))
@pytest.mark.parametrize("strategy", ["similarity", "erase"])
def test_every_retriever_forget_reaches_the_listeners(entry, strategy):
    r = ERASERetriever.from_defaults(nodes=nodes(), embed_model=HashingEmbedding(), similarity_top_k=3, strategy=strategy)
    check(r.index, lambda: retriever_points()[entry](r))


@pytest.mark.parametrize("entry", list(store_points()))
def test_every_vector_store_forget_reaches_the_listeners(entry):
    store = ERASEVectorStore.from_defaults()
    store.add(nodes(HashingEmbedding()))
    check(store.index, lambda: store_points()[entry](store))
    assert store.last_receipt is not None and VICTIM in store.last_receipt.ids


@pytest.mark.parametrize("strategy", ["erase", "similarity", "mmr"])
def test_a_pool_smaller_than_k_is_selected_whole_and_scored_as_the_core_scores(strategy):
    """The lenient select is the core's: fewer nodes than clusters, the erase set is every node
    (in id order, scored 1.0 without a query, by cosine with one); the query strategies rank."""
    embed = HashingEmbedding()
    r = ERASERetriever.from_defaults(nodes=nodes()[:2], embed_model=embed, similarity_top_k=4, strategy=strategy)
    got = r.retrieve("review 1 of item 1 was good")
    assert sorted(n.node.node_id for n in got) == ["n0", "n1"]
    if strategy == "erase":
        assert [n.node.node_id for n in got] == ["n0", "n1"]
        q = np.asarray(embed.vector("review 1 of item 1 was good"))
        q /= np.linalg.norm(q)
        assert [n.score for n in got] == [float(r.index.vector(i).astype(np.float64) @ q) for i in ("n0", "n1")]
        r.query_scores = False
        assert [n.score for n in r.retrieve("anything")] == [1.0, 1.0]
    else:
        assert got[0].node.node_id == "n1"
