"""Two retrievers on one persist directory: a forget in one is seen by the other at once."""

from __future__ import annotations

import pytest

from erase_llamaindex import ERASERetriever

from .helpers import example_nodes, results

QUERIES = ["the concert was wonderful", "this phone broke after a day", "the hotel is excellent value"]


@pytest.mark.parametrize("strategy", ["erase", "similarity"])
def test_retrievers_on_one_directory_see_each_others_forgets(tmp_path, embed, strategy):
    d = tmp_path / "p"
    first = ERASERetriever.from_defaults(nodes=example_nodes(40), embed_model=embed, similarity_top_k=4,
                                         strategy=strategy, seed=1, persist_dir=d)
    second = ERASERetriever.from_persist_dir(d, embed_model=embed)
    victim = first.retrieve(QUERIES[0])[0].node.node_id
    first.forget([victim])
    for q in QUERIES:
        assert victim not in [n for n, _ in results(second.retrieve(q))]
    extra = example_nodes(44)[40:]
    second.insert_nodes(extra)
    assert first.digest() == second.digest() and first.verify()
    first.forget([extra[0].node_id])
    assert {q: results(first.retrieve(q)) for q in QUERIES} == {q: results(second.retrieve(q)) for q in QUERIES}
    first.close()
    second.close()
