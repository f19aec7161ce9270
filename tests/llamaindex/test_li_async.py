"""Async: aretrieve/aforget give the sync answers and never block the event loop."""

from __future__ import annotations

import asyncio
from typing import List

from llama_index.core.bridge.pydantic import PrivateAttr

from erase_llamaindex import ERASERetriever
from loop_probe import LoopWitness, Rendezvous

from .helpers import HashingEmbedding, example_nodes, results


def build(embed, strategy="similarity", **kw):
    return ERASERetriever.from_defaults(nodes=example_nodes(40), embed_model=embed, similarity_top_k=4, strategy=strategy, **kw)


def test_aretrieve_equals_retrieve():
    for strategy in ("erase", "similarity"):
        r = build(HashingEmbedding(), strategy)
        queries = ["wonderful hotel", "waste of money", "", "laptop"]

        async def main():
            return await asyncio.gather(*(r.aretrieve(q) for q in queries))

        assert [results(x) for x in asyncio.run(main())] == [results(r.retrieve(q)) for q in queries]


class ProbedEmbedding(HashingEmbedding):
    """HashingEmbedding whose query embeddings call ``probe()`` first (a blocking wait)."""

    _probe: object = PrivateAttr(default=None)

    def _get_query_embedding(self, query: str) -> List[float]:
        if self._probe is not None:
            self._probe()
        return super()._get_query_embedding(query)


def test_aretrieve_does_not_block_the_event_loop():
    # The embedding blocks in every call, including its "async" methods (as many LlamaIndex
    # integrations do): it waits until the event loop has run, which it never does if the
    # retrieval blocks the loop.
    embed = ProbedEmbedding()
    r = build(embed)
    embed._probe = witness = LoopWitness()

    async def main():
        witness.attach()
        return await r.aretrieve("wonderful hotel")

    result = asyncio.run(main())
    assert witness.calls == 1
    embed._probe = None
    assert results(result) == results(r.retrieve("wonderful hotel"))


def test_concurrent_aretrieves_overlap():
    # every embedding waits until all four are in flight: retrievals that wait on each other
    # (a lock held across the embedding, or one after another) break the rendezvous
    embed = ProbedEmbedding()
    r = build(embed)
    embed._probe = meet = Rendezvous(4)

    async def main():
        return await asyncio.gather(*(r.aretrieve(f"query {i}") for i in range(4)))

    answers = asyncio.run(main())
    meet.armed = False
    assert [results(a) for a in answers] == [results(r.retrieve(f"query {i}")) for i in range(4)]


def test_aforget_and_ainsert(tmp_path):
    embed = HashingEmbedding()
    r = build(embed, "erase", persist_dir=tmp_path / "p")
    nodes = example_nodes(45)

    async def main():
        receipt = await r.aforget(["node-001", "node-002"])
        await r.ainsert_nodes(nodes[40:])
        ref = await r.adelete_ref_doc("no-such-doc")
        return receipt, ref

    receipt, ref = asyncio.run(main())
    assert receipt.ids == ("node-001", "node-002") and ref.ids == ()
    fresh = ERASERetriever.from_defaults(
        nodes=[n for n in nodes if n.node_id not in ("node-001", "node-002")], embed_model=HashingEmbedding(),
        similarity_top_k=4, strategy="erase",
    )
    assert r.digest() == fresh.digest()
    r.close()
