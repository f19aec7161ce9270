"""Async: aretrieve/aforget give the sync answers and never block the event loop."""

from __future__ import annotations

import asyncio
import time

from erase_llamaindex import ERASERetriever

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


async def _ticks_during(coro, period=0.01):
    """Run ``coro`` while a ticker counts how often the event loop got to run it."""
    ticks = 0
    done = asyncio.Event()

    async def ticker():
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(period)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    start = time.perf_counter()
    result = await coro
    elapsed = time.perf_counter() - start
    done.set()
    await task
    return result, ticks, elapsed


def test_aretrieve_does_not_block_the_event_loop():
    # The embedding blocks for 0.3 s in every call, including its "async" methods (as many
    # LlamaIndex integrations do); the event loop must keep running meanwhile.
    embed = HashingEmbedding()
    r = build(embed)
    embed.delay = 0.3
    result, ticks, elapsed = asyncio.run(_ticks_during(r.aretrieve("wonderful hotel")))
    assert elapsed >= 0.3 and ticks >= 10
    embed.delay = 0.0
    assert results(result) == results(r.retrieve("wonderful hotel"))


def test_concurrent_aretrieves_overlap():
    embed = HashingEmbedding()
    r = build(embed)
    embed.delay = 0.25

    async def main():
        start = time.perf_counter()
        await asyncio.gather(*(r.aretrieve(f"query {i}") for i in range(4)))
        return time.perf_counter() - start

    assert asyncio.run(main()) < 0.9  # 4 x 0.25 s run side by side, not one after another


def test_aforget_and_ainsert(tmp_path):
    embed = HashingEmbedding()
    r = build(embed, "erase", persist_dir=tmp_path / "p")
    nodes = example_nodes(45)

    async def main():
        receipt, ticks, _ = await _ticks_during(r.aforget(["node-001", "node-002"]), period=0.001)
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
