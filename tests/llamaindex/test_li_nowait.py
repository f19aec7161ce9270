"""The ``erase`` retriever answers while a forget runs in another thread (the set before it)."""

from __future__ import annotations

from llama_index.core.schema import TextNode

from blocking import BlockedForget, call_in_thread
from erase_llamaindex import ERASERetriever

from .helpers import HashingEmbedding


def test_retrieve_does_not_wait_for_a_forget():
    nodes = [TextNode(id_=f"n{i:02d}", text=f"node {i} " + "text " * (i % 5)) for i in range(40)]
    retriever = ERASERetriever.from_defaults(nodes=nodes, embed_model=HashingEmbedding(dim=32),
                                             similarity_top_k=3, strategy="erase")
    got = [n.node.node_id for n in retriever.retrieve("anything")]
    blocked = BlockedForget(retriever._index, lambda: retriever.forget([got[0]]))
    try:
        during = call_in_thread(lambda: retriever.retrieve("anything"))
        assert [n.node.node_id for n in during] == got
    finally:
        blocked.finish()
    after = [n.node.node_id for n in retriever.retrieve("anything")]
    assert got[0] not in after and len(after) == 3
