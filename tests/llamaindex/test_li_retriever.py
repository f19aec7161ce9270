"""ERASERetriever in memory: LlamaIndex contract, exact top-k, the erase set, forget == fresh build."""

from __future__ import annotations

import numpy as np
import pytest
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import Document, NodeRelationship, NodeWithScore, QueryBundle, TextNode

from erase_core import DuplicateIdError, ERASEError, UnknownIdError
from erase_llamaindex import ERASERetriever

from .helpers import HashingEmbedding, example_nodes, results, unit_rows

QUERIES = ["the hotel was wonderful", "a waste of money", "my laptop broke", "", "concert review 7"]


def build(nodes, embed, strategy="erase", k=4, **kw):
    return ERASERetriever.from_defaults(nodes=nodes, embed_model=embed, similarity_top_k=k, strategy=strategy, seed=3, **kw)


def test_is_a_llamaindex_retriever_returning_nodes_with_scores(nodes, embed):
    r = build(nodes, embed)
    assert isinstance(r, BaseRetriever)
    out = r.retrieve("the film was wonderful")
    assert len(out) == 4 and all(isinstance(n, NodeWithScore) for n in out)
    assert len({n.node.node_id for n in out}) == 4
    by_id = {n.node_id: n for n in nodes}
    for n in out:
        original = by_id[n.node.node_id]
        assert isinstance(n.node, TextNode)
        assert n.node.text == original.text and n.node.metadata == original.metadata
        assert n.node.excluded_embed_metadata_keys == ["reviewer", "label"]
        assert n.node.embedding is None and isinstance(n.score, float)
    assert r.get_node("node-005").text == by_id["node-005"].text
    assert len(r) == len(nodes) and r.node_ids == sorted(by_id) and "node-005" in r
    assert r.verify()


@pytest.mark.parametrize("k", [1, 3, 7])
def test_similarity_strategy_is_exact_top_k(nodes, embed, k):
    r = build(nodes, embed, strategy="similarity", k=k)
    U = unit_rows(embed, [n.text for n in nodes]).astype(np.float64)
    ids = [n.node_id for n in nodes]
    for query in QUERIES:
        q = np.asarray(embed.vector(query))
        scores = U @ (q / np.linalg.norm(q))
        expected = sorted(range(len(ids)), key=lambda i: (-scores[i], ids[i]))[:k]
        got = r.retrieve(query)
        assert [n.node.node_id for n in got] == [ids[i] for i in expected]
        assert np.allclose([n.score for n in got], scores[expected], rtol=0, atol=1e-12)


def test_similarity_ranks_by_meaning_of_the_hashing_embedding(embed):
    nodes = [TextNode(id_=f"n{i}", text=t) for i, t in enumerate(
        ["cats purr and nap", "dogs bark loudly", "stock markets fell", "interest rates rose", "kittens nap all day"])]
    r = build(nodes, embed, strategy="similarity", k=2)
    assert {n.node.node_id for n in r.retrieve("cats and kittens nap")} == {"n0", "n4"}


def test_erase_strategy_is_one_fixed_set_in_cluster_order(nodes, embed):
    r = build(nodes, embed, k=4)
    expected = [s.id for s in r.index.select()]
    for query in QUERIES:
        got = r.retrieve(query)
        assert [n.node.node_id for n in got] == expected
    # scores: cosine to the query, computed from the stored vectors
    q = np.asarray(embed.vector("a waste of money"))
    got = r.retrieve("a waste of money")
    want = [float(r.index.vector(n.node.node_id).astype(np.float64) @ (q / np.linalg.norm(q))) for n in got]
    assert [n.score for n in got] == pytest.approx(want, abs=1e-12)


def test_erase_without_query_scores_never_embeds_the_query(nodes, embed):
    r = build(nodes, embed, query_scores=False)
    before = embed.calls["query"]
    got = r.retrieve("anything at all")
    assert embed.calls["query"] == before
    assert results(got) == [(s.id, s.score) for s in r.index.select()]
    # with query scores, an empty query is not embedded either: the set does not depend on it
    r2 = build(nodes, embed)
    before = embed.calls["query"]
    assert [n.node.node_id for n in r2.retrieve("")] == [n.node.node_id for n in got]
    assert embed.calls["query"] == before


def test_query_bundle_embedding_is_used_as_given(nodes, embed):
    r = build(nodes, embed, strategy="similarity", k=3)
    before = embed.calls["query"]
    bundle = QueryBundle("ignored text", embedding=embed.vector("the hotel was wonderful"))
    assert results(r.retrieve(bundle)) == results(r.retrieve("the hotel was wonderful"))
    assert embed.calls["query"] == before + 1


def test_top_k_larger_than_the_pool(embed):
    few = example_nodes(3)
    sim = build(few, embed, strategy="similarity", k=10)
    got = sim.retrieve("wonderful")
    assert sorted(n.node.node_id for n in got) == sorted(n.node_id for n in few)
    assert [n.score for n in got] == sorted((n.score for n in got), reverse=True)
    # erase: fewer nodes than clusters -> the whole pool, in id order (every node its own cluster)
    er = build(few, embed, strategy="erase", k=10)
    got = er.retrieve("wonderful")
    assert [n.node.node_id for n in got] == sorted(n.node_id for n in few)
    q = np.asarray(embed.vector("wonderful"))
    assert [n.score for n in got] == pytest.approx(
        [float(er.index.vector(n.node.node_id).astype(np.float64) @ (q / np.linalg.norm(q))) for n in got], abs=1e-12)
    er_noq = build(few, embed, strategy="erase", k=10, query_scores=False)
    assert [n.score for n in er_noq.retrieve("x")] == [1.0, 1.0, 1.0]
    # growing the pool past k switches to the clustered set
    er.insert_nodes(example_nodes(20)[3:])
    assert len(er.retrieve("wonderful")) == 10


def test_erase_similarity_top_k_is_bounded_by_the_number_of_clusters(nodes, embed):
    r = build(nodes, embed, k=4)
    r.similarity_top_k = 2
    assert [n.node.node_id for n in r.retrieve("x")] == [s.id for s in r.index.select()][:2]
    with pytest.raises(ERASEError, match="at most"):
        r.similarity_top_k = 5
    with pytest.raises(ERASEError):
        r.similarity_top_k = 0
    sim = build(nodes, embed, strategy="similarity", k=4)
    sim.similarity_top_k = 9
    assert len(sim.retrieve("x")) == 9


@pytest.mark.parametrize("strategy", ["erase", "similarity", "mmr"])
def test_empty_pool_returns_no_nodes(embed, strategy):
    r = ERASERetriever.from_defaults(embed_model=embed, strategy=strategy)
    assert r.retrieve("anything") == [] and len(r) == 0
    assert embed.calls["query"] == 0
    r.insert_nodes(example_nodes(6))
    assert len(r.retrieve("anything")) == 4
    r.forget(r.node_ids[:4])  # 2 left: fewer than k
    assert [n.node.node_id for n in r.retrieve("anything")] == r.node_ids and len(r) == 2
    r.forget(r.node_ids)
    assert r.retrieve("anything") == [] and len(r) == 0 and r.verify()


@pytest.mark.parametrize("strategy", ["erase", "similarity", "mmr"])
def test_forget_equals_a_fresh_build(nodes, embed, strategy):
    r = build(nodes, embed, strategy=strategy)
    selected = [n.node.node_id for n in r.retrieve("wonderful")]
    gone = {selected[0], "node-010", "node-011", "node-040"}
    receipt = r.forget(sorted(gone))
    assert receipt.ids == tuple(sorted(gone)) and receipt.n_remaining == len(nodes) - 4
    fresh = build([n for n in nodes if n.node_id not in gone], HashingEmbedding(), strategy=strategy)
    assert r.digest() == fresh.digest() and r.fingerprint() == fresh.fingerprint() and r.verify()
    for query in QUERIES:
        assert results(r.retrieve(query)) == results(fresh.retrieve(query))
    for i in gone:
        assert i not in r
        with pytest.raises(UnknownIdError):
            r.get_node(i)
    assert all(n.node.node_id not in gone for q in QUERIES for n in r.retrieve(q))


def test_forget_accepts_nodes_and_a_single_id_and_rejects_unknown_ids(nodes, embed):
    r = build(nodes, embed)
    got = r.retrieve("x")
    r.forget(got[0])  # a NodeWithScore
    r.forget(nodes[30])  # a node
    r.forget("node-031")  # a single id
    assert not {got[0].node.node_id, "node-030", "node-031"} & set(r.node_ids)
    digest = r.digest()
    with pytest.raises(UnknownIdError):
        r.forget(["node-001", "no-such-node"])
    assert r.digest() == digest and "node-001" in r
    receipt = r.forget(["node-001", "no-such-node"], missing="ignore")
    assert receipt.ids == ("node-001",)
    with pytest.raises(ERASEError):
        r.forget([42])


def test_insert_nodes_is_atomic_and_keeps_ids_unique(nodes, embed):
    r = build(nodes[:10], embed)
    digest = r.digest()
    with pytest.raises(DuplicateIdError):
        r.insert_nodes([nodes[10], nodes[3]])
    assert r.digest() == digest and "node-010" not in r
    r.insert_nodes(nodes[10:])
    assert r.digest() == build(nodes, HashingEmbedding()).digest()


def test_nodes_with_embeddings_are_not_re_embedded(nodes, embed):
    pre = [n.model_copy() for n in nodes[:5]]
    for n in pre:
        n.embedding = embed.vector(n.text)
    r = ERASERetriever.from_defaults(nodes=pre + nodes[5:], embed_model=embed, similarity_top_k=4, strategy="erase", seed=3)
    assert embed.calls["text"] == len(nodes) - 5
    assert r.digest() == build(nodes, HashingEmbedding()).digest()


def test_documents_are_split_and_only_the_source_link_is_kept(embed):
    text = " ".join(f"Sentence number {i} talks about topic {i % 5}." for i in range(60))
    doc = Document(text=text, id_="doc-1", metadata={"owner": "alice"})
    splitter = SentenceSplitter(chunk_size=64, chunk_overlap=0)
    r = ERASERetriever.from_defaults(documents=[doc], embed_model=embed, transformations=[splitter], similarity_top_k=3)
    assert len(r) > 3
    node = r.get_node(r.node_ids[1])
    assert node.ref_doc_id == "doc-1" and node.metadata == {"owner": "alice"}
    assert set(node.relationships) == {NodeRelationship.SOURCE}
    assert node.relationships[NodeRelationship.SOURCE].metadata == {}
    assert node.relationships[NodeRelationship.SOURCE].hash is None
    r.insert_documents([Document(text="another document entirely", id_="doc-2")], transformations=[splitter])
    n_before = len(r)
    receipt = r.delete_ref_doc("doc-1")
    assert len(receipt.ids) == n_before - 1 and len(r) == 1
    assert [r.get_node(i).ref_doc_id for i in r.node_ids] == ["doc-2"]
    assert r.delete_ref_doc("doc-1").ids == ()  # as in LlamaIndex: nothing to delete is not an error


def test_other_node_types_round_trip(embed):
    from llama_index.core.schema import IndexNode

    doc = Document(text="a whole document as one example", id_="d1", metadata={"k": [1, 2]})
    idx = IndexNode(text="points elsewhere", index_id="other", id_="i1")
    r = ERASERetriever.from_defaults(nodes=[doc, idx], embed_model=embed, similarity_top_k=2, strategy="similarity")
    assert isinstance(r.get_node("d1"), Document) and r.get_node("d1").metadata == {"k": [1, 2]}
    assert isinstance(r.get_node("i1"), IndexNode) and r.get_node("i1").index_id == "other"


def test_bad_arguments(nodes, embed):
    with pytest.raises(ERASEError):
        build(nodes, embed, strategy="nearest")
    with pytest.raises(ERASEError):
        build(nodes, embed, k=0)
    with pytest.raises(ERASEError):
        ERASERetriever.from_defaults(nodes=nodes, embed_model="not an embedding")
    with pytest.raises(ERASEError):
        ERASERetriever("not an index", embed)
    r = build(nodes, embed)
    with pytest.raises(ERASEError):
        r.insert_nodes([TextNode(id_="x", text="t", embedding=[1.0, 2.0])])
    assert "x" not in r


def test_warns_when_the_embedding_model_caches_texts(nodes):
    from llama_index.core.storage.kvstore import SimpleKVStore

    with pytest.warns(UserWarning, match="embeddings_cache"):
        build(nodes[:5], HashingEmbedding(embeddings_cache=SimpleKVStore()))


def test_default_embed_model_comes_from_settings_when_set(nodes, embed):
    from llama_index.core import Settings

    old = Settings._embed_model
    Settings.embed_model = embed
    try:
        r = ERASERetriever.from_defaults(nodes=nodes[:6])
        assert r.embed_model is embed
    finally:
        Settings._embed_model = old


def test_concurrent_retrieve_forget_and_insert(nodes, embed):
    import threading

    r = build(nodes, embed, strategy="erase")
    errors = []

    def reader():
        try:
            for _ in range(40):
                got = r.retrieve("wonderful")
                assert len({n.node.node_id for n in got}) == len(got) <= 4
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for n in nodes[:40]:
        r.forget(n.node_id)
    r.insert_nodes(nodes[:5])
    for t in threads:
        t.join()
    assert not errors
    assert r.digest() == build(nodes[:5] + nodes[40:], HashingEmbedding()).digest()


def test_bad_query_embeddings_are_rejected(embed):
    for strategy, n in (("erase", 3), ("erase", 20), ("similarity", 20)):
        r = build(example_nodes(n), embed, strategy=strategy)
        with pytest.raises(ERASEError):
            r.retrieve(QueryBundle("q", embedding=[1.0, 2.0]))
        with pytest.raises(ERASEError):
            r.retrieve(QueryBundle("q", embedding=[0.0] * embed.dim))


def test_payloads_must_be_json(embed):
    import datetime

    r = build(example_nodes(5), embed)
    with pytest.raises(ERASEError, match="JSON"):
        r.insert_nodes([TextNode(id_="d", text="t", metadata={"when": datetime.datetime(2020, 1, 1)})])
    assert "d" not in r


def test_default_strategy_is_similarity(nodes, embed):
    r = ERASERetriever.from_defaults(nodes=nodes, embed_model=embed, similarity_top_k=3)
    assert r.strategy == "similarity"
    assert results(r.retrieve("the hotel was wonderful")) == results(build(nodes, embed, "similarity", k=3).retrieve(
        "the hotel was wonderful"))


def test_mmr_strategy_is_the_engines_mmr_and_takes_filters(tmp_path, nodes, embed):
    from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters

    r = build(nodes, embed, strategy="mmr", k=4, fetch_k=12, lambda_mult=0.3)
    for query in QUERIES[:3]:
        want = r.index.search(embed.vector(query), 4, mmr=True, fetch_k=12, lambda_mult=0.3)
        assert results(r.retrieve(query)) == [(x.id, x.score) for x in want]
    pure = build(nodes, embed, strategy="mmr", k=4, lambda_mult=1.0)
    assert [n.node.node_id for n in pure.retrieve("a waste of money")] == [
        n.node.node_id for n in build(nodes, embed, strategy="similarity", k=4).retrieve("a waste of money")]
    positive = MetadataFilters(filters=[MetadataFilter(key="label", value="positive")])
    filtered = build(nodes, embed, strategy="mmr", k=4, filters=positive)
    pool = build([n for n in nodes if n.metadata["label"] == "positive"], HashingEmbedding(), strategy="mmr", k=4)
    for query in QUERIES[:3]:
        assert results(filtered.retrieve(query)) == results(pool.retrieve(query))
    with pytest.raises(ERASEError, match="fetch_k"):
        build(nodes, embed, strategy="mmr", fetch_k=0)
    with pytest.raises(ERASEError, match="lambda_mult"):
        build(nodes, embed, strategy="mmr", lambda_mult=1.5)
    r.persist(tmp_path / "p")
    r.close()
    again = ERASERetriever.from_persist_dir(tmp_path / "p", embed_model=embed)
    assert (again.strategy, again.fetch_k, again.lambda_mult) == ("mmr", 12, 0.3)
    assert results(again.retrieve(QUERIES[0])) == results(build(nodes, embed, strategy="mmr", k=4, fetch_k=12,
                                                                lambda_mult=0.3).retrieve(QUERIES[0]))
    again.close()
