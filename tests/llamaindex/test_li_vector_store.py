"""ERASEVectorStore: the LlamaIndex vector-store contract, every mutation equal to a fresh build,
bad input rejected without a change, handles sharing a store, the standard VectorStoreIndex /
StorageContext flows, and no residue of a deleted document in the persist directory."""

from __future__ import annotations

import asyncio
import json
import logging

import numpy as np
import pytest
from llama_index.core import StorageContext, VectorStoreIndex, load_index_from_storage
from llama_index.core.llms import MockLLM
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import Document, TextNode
from llama_index.core.vector_stores import SimpleVectorStore
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore, FilterOperator, VectorStoreQuery, VectorStoreQueryMode,
)

from erase_core import ERASEError, ExampleIndex
from erase_llamaindex import ERASEVectorStore
from residue import all_file_bytes, surviving, vector_windows

from .helpers import HashingEmbedding
from .test_li_filters import UNSUPPORTED, corpus, f, li_pool, mf

EMBED = HashingEmbedding()
QUERIES = ["the invoice was paid late", "shipping to berlin", "refund for order 17", "customer 3 message"]
SEED = 5


def embedded(nodes):
    """Copies of ``nodes`` carrying their HashingEmbedding embedding (a vector store stores given ones)."""
    out = []
    for n in nodes:
        c = n.model_copy()
        c.embedding = EMBED.vector(n.get_content())
        out.append(c)
    return out


NODES = embedded(corpus())


def fresh(nodes, strategy="similarity", path=None) -> ERASEVectorStore:
    s = ERASEVectorStore.from_defaults(path, strategy=strategy, seed=SEED)
    s.add(list(nodes))
    return s


def q(text, k=4, **kw) -> VectorStoreQuery:
    return VectorStoreQuery(query_embedding=EMBED.vector(text), similarity_top_k=k, **kw)


def answers(store) -> list:
    """Every kind of query this file checks, as (ids, similarities)."""
    out = []
    for text in QUERIES:
        for kw in ({}, {"k": 50}, {"mode": VectorStoreQueryMode.MMR}, {"mode": VectorStoreQueryMode.MMR, "mmr_threshold": 0.2},
                   {"filters": mf(f("tenant", "acme"))}, {"filters": mf(f("stars", [1, 2], FilterOperator.IN))}):
            r = store.query(q(text, **kw))
            out.append((r.ids, r.similarities))
    return out


def assert_equals_fresh(store, nodes, strategy="similarity"):
    """The store answers every query as a fresh build on ``nodes`` does, and has its digest."""
    ref = fresh(nodes, strategy)
    assert sorted(store.index.ids) == sorted(n.node_id for n in nodes)
    assert store.index.digest() == ref.index.digest()
    assert store.index.verify()
    assert answers(store) == answers(ref)


# ---------------------------------------------------------------------------------- contract
def test_is_a_llamaindex_vector_store_that_keeps_the_nodes():
    s = fresh(NODES[:10])
    assert isinstance(s, BasePydanticVectorStore) and s.stores_text and s.is_embedding_query
    assert isinstance(s.client, ExampleIndex) and s.client is s.index
    assert ERASEVectorStore.class_name() == "ERASEVectorStore"
    assert bool(ERASEVectorStore.from_defaults())  # StorageContext tests `if vector_store:`
    r = s.query(q(QUERIES[0], k=3))
    assert len(r.nodes) == len(r.ids) == len(r.similarities) == 3
    by_id = {n.node_id: n for n in NODES}
    for node, i in zip(r.nodes, r.ids):
        assert node.node_id == i and node.get_content() == by_id[i].get_content()
        assert node.ref_doc_id == by_id[i].ref_doc_id and node.embedding is None


def test_query_is_exact_top_k_and_matches_simple_vector_store():
    s = fresh(NODES)
    simple = SimpleVectorStore()
    simple.add(NODES)
    U = np.stack([s.index.vector(n.node_id) for n in NODES]).astype(np.float64)
    ids = [n.node_id for n in NODES]
    for text in QUERIES:
        qv = np.asarray(EMBED.vector(text))
        scores = U @ (qv / np.linalg.norm(qv))
        want = sorted(range(len(ids)), key=lambda i: (-scores[i], ids[i]))[:5]
        got = s.query(q(text, k=5))
        assert got.ids == [ids[i] for i in want]
        assert got.similarities == pytest.approx(scores[want], abs=1e-12)
        theirs = simple.query(q(text, k=5))
        assert got.ids == theirs.ids and got.similarities == pytest.approx(theirs.similarities, abs=1e-6)
    assert s.query(q("x", k=10_000)).ids.__len__() == len(NODES)
    assert ERASEVectorStore.from_defaults().query(q("x")).ids == []


@pytest.mark.parametrize("name, filters", [
    ("eq", mf(f("tenant", "acme"))),
    ("in", mf(f("tenant", ["globex", "initech"], FilterOperator.IN))),
    ("and", mf(f("lang", "en"), f("stars", 1))),
    ("none match", mf(f("tenant", "nobody"))),
])
def test_filtered_query_ranks_exactly_the_nodes_llamaindex_lets_through(name, filters):
    s = fresh(NODES)
    pool = li_pool(NODES, filters)
    for text in QUERIES:
        got = s.query(q(text, k=6, filters=filters))
        ref = fresh([n for n in NODES if n.node_id in pool]).query(q(text, k=6))
        assert (got.ids, got.similarities) == (ref.ids, ref.similarities)


def test_node_ids_and_doc_ids_restrict_the_query():
    s = fresh(NODES)
    some = [n.node_id for n in NODES[::3]]
    doc2 = [n.node_id for n in NODES if n.ref_doc_id == "doc-2"]
    for text in QUERIES:
        assert s.query(q(text, k=4, node_ids=some)).ids == fresh([n for n in NODES if n.node_id in some]).query(q(text)).ids
        assert s.query(q(text, k=50, doc_ids=["doc-2"])).ids == fresh([n for n in NODES if n.node_id in doc2]).query(
            q(text, k=50)).ids
        both = s.query(q(text, k=50, node_ids=some, doc_ids=["doc-2"])).ids
        assert set(both) == set(some) & set(doc2)
    assert s.query(q("x", node_ids=[])).ids == s.query(q("x")).ids  # [] = no restriction (VectorStoreIndex passes it)


def test_mmr_maps_mmr_threshold_to_lambda_and_is_exact():
    s = fresh(NODES)
    for text in QUERIES:
        pure = s.query(q(text, k=5, mode=VectorStoreQueryMode.MMR, mmr_threshold=1.0))
        assert pure.ids == s.query(q(text, k=5)).ids
        via_kwarg = s.query(q(text, k=5, mode=VectorStoreQueryMode.MMR), mmr_threshold=0.3)
        on_query = s.query(q(text, k=5, mode=VectorStoreQueryMode.MMR, mmr_threshold=0.3))
        assert via_kwarg.ids == on_query.ids
        want = s.index.search(EMBED.vector(text), 5, mmr=True, fetch_k=len(NODES), lambda_mult=0.3)
        assert on_query.ids == [x.id for x in want]
        limited = s.query(q(text, k=3, mode=VectorStoreQueryMode.MMR), mmr_prefetch_k=3)
        assert set(limited.ids) == set(s.query(q(text, k=3)).ids)


@pytest.mark.parametrize("strategy", ["similarity", "erase"])
def test_mmr_after_a_forget_equals_a_fresh_build(strategy):
    s = fresh(NODES, strategy)
    victim = s.query(q(QUERIES[1], k=1, mode=VectorStoreQueryMode.MMR)).ids[0]
    s.delete_nodes([victim])
    rest = [n for n in NODES if n.node_id != victim]
    ref = fresh(rest, strategy)
    for text in QUERIES:
        for t in (None, 0.0, 0.7):
            mine = s.query(q(text, k=6, mode=VectorStoreQueryMode.MMR, mmr_threshold=t))
            theirs = ref.query(q(text, k=6, mode=VectorStoreQueryMode.MMR, mmr_threshold=t))
            assert victim not in mine.ids and (mine.ids, mine.similarities) == (theirs.ids, theirs.similarities)


# ---------------------------------------------------------------------------------- mutations
@pytest.mark.parametrize("persisted", [False, True])
@pytest.mark.parametrize("strategy", ["similarity", "erase"])
def test_every_mutation_equals_a_fresh_build(tmp_path, strategy, persisted):
    path = tmp_path / "s.sqlite" if persisted else None
    s = ERASEVectorStore.from_defaults(path, strategy=strategy, seed=SEED)
    live = {}

    def check():
        assert_equals_fresh(s, sorted(live.values(), key=lambda n: n.node_id), strategy)

    assert s.add(NODES[:30]) == [n.node_id for n in NODES[:30]]
    live.update((n.node_id, n) for n in NODES[:30])
    check()
    s.add(NODES[30:])
    live.update((n.node_id, n) for n in NODES[30:])
    check()
    # upsert: an existing id with new text, metadata and embedding replaces the old node
    old = NODES[4]
    new = TextNode(id_=old.node_id, text="completely rewritten text about a refund", metadata={"tenant": "initech"},
                   embedding=EMBED.vector("completely rewritten text about a refund"))
    s.add([new, NODES[5]])
    live[new.node_id] = new
    check()
    assert s.get_nodes([old.node_id])[0].get_content() == new.get_content()
    assert s.delete("doc-1") is None  # what LlamaIndex declares; the receipt is last_receipt
    assert sorted(s.last_receipt.ids) == sorted(i for i, n in live.items() if n.ref_doc_id == "doc-1")
    live = {i: n for i, n in live.items() if n.ref_doc_id != "doc-1"}
    check()
    gone = [NODES[0].node_id, "loose-1", "no-such-node"]
    assert s.delete_nodes(gone) is None
    assert sorted(s.last_receipt.ids) == sorted(i for i in gone if i in live)
    live = {i: n for i, n in live.items() if i not in gone}
    check()
    s.delete_nodes(filters=mf(f("tenant", "globex")))
    live = {i: n for i, n in live.items() if n.metadata.get("tenant") != "globex"}
    check()
    ids = sorted(live)[:12]
    s.delete_nodes(ids, filters=mf(f("lang", "en")))
    live = {i: n for i, n in live.items() if not (i in ids and n.metadata.get("lang") == "en")}
    check()
    left = sorted(live)
    assert s.clear() is None and sorted(s.last_receipt.ids) == left
    assert len(s.index) == 0 and s.index.verify() and s.query(q("x")).ids == []
    assert s.index.digest() == fresh([], strategy).index.digest()
    s.add(NODES[:5])  # usable after clear
    assert_equals_fresh(s, NODES[:5], strategy)
    if persisted:
        s.close()
        again = ERASEVectorStore.from_persist_path(path)
        assert_equals_fresh(again, NODES[:5], strategy)
        again.close()


def test_get_nodes_by_ids_and_filters():
    s = fresh(NODES)
    wanted = [NODES[7].node_id, "nope", NODES[2].node_id, NODES[7].node_id]
    got = s.get_nodes(wanted)
    assert [n.node_id for n in got] == [NODES[7].node_id, NODES[2].node_id]
    assert got[0].get_content() == NODES[7].get_content() and got[0].metadata == NODES[7].metadata
    assert np.array_equal(np.asarray(got[0].embedding, dtype=np.float32), s.index.vector(NODES[7].node_id))
    acme = mf(f("tenant", "acme"))
    assert [n.node_id for n in s.get_nodes(filters=acme)] == sorted(li_pool(NODES, acme))
    assert {n.node_id for n in s.get_nodes([n.node_id for n in NODES[:8]], filters=acme)} == (
        li_pool(NODES, acme) & {n.node_id for n in NODES[:8]})
    assert len(s.get_nodes()) == len(NODES)


# ---------------------------------------------------------------------------------- bad input
def _bad_adds():
    ok = NODES[0]
    yield "no embedding", [TextNode(id_="x", text="t")]
    yield "wrong dimension", [TextNode(id_="x", text="t", embedding=[1.0, 2.0])]
    yield "NaN", [TextNode(id_="x", text="t", embedding=[float("nan")] * 64)]
    yield "all zeros", [TextNode(id_="x", text="t", embedding=[0.0] * 64)]
    yield "mixed lengths", [TextNode(id_="x", text="t", embedding=[1.0] * 64), TextNode(id_="y", text="t", embedding=[1.0] * 3)]
    yield "repeated id", [TextNode(id_="x", text="t", embedding=[1.0] * 64), TextNode(id_="x", text="u", embedding=[1.0] * 64)]
    yield "one bad among good", [ok, TextNode(id_="x", text="t")]
    yield "not a node", ["just a string"]


@pytest.mark.parametrize("persisted", [False, True])
def test_bad_input_raises_and_changes_nothing(tmp_path, persisted):
    s = fresh(NODES[:20], path=tmp_path / "s.sqlite" if persisted else None)
    digest, n_audit = s.index.digest(), len(s.index.audit())
    attempts = [(name, lambda nodes=nodes: s.add(nodes)) for name, nodes in _bad_adds()]
    attempts += [
        ("add kwargs", lambda: s.add(NODES[20:22], unexpected=1)),
        ("unsupported mode", lambda: s.query(q("x", mode=VectorStoreQueryMode.SVM))),
        ("no query embedding", lambda: s.query(VectorStoreQuery(query_str="x", similarity_top_k=2))),
        ("zero top k", lambda: s.query(q("x", k=0))),
        ("wrong query dimension", lambda: s.query(VectorStoreQuery(query_embedding=[1.0, 2.0], similarity_top_k=2))),
        ("bad mmr threshold", lambda: s.query(q("x", mode=VectorStoreQueryMode.MMR, mmr_threshold=2.0))),
        ("query kwargs", lambda: s.query(q("x"), unknown=1)),
        ("delete_nodes without arguments", lambda: s.delete_nodes()),
        ("delete_nodes with an empty filter", lambda: s.delete_nodes(filters=mf())),
        ("delete_nodes with a string", lambda: s.delete_nodes(NODES[0].node_id)),
        ("delete kwargs", lambda: s.delete("doc-0", unknown=1)),
        ("empty ref_doc_id", lambda: s.delete("")),
    ]
    for name, call in attempts:
        with pytest.raises(ERASEError):
            call()
        assert s.index.digest() == digest and len(s.index.audit()) == n_audit, name
    for filters in UNSUPPORTED:
        for call in (lambda: s.query(q("x", filters=filters)), lambda: s.get_nodes(filters=filters),
                     lambda: s.delete_nodes(filters=filters), lambda: s.delete_nodes([NODES[0].node_id], filters=filters)):
            with pytest.raises(ERASEError):
                call()
    with pytest.raises(ERASEError, match=r"IN on 'tenant'.*needs a list value"):
        s.query(q("x", filters=mf(f("tenant", "acme", FilterOperator.IN))))
    assert s.index.digest() == digest and len(s.index.audit()) == n_audit and s.index.verify()


def test_unknown_ref_doc_id_is_a_no_op(caplog):
    s = fresh(NODES[:20])
    digest = s.index.digest()
    assert s.last_receipt is None
    with caplog.at_level(logging.WARNING):
        s.delete("never-heard-of-it")
    first = s.last_receipt
    assert first.ids == () and s.index.digest() == digest and "never-heard-of-it" not in caplog.text
    s.delete_nodes(["never-heard-of-it"])
    assert s.last_receipt is not first and s.last_receipt.ids == () and s.index.digest() == digest


# ---------------------------------------------------------------------------------- handles and persistence
def test_two_handles_on_one_persist_path_see_each_others_deletes(tmp_path):
    manifest = tmp_path / "p" / "default__vector_store.json"
    a = fresh(NODES)  # in memory: persist copies it once and binds it
    a.persist(str(manifest))
    b = ERASEVectorStore.from_persist_path(str(manifest))
    assert b.index.digest() == a.index.digest()
    victim = a.query(q(QUERIES[0], k=1)).ids[0]
    a.delete_nodes([victim])
    assert victim not in b.query(q(QUERIES[0], k=50)).ids and b.get_nodes([victim]) == []
    b.delete("doc-3")
    assert not [n for n in a.get_nodes() if n.ref_doc_id == "doc-3"]
    extra = embedded([TextNode(id_="late", text="a late arrival about shipping")])
    b.add(extra)
    rest = [n for n in NODES if n.node_id != victim and n.ref_doc_id != "doc-3"] + extra
    assert_equals_fresh(a, rest)
    assert answers(a) == answers(b)
    a.close(), b.close()


def test_persist_writes_a_manifest_and_binds(tmp_path):
    s = fresh(NODES[:10])
    d = tmp_path / "store"
    s.persist(str(d / "default__vector_store.json"))
    manifest = json.loads((d / "default__vector_store.json").read_text())
    guard = manifest.pop("embedding_dict")  # makes a SimpleVectorStore load fail, with instructions
    assert manifest == {"format": "erase-llamaindex-vector-store", "version": 1, "store": "default__vector_store.erase.sqlite"}
    assert list(guard) == ["erase"] and "from_persist_dir" in guard["erase"][0]
    assert s.path == (d / "default__vector_store.erase.sqlite").absolute()
    s.delete_nodes([NODES[0].node_id])  # bound: written to the store file
    reopened = ERASEVectorStore.from_persist_dir(str(d))
    assert NODES[0].node_id not in reopened.index.ids and reopened.index.digest() == s.index.digest()
    s.persist(str(d / "default__vector_store.json"))  # again: same manifest, nothing copied
    # a store created with a path is its own persistence: the manifest names it, nothing is copied
    own = fresh(NODES[:3], path=tmp_path / "own.sqlite")
    own.persist(str(tmp_path / "elsewhere" / "vs.json"))
    assert json.loads((tmp_path / "elsewhere" / "vs.json").read_text())["store"] == str((tmp_path / "own.sqlite").resolve())
    assert not (tmp_path / "elsewhere" / "vs.erase.sqlite").exists()
    assert ERASEVectorStore.from_persist_path(tmp_path / "own.sqlite").index.digest() == own.index.digest()
    # refusals: another store's manifest, another store file, a SimpleVectorStore file
    with pytest.raises(ERASEError, match="names another store"):
        fresh(NODES[:2]).persist(str(d / "default__vector_store.json"))
    with pytest.raises(ERASEError, match="names another store"):
        own.persist(str(d / "default__vector_store.json"))
    with pytest.raises(ERASEError, match="holds another store"):
        s.persist(str(tmp_path / "own.sqlite"))
    SimpleVectorStore().persist(str(tmp_path / "simple.json"))
    with pytest.raises(ERASEError, match="SimpleVectorStore"):
        ERASEVectorStore.from_persist_path(str(tmp_path / "simple.json"))
    with pytest.raises(ERASEError, match="No existing"):
        ERASEVectorStore.from_persist_dir(str(tmp_path / "nothing-here"))
    with pytest.raises(ERASEError, match="other parameters"):
        ERASEVectorStore.from_defaults(tmp_path / "own.sqlite", seed=SEED + 1)
    for x in (s, reopened, own):
        x.close()


def test_copies_carry_the_pool_by_value_or_the_store_by_path(tmp_path):
    import copy
    import pickle

    mem = fresh(NODES[:8])
    for c in (pickle.loads(pickle.dumps(mem)), copy.deepcopy(mem)):
        assert c.index is not mem.index and c.index.digest() == mem.index.digest()
        c.delete_nodes([NODES[0].node_id])  # an independent copy
        assert NODES[0].node_id in mem.index.ids
    on_file = fresh(NODES[:8], path=tmp_path / "s.sqlite")
    for c in (pickle.loads(pickle.dumps(on_file)), copy.deepcopy(on_file)):
        assert c.path == on_file.path  # another handle on the same store: it follows every delete
    on_file.delete_nodes([NODES[1].node_id])
    assert NODES[1].node_id not in c.index.ids
    with pytest.raises(ERASEError):
        ERASEVectorStore("not an index")
    with pytest.raises(ERASEError):
        ERASEVectorStore(mem.index, unexpected=True)
    with pytest.raises(ERASEError):
        ERASEVectorStore.from_defaults(tmp_path / "x.sqlite", index=mem.index)
    assert ERASEVectorStore.from_defaults(index=mem.index).index is mem.index


def test_async_twins():
    s = fresh(NODES[:20])

    async def main():
        await s.async_add(NODES[20:25])
        r = await s.aquery(q(QUERIES[0], k=3))
        got = await s.aget_nodes(r.ids)
        assert await s.adelete("doc-0") is None
        assert sorted(s.last_receipt.ids) == sorted(n.node_id for n in NODES[:25] if n.ref_doc_id == "doc-0")
        await s.adelete_nodes([r.ids[0]])
        return r, got

    r, got = asyncio.run(main())
    assert [n.node_id for n in got] == r.ids
    rest = [n for n in NODES[:25] if n.ref_doc_id != "doc-0" and n.node_id != r.ids[0]]
    assert_equals_fresh(s, rest)
    asyncio.run(s.aclear())
    assert len(s.index) == 0


# ---------------------------------------------------------------------------------- LlamaIndex flows
SPLITTER = SentenceSplitter(chunk_size=96, chunk_overlap=0, id_func=lambda i, doc: f"{doc.doc_id}-chunk-{i}")


def documents(n=4):
    return [
        Document(text=" ".join(f"Document {d} sentence {j} is about topic {(d + j) % 5}." for j in range(30)),
                 id_=f"doc-{d}", metadata={"tenant": ["acme", "globex"][d % 2]})
        for d in range(n)
    ]


def index_over(store, docs=()):
    index = VectorStoreIndex.from_vector_store(store, embed_model=EMBED, transformations=[SPLITTER])
    for d in docs:
        index.insert(d)
    return index


def test_vector_store_index_flow_equals_a_fresh_build():
    store = ERASEVectorStore.from_defaults(seed=SEED)
    index = index_over(store, documents(3))
    assert len(index.docstore.docs) == 0  # stores_text: LlamaIndex keeps no node text of its own
    hits = index.as_retriever(similarity_top_k=3).retrieve("topic 3")
    assert len(hits) == 3 and all(h.node.ref_doc_id.startswith("doc-") for h in hits)
    response = index.as_query_engine(llm=MockLLM(), similarity_top_k=2).query("topic 3")
    assert [n.node.node_id for n in response.source_nodes] == [h.node.node_id for h in hits[:2]]
    index.insert(documents(4)[3])
    index.delete_ref_doc("doc-1", delete_from_docstore=True)
    ref = index_over(ERASEVectorStore.from_defaults(seed=SEED), [d for d in documents(4) if d.doc_id != "doc-1"])
    assert store.index.digest() == ref.vector_store.index.digest() and store.index.verify()
    for text in QUERIES + ["topic 3"]:
        mine = [(h.node.node_id, h.score) for h in index.as_retriever(similarity_top_k=4).retrieve(text)]
        assert mine == [(h.node.node_id, h.score) for h in ref.as_retriever(similarity_top_k=4).retrieve(text)]
        assert not [i for i, _ in mine if i.startswith("doc-1-")]
    mmr = index.as_retriever(vector_store_query_mode="mmr", similarity_top_k=3, vector_store_kwargs={"mmr_threshold": 0.4})
    assert [h.node.node_id for h in mmr.retrieve("topic 2")] == [
        x.id for x in store.index.search(EMBED.get_query_embedding("topic 2"), 3, mmr=True, fetch_k=len(store.index),
                                         lambda_mult=0.4)]
    acme = index.as_retriever(similarity_top_k=50, filters=mf(f("tenant", "acme")))
    assert {h.node.ref_doc_id for h in acme.retrieve("topic")} == {"doc-0", "doc-2"}
    index.delete_nodes(["doc-0-chunk-0"])
    assert "doc-0-chunk-0" not in store.index.ids


def test_storage_context_persist_and_load_index_from_storage(tmp_path):
    d = str(tmp_path / "storage")
    ctx = StorageContext.from_defaults(vector_store=ERASEVectorStore.from_defaults(seed=SEED))
    VectorStoreIndex.from_documents(documents(3), storage_context=ctx, embed_model=EMBED, transformations=[SPLITTER])
    ctx.persist(persist_dir=d)
    before = ctx.vector_stores["default"].index.digest()
    loaded = load_index_from_storage(
        StorageContext.from_defaults(persist_dir=d, vector_store=ERASEVectorStore.from_persist_dir(d)), embed_model=EMBED,
    )
    assert loaded.vector_store.index.digest() == before
    assert loaded.as_retriever(similarity_top_k=50).retrieve("topic 1")
    loaded.delete_ref_doc("doc-0", delete_from_docstore=True)
    # the first context's store is another handle on the same file: it sees the delete too
    assert not [i for i in ctx.vector_stores["default"].index.ids if i.startswith("doc-0-")]
    ref = index_over(ERASEVectorStore.from_defaults(seed=SEED), documents(3)[1:])
    assert loaded.vector_store.index.digest() == ref.vector_store.index.digest()


def test_a_plain_reload_of_an_erase_persist_dir_fails_loudly(tmp_path):
    """StorageContext.from_defaults(persist_dir=...) without vector_store= reads every
    *__vector_store.json as SimpleVectorStore data: on an ERASE directory it must not come back
    as an empty store (retrieval answering []), but fail, saying how to open it."""
    d = str(tmp_path / "storage")
    ctx = StorageContext.from_defaults(vector_store=ERASEVectorStore.from_defaults(seed=SEED))
    VectorStoreIndex.from_documents(documents(3), storage_context=ctx, embed_model=EMBED, transformations=[SPLITTER])
    ctx.persist(persist_dir=d)
    with pytest.raises(ValueError, match="ERASE vector store.*from_persist_dir"):
        StorageContext.from_defaults(persist_dir=d)
    # the ERASE way opens it, with everything in it
    loaded = load_index_from_storage(
        StorageContext.from_defaults(persist_dir=d, vector_store=ERASEVectorStore.from_persist_dir(d)), embed_model=EMBED,
    )
    assert loaded.as_retriever(similarity_top_k=50).retrieve("topic 1")


def _secret_document():
    words = " ".join(f"zelda-quux-{i:04d}-confidential" for i in range(260))  # > 4 KB of unique text
    return Document(text=f"Private record of Zelda Quux. {words}", id_="secret-doc-3f9c71", metadata={"tenant": "acme"})


def _needles(nodes):
    """The deleted text (the document's, and each node's) and every node's embedding as float32
    (unit and raw; zero-only windows left out, see vector_windows) and as JSON text."""
    out = []
    for n in nodes:
        out.append(n.get_content().encode())
        unit = np.asarray(n.embedding, dtype=np.float64)
        unit = (unit / np.linalg.norm(unit)).astype("<f4")
        out += vector_windows(unit.tobytes())
        out += vector_windows(np.asarray(n.embedding, dtype="<f4").tobytes())
        out.append(json.dumps(n.embedding).encode())
    return [x for x in out if x]


@pytest.mark.parametrize("how", ["from_documents", "insert"])
def test_deleted_document_leaves_no_trace_in_any_persisted_file(tmp_path, how):
    secret = _secret_document()
    assert len(secret.text.encode()) > 4096
    secret_nodes = [n for n in SPLITTER([secret])]
    for n in secret_nodes:
        n.embedding = EMBED.get_text_embedding(n.get_content(metadata_mode="embed"))
    d = tmp_path / "storage"
    ctx = StorageContext.from_defaults(vector_store=ERASEVectorStore.from_defaults(seed=SEED))
    docs = documents(3) + ([secret] if how == "from_documents" else [])
    index = VectorStoreIndex.from_documents(docs, storage_context=ctx, embed_model=EMBED, transformations=[SPLITTER])
    ctx.persist(persist_dir=str(d))
    if how == "insert":
        index.insert(secret)
        ctx.persist(persist_dir=str(d))
    assert {n.node_id for n in secret_nodes} <= set(ctx.vector_stores["default"].index.ids)
    needles = [secret.text.encode()] + _needles(secret_nodes)
    # nothing of it is in clear even before the delete: the store seals every row, the docstore keeps no text
    assert not surviving(all_file_bytes(d), needles)
    index.delete_ref_doc(secret.doc_id, delete_from_docstore=True)
    ctx.persist(persist_dir=str(d))
    files = all_file_bytes(d)
    assert not surviving(files, needles), "deleted text or embedding found on disk"
    # what LlamaIndex itself still keeps: the document id and its content hash (docstore metadata,
    # for refresh_ref_docs). The extra call in docs/llamaindex.md removes them too.
    assert surviving(files, [secret.hash.encode()])
    index.docstore.delete_document(secret.doc_id, raise_error=False)
    ctx.persist(persist_dir=str(d))
    files = all_file_bytes(d)
    assert not surviving(files, [secret.hash.encode(), secret.doc_id.encode()] + needles)
    # the scan does find such text when it is there: SimpleVectorStore's docstore keeps it
    plain = tmp_path / "plain"
    simple_ctx = StorageContext.from_defaults()
    VectorStoreIndex.from_documents([secret], storage_context=simple_ctx, embed_model=EMBED, transformations=[SPLITTER])
    simple_ctx.persist(persist_dir=str(plain))
    assert surviving(all_file_bytes(plain), [secret_nodes[0].get_content().encode()])
    reopened = ERASEVectorStore.from_persist_dir(str(d))
    assert not set(reopened.index.ids) & {n.node_id for n in secret_nodes} and reopened.index.verify()
    reopened.close()


# ---------------------------------------------------------------------------------- docs/llamaindex.md
def doc_snippets() -> dict[str, str]:
    """The ```python blocks of docs/llamaindex.md whose first line is ``# snippet: NAME``."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "llamaindex.md").read_text(encoding="utf-8")
    return {m.group(1): m.group(0) for m in (
        re.match(r"# snippet: ([\w-]+)\n.*", block, re.S) for block in re.findall(r"```python\n(.*?)```", text, re.S)) if m}


def test_the_snippets_of_the_docs_table_run_as_written(tmp_path, monkeypatch):
    snippets = doc_snippets()
    assert list(snippets) == ["vector-store", "retriever", "delete", "persist"]
    monkeypatch.chdir(tmp_path)
    lease = Document(text="The rent is due on the first day of each month. " * 3, id_="lease")
    house_rules = Document(text="Quiet hours start at ten in the evening.", id_="rules")
    new_document = Document(text="Addendum: the rent rises by two percent in May.", id_="addendum-7a1c")
    ns = {"embed": HashingEmbedding(), "documents": [lease, house_rules], "new_document": new_document, "llm": MockLLM()}

    exec(snippets["vector-store"], ns)
    store = ns["store"]
    assert len(ns["nodes"]) == 2 and "rent" in str(ns["answer"]).lower()
    assert {n.ref_doc_id for n in store.get_nodes()} == {"lease", "rules", "addendum-7a1c"}
    assert len(ns["index"].docstore.docs) == 0

    exec(snippets["retriever"], ns)
    assert len(ns["nodes"]) == 2 and len(ns["retriever"]) == 1 and ns["retriever"].verify()

    exec(snippets["delete"], ns)
    assert {n.ref_doc_id for n in store.get_nodes()} == {"lease", "rules"} and store.index.verify()
    assert ns["index"].docstore.get_document_hash("addendum-7a1c") is None

    exec(snippets["persist"], ns)
    loaded = ns["index"]
    assert loaded.vector_store is not store and loaded.vector_store.index.digest() == store.index.digest()
    assert (tmp_path / "storage" / "default__vector_store.erase.sqlite").is_file()
    assert [n.node.ref_doc_id for n in loaded.as_retriever(similarity_top_k=1).retrieve("when is the rent due?")] == ["lease"]
    files = all_file_bytes(tmp_path / "storage")
    assert not surviving(files, [b"Addendum: the rent rises", b"The rent is due on the first day"])
