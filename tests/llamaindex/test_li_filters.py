"""Forget a person, LlamaIndex side: delete_ref_doc, forget_where and MetadataFilters on retrieve."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from llama_index.core import VectorStoreIndex
from llama_index.core.ingestion import run_transformations
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import Document, TextNode
from llama_index.core.vector_stores.simple import SimpleVectorStore
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
)
from llama_index.core.vector_stores.utils import build_metadata_filter_fn

from erase_core import ERASEError, UnknownIdError
from erase_core.storage import keys_path
from erase_llamaindex import PERSIST_SETTINGS_FILENAME, PERSIST_STORE_FILENAME, ERASERetriever, ERASEVectorStore
from residue import assert_sealed, plaintext_needles, sealed_rows

from .helpers import HashingEmbedding, results

QUERIES = ["the invoice was paid late", "shipping to berlin", "refund for order 17", ""]
TENANTS = ["acme", "globex", "initech"]


def corpus() -> list[TextNode]:
    """Nodes split from six documents (each with a ref_doc_id and the document's metadata),
    plus three standalone nodes without a source document."""
    docs = []
    for d in range(6):
        body = " ".join(
            f"Customer {d} wrote message {j} about order {d * 10 + j} and shipping to city {j % 4}." for j in range(9)
        )
        docs.append(Document(
            text=body, id_=f"doc-{d}",
            metadata={"tenant": TENANTS[d % 3], "lang": "en" if d % 2 else "de", "stars": d % 3, "tags": ["t", str(d)]},
        ))
    splitter = SentenceSplitter(chunk_size=64, chunk_overlap=0)
    nodes = list(run_transformations(docs, [splitter]))
    nodes += [
        TextNode(id_=f"loose-{i}", text=f"a loose note {i} about a refund", metadata={"tenant": TENANTS[i], "stars": 1.0})
        for i in range(3)
    ]
    return nodes


def build(nodes, strategy="similarity", k=4, embed=None, **kw) -> ERASERetriever:
    return ERASERetriever.from_defaults(
        nodes=nodes, embed_model=embed or HashingEmbedding(), similarity_top_k=k, strategy=strategy, seed=2, **kw
    )


def f(key, value, op=FilterOperator.EQ) -> MetadataFilter:
    return MetadataFilter(key=key, value=value, operator=op)


def mf(*filters, condition=FilterCondition.AND) -> MetadataFilters:
    return MetadataFilters(filters=list(filters), condition=condition)


def li_pool(nodes, filters: MetadataFilters) -> set[str]:
    """The nodes LlamaIndex's own filter function (SimpleVectorStore's) lets through."""
    by_id = {n.node_id: n.metadata for n in nodes}
    keep = build_metadata_filter_fn(lambda i: by_id[i], filters)
    return {i for i in by_id if keep(i)}


def exact_top_k(r: ERASERetriever, pool: set[str], query: str, k: int) -> list[tuple[str, float]]:
    """Exact top-k by cosine over ``pool`` (stored unit vectors, float64), ties by id."""
    q = np.asarray(r.embed_model.get_query_embedding(query), dtype=np.float64)
    q /= np.linalg.norm(q)
    scored = [(i, float(r.index.vector(i).astype(np.float64) @ q)) for i in pool]
    return sorted(scored, key=lambda t: (-t[1], t[0]))[:k]


# ---------------------------------------------------------------------------------- recording
def test_nodes_record_their_ref_doc_id_and_json_metadata():
    nodes = corpus()
    nested = TextNode(id_="nested", text="x", metadata={"tags": ("a",), "obj": {"k": 1}, "n": 2, "none": None})
    r = build(nodes + [nested])
    first = nodes[0]
    assert r.index.attributes(first.node_id) == {
        "subject": "doc-0", "metadata": {"tenant": "acme", "lang": "de", "stars": 0, "tags": ["t", "0"]},
    }
    assert r.get_node(first.node_id).metadata == first.metadata
    assert r.index.attributes("loose-1") == {"subject": None, "metadata": {"tenant": "globex", "stars": 1.0}}
    # the JSON form SimpleVectorStore filters on: a tuple is a list
    assert r.index.attributes("nested") == {
        "subject": None, "metadata": {"tags": ["a"], "obj": {"k": 1}, "n": 2, "none": None},
    }
    assert r.get_node("nested").metadata["tags"] == ["a"]
    assert r.ref_doc_node_ids("doc-3") == sorted(n.node_id for n in nodes if n.ref_doc_id == "doc-3")
    assert len(r.ref_doc_node_ids("doc-3")) > 1 and r.ref_doc_node_ids("no-such-doc") == []
    assert r.verify()


# ---------------------------------------------------------------------------------- delete_ref_doc
@pytest.mark.parametrize("strategy", ["erase", "similarity"])
def test_delete_ref_doc_equals_a_fresh_build_without_its_nodes(strategy):
    nodes = corpus()
    r = build(nodes, strategy)
    gone = sorted(n.node_id for n in nodes if n.ref_doc_id == "doc-2")
    receipt = r.delete_ref_doc("doc-2")
    assert list(receipt.ids) == gone and receipt.n_remaining == len(nodes) - len(gone)
    fresh = build([n for n in nodes if n.ref_doc_id != "doc-2"], strategy)
    assert r.digest() == fresh.digest() and r.fingerprint() == fresh.fingerprint() and r.verify()
    assert [results(r.retrieve(q)) for q in QUERIES] == [results(fresh.retrieve(q)) for q in QUERIES]
    # one audit entry, a subject request, that answers "was doc-2 forgotten?" and nothing else
    (entry,) = r.forgotten(ref_doc_id="doc-2")
    assert entry["request"] == "subject" and entry["count"] == len(gone)
    assert r.forgotten(ref_doc_id="doc-1") == [] and r.forgotten(node_id=gone[0]) == [entry]
    assert r.index.check_audit()


def test_delete_ref_doc_deletes_what_llamaindex_deletes():
    """The same nodes in a VectorStoreIndex: its delete_ref_doc leaves the same node ids."""
    nodes = corpus()
    embed = HashingEmbedding()
    li = VectorStoreIndex([n.model_copy() for n in nodes], embed_model=embed)
    r = build(nodes, embed=embed)
    for ref in ["doc-4", "doc-0", "no-such-doc"]:
        li.delete_ref_doc(ref)
        r.delete_ref_doc(ref)
        assert set(r.node_ids) == set(li.vector_store.data.embedding_dict)


def test_delete_ref_doc_has_llamaindex_calling_conventions(caplog):
    nodes = corpus()
    r = build(nodes)
    digest = r.digest()
    with caplog.at_level(logging.WARNING, logger="erase_llamaindex.retriever"):
        receipt = r.delete_ref_doc("private-doc-of-jane-doe")
    assert receipt.ids == () and r.digest() == digest
    assert "nothing deleted" in caplog.text and "jane" not in caplog.text  # no copy of the request in the log
    assert len(r.forgotten(ref_doc_id="private-doc-of-jane-doe")) == 1  # the empty request is audited
    assert len(r.delete_ref_doc("doc-1", delete_from_docstore=True).ids) > 0  # accepted: nothing else to delete
    with pytest.raises(ERASEError, match="some_vector_store_option"):
        r.delete_ref_doc("doc-3", some_vector_store_option=True)
    for bad in (None, "", 7):
        with pytest.raises(ERASEError, match="ref_doc_id"):
            r.delete_ref_doc(bad)
    assert r.ref_doc_node_ids("doc-3")  # nothing went
    # nodes without a source document are not reached by ref doc id (forget them by id)
    assert r.delete_ref_doc("None").ids == () and "loose-0" in r


def test_forget_ref_doc_is_a_deprecated_strict_alias():
    nodes = corpus()
    r = build(nodes)
    with pytest.warns(DeprecationWarning, match="delete_ref_doc"):
        receipt = r.forget_ref_doc("doc-5")
    assert receipt.ids and not r.ref_doc_node_ids("doc-5")
    with pytest.warns(DeprecationWarning), pytest.raises(UnknownIdError):
        r.forget_ref_doc("doc-5")
    with pytest.warns(DeprecationWarning):
        assert r.forget_ref_doc("doc-5", missing="ignore").ids == ()

    async def main():
        return await r.aforget_ref_doc("doc-4")

    with pytest.warns(DeprecationWarning, match="adelete_ref_doc"):
        assert asyncio.run(main()).ids
    assert r.digest() == build([n for n in nodes if n.ref_doc_id not in ("doc-4", "doc-5")]).digest()


def test_delete_ref_doc_after_persist_and_reopen_equals_a_fresh_build(tmp_path):
    nodes = corpus()
    d = tmp_path / "p"
    build(nodes, "erase", persist_dir=d).close()
    r = ERASERetriever.from_persist_dir(d, embed_model=HashingEmbedding())
    other = ERASERetriever.from_persist_dir(d, embed_model=HashingEmbedding())
    assert r.index.attributes(nodes[0].node_id)["subject"] == "doc-0"
    r.delete_ref_doc("doc-1")
    keep = [n for n in nodes if n.ref_doc_id != "doc-1"]
    fresh = build(keep, "erase")
    assert r.digest() == fresh.digest() == other.digest() and r.verify()  # the other handle sees it at once
    assert other.ref_doc_node_ids("doc-1") == []
    other.delete_ref_doc("doc-3")  # and the other way round
    keep = [n for n in keep if n.ref_doc_id != "doc-3"]
    assert r.digest() == build(keep, "erase").digest()
    r.close(), other.close()
    reopened = ERASERetriever.from_persist_dir(d, embed_model=HashingEmbedding())
    assert reopened.digest() == build(keep, "erase").digest()
    assert len(reopened.forgotten(ref_doc_id="doc-1")) == 1 and reopened.index.check_audit()
    reopened.close()


# ---------------------------------------------------------------------------------- filtered retrieval
FILTERS = {
    "eq": mf(f("tenant", "globex")),
    "in": mf(f("tenant", ["acme", "initech"], FilterOperator.IN)),
    "and": mf(f("tenant", ["acme", "globex"], FilterOperator.IN), f("lang", "en")),
    "same-key-and": mf(f("tenant", ["acme", "globex"], FilterOperator.IN), f("tenant", "globex")),
    "numeric-eq": mf(f("stars", 1)),  # 1 == 1.0: matches the loose nodes' 1.0 too, as in LlamaIndex
    "float-in": mf(f("stars", [1.0, 2.0], FilterOperator.IN)),
    "none-match": mf(f("tenant", "umbrella")),
    "list-field-eq": mf(f("tags", "t")),  # a list value never equals a scalar: nothing matches
    "unknown-key": mf(f("colour", "red")),
    "ne": mf(f("tenant", "acme", FilterOperator.NE)),
    "nin": mf(f("tenant", ["acme", "globex"], FilterOperator.NIN)),
    "gt": mf(f("stars", 0, FilterOperator.GT)),
    "lte-float": mf(f("stars", 1.5, FilterOperator.LTE)),
    "or": mf(f("tenant", "acme"), f("stars", 2), condition=FilterCondition.OR),
    "not": mf(f("lang", "en"), f("stars", 2), condition=FilterCondition.NOT),
    "contains": mf(f("tags", "3", FilterOperator.CONTAINS)),
    "any": mf(f("tags", ["1", "4"], FilterOperator.ANY)),
    "all": mf(f("tags", ["t", "5"], FilterOperator.ALL)),
    "text-match": mf(f("tenant", "lob", FilterOperator.TEXT_MATCH)),
    "text-match-insensitive": mf(f("tenant", "INIT", FilterOperator.TEXT_MATCH_INSENSITIVE)),
    "is-empty": mf(f("lang", None, FilterOperator.IS_EMPTY)),
}
FILTERS["nested"] = mf(f("lang", "de"), mf(f("tenant", "acme"), f("stars", 1), condition=FilterCondition.OR))


def li_nested_pool(nodes, filters: MetadataFilters) -> set[str]:
    """Nested MetadataFilters, which SimpleVectorStore refuses, by its own rule at every level:
    each entry's pool from LlamaIndex's filter function, combined by the condition."""
    everyone = {n.node_id for n in nodes}
    pools = [li_nested_pool(nodes, x) if isinstance(x, MetadataFilters) else li_pool(nodes, mf(x)) for x in filters.filters]
    condition = filters.condition or FilterCondition.AND
    if condition == FilterCondition.AND:
        return set.intersection(everyone, *pools)
    union = set().union(*pools)
    return union if condition == FilterCondition.OR else everyone - union


@pytest.mark.parametrize("name", sorted(FILTERS))
@pytest.mark.parametrize("k", [1, 4, 100])
def test_filtered_retrieval_is_exact_top_k_over_the_filtered_pool(name, k):
    nodes = corpus()
    filters = FILTERS[name]
    pool = li_nested_pool(nodes, filters) if name == "nested" else li_pool(nodes, filters)
    if name in ("none-match", "list-field-eq", "unknown-key"):
        assert pool == set()
    else:
        assert 0 < len(pool) < len(nodes), name  # each filter tells nodes apart
    if name == "numeric-eq":
        assert {"loose-0", "loose-1", "loose-2"} < pool
    r = build(nodes, k=k)
    scoped = build(nodes, k=k, filters=filters)
    for q in QUERIES:
        want = exact_top_k(r, pool, q, k)
        got = r.retrieve(q, filters=filters)
        assert [n.node.node_id for n in got] == [i for i, _ in want]
        assert np.allclose([n.score for n in got], [s for _, s in want], rtol=0, atol=1e-12)
        assert results(scoped.retrieve(q)) == results(got)
    assert len(r.retrieve("x")) == min(k, len(nodes))  # the per-call filter did not stick


def test_retriever_filters_and_per_call_filters_must_both_hold():
    nodes = corpus()
    tenant = mf(f("tenant", "acme"))
    r = build(nodes, k=100, filters=tenant)
    assert r.filters is tenant
    assert {n.node.metadata["tenant"] for n in r.retrieve("order")} == {"acme"}
    # a per-call filter narrows, it cannot widen the retriever's own
    wider = mf(f("tenant", ["acme", "globex"], FilterOperator.IN))
    assert {n.node.node_id for n in r.retrieve("order", filters=wider)} == li_pool(nodes, tenant)
    narrower = mf(f("lang", "en"))
    both = li_pool(nodes, mf(f("tenant", "acme"), f("lang", "en")))
    assert {n.node.node_id for n in r.retrieve("order", filters=narrower)} == both
    assert r.retrieve("order", filters=mf(f("tenant", "globex"))) == []
    r.filters = None
    assert len(r.retrieve("order")) == len(nodes)
    r.filters = {"tenant": {"$in": ["initech"]}}  # a core filter dict works too
    assert {n.node.node_id for n in r.retrieve("order")} == li_pool(nodes, mf(f("tenant", "initech")))
    # an empty MetadataFilters is no filter, as in LlamaIndex
    r.filters = MetadataFilters(filters=[])
    assert len(r.retrieve("order")) == len(nodes)


def test_per_call_filters_stay_with_their_call_across_threads_and_tasks():
    nodes = corpus()
    r = build(nodes, k=100)
    by_tenant = {t: li_pool(nodes, mf(f("tenant", t))) for t in TENANTS}

    def one(i):
        t = TENANTS[i % 3]
        return t, {n.node.node_id for n in r.retrieve(f"order {i}", filters=mf(f("tenant", t)))}

    with ThreadPoolExecutor(4) as pool:
        for t, got in pool.map(one, range(24)):
            assert got == by_tenant[t]

    async def main():
        return await asyncio.gather(*(r.aretrieve("order", filters=mf(f("tenant", t))) for t in TENANTS * 2))

    for t, got in zip(TENANTS * 2, asyncio.run(main())):
        assert {n.node.node_id for n in got} == by_tenant[t]
    assert len(r.retrieve("order")) == len(nodes)


# per key a family of values, so that most conditions compare (SimpleVectorStore raises
# TypeError on values that do not), and "c" mixes everything
_BY_KEY = {
    "a": st.sampled_from([0, 1, 2, 1.0, 0.0, -0.0, 2.5, -3, True, False, None]),
    "b": st.sampled_from(["1", "a", "b", "ab", "Ab", "", "a%b_", "B a", None]),
    "c": st.one_of(
        st.sampled_from([0, 1, 2.5, True, False, "a", "ab", "", None, {"a": 1}, {"x": "a"}, {}]),
        st.lists(st.sampled_from([0, 1, 2.5, True, "a", "b", None]), max_size=3),
    ),
}
_METADATA = st.fixed_dictionaries({}, optional=_BY_KEY)
_KEYS = st.sampled_from(["a", "b", "c"])
_STR = st.sampled_from(["a", "b", "ab", "A", "", "%", "b_", "1"])
_NUM = st.sampled_from([0, 1, 2, -1, 1.0, 0.0, 0.5, 2.5])
_SCALAR = st.one_of(_STR, _NUM)
_LIST = st.one_of(st.lists(_STR, max_size=3), st.lists(_NUM, max_size=3))
_OPERANDS = {
    FilterOperator.EQ: st.one_of(_SCALAR, _LIST, st.none()),
    FilterOperator.NE: st.one_of(_SCALAR, _LIST, st.none()),
    **{op: _SCALAR for op in (FilterOperator.GT, FilterOperator.GTE, FilterOperator.LT, FilterOperator.LTE)},
    **{op: _LIST for op in (FilterOperator.IN, FilterOperator.NIN, FilterOperator.ANY, FilterOperator.ALL)},
    FilterOperator.CONTAINS: st.one_of(_SCALAR, _LIST, st.none()),
    FilterOperator.TEXT_MATCH: _STR,
    FilterOperator.TEXT_MATCH_INSENSITIVE: _STR,
    FilterOperator.IS_EMPTY: st.none(),
}
assert set(_OPERANDS) == set(FilterOperator)  # every operator LlamaIndex has


@st.composite
def _filter(draw):
    op = draw(st.sampled_from(sorted(FilterOperator, key=lambda o: o.name)))
    try:
        return f(draw(_KEYS), draw(_OPERANDS[op]), op)
    except ValueError:  # pydantic: a value MetadataFilter does not take
        assume(False)


def _metadata_filters(depth: int):
    entries = st.one_of(_filter(), _filter(), _metadata_filters(depth - 1)) if depth else _filter()
    return st.builds(
        lambda fs, c: mf(*fs, condition=c), st.lists(entries, min_size=1, max_size=3), st.sampled_from(list(FilterCondition)),
    )


def _stock_pools(nodes, filters: MetadataFilters) -> tuple[set[str], set[str]]:
    """SimpleVectorStore's answer for ``filters``: the nodes its filter function lets through,
    and the nodes on which it raises TypeError (values that do not compare, e.g. ``"a" > 1``),
    which have no answer. Evaluated node by node on what a real SimpleVectorStore recorded,
    with the function its ``query`` calls; nested filters by its rule at every level; where no
    node raises, its ``query`` itself must agree."""
    store = SimpleVectorStore()
    store.add([n.model_copy() for n in nodes])
    recorded = store.data.metadata_dict

    def holds(fs: MetadataFilters, i: str) -> bool:
        if not any(isinstance(x, MetadataFilters) for x in fs.filters):
            return build_metadata_filter_fn(lambda j: recorded[j], fs)(i)
        results = [holds(x, i) if isinstance(x, MetadataFilters) else holds(mf(x), i) for x in fs.filters]
        condition = fs.condition or FilterCondition.AND
        if condition == FilterCondition.AND:
            return all(results)
        return any(results) if condition == FilterCondition.OR else not any(results)

    pool, raised = set(), set()
    for n in nodes:
        try:
            if holds(filters, n.node_id):
                pool.add(n.node_id)
        except TypeError:
            raised.add(n.node_id)
    if not raised and not any(isinstance(x, MetadataFilters) for x in filters.filters):
        q = VectorStoreQuery(query_embedding=nodes[0].embedding, similarity_top_k=len(nodes), filters=filters)
        assert set(store.query(q).ids) == pool
    return pool, raised


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(
    st.lists(_METADATA, min_size=1, max_size=10),
    st.lists(_metadata_filters(2), min_size=1, max_size=6),
)
def test_filter_semantics_equal_llamaindex_simple_vector_store(metadatas, filter_list):
    """Every FilterOperator and FilterCondition, nested, over mixed int/float/bool/str/None/list/
    dict values: the pool ERASE filters to is the one a real SimpleVectorStore returns (where it
    answers; where it raises TypeError the condition is false, see erase_llamaindex._filters),
    in the retriever, the vector store and forget_where alike."""
    embed = HashingEmbedding(dim=16)
    nodes = [
        TextNode(id_=f"n{i}", text=f"node {i}", metadata=m, embedding=embed.vector(f"node {i}"))
        for i, m in enumerate(metadatas)
    ]
    r = build(nodes, k=len(nodes), embed=embed)
    vs = ERASEVectorStore.from_defaults(seed=2)
    vs.add([n.model_copy() for n in nodes])
    for filters in filter_list:
        got = {n.node.node_id for n in r.retrieve("node", filters=filters)}
        assert {i for i in vs.index.ids if i in got} == got
        result = vs.query(VectorStoreQuery(query_embedding=nodes[0].embedding, similarity_top_k=len(nodes), filters=filters))
        assert set(result.ids) == got
        want, unknown = _stock_pools(nodes, filters)
        assert got - unknown == want, filters
    # forgetting by the last filter forgets exactly that pool
    gone = set(r.forget_where(filter_list[-1]).ids)
    assert gone == got and set(r.node_ids) == {n.node_id for n in nodes} - got


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(
    st.lists(_METADATA, min_size=1, max_size=10),
    st.lists(st.builds(lambda fs, c: mf(*fs, condition=c), st.lists(_filter(), min_size=1, max_size=2),
                       st.sampled_from(list(FilterCondition))), min_size=1, max_size=12),
)
def test_each_operator_equals_llamaindex_simple_vector_store(metadatas, filter_list):
    """One or two conditions at a time, many per example: each operator's rule (Python's
    ``True == 1``, missing and None values, ``in`` on strings, lists and dicts) on its own."""
    embed = HashingEmbedding(dim=16)
    nodes = [
        TextNode(id_=f"n{i}", text=f"node {i}", metadata=m, embedding=embed.vector(f"node {i}"))
        for i, m in enumerate(metadatas)
    ]
    vs = ERASEVectorStore.from_defaults(seed=2)
    vs.add([n.model_copy() for n in nodes])
    for filters in filter_list:
        result = vs.query(VectorStoreQuery(query_embedding=nodes[0].embedding, similarity_top_k=len(nodes), filters=filters))
        want, unknown = _stock_pools(nodes, filters)
        assert set(result.ids) - unknown == want, filters


_A_VALUES = [0, 1, 2, 1.0, 0.0, -0.0, 2.5, -3, True, False, None]
_B_VALUES = ["1", "a", "b", "ab", "Ab", "", "a%b_", "B a", "%", None]
_C_VALUES = [{"a": 1}, {"x": "a"}, {}, [], [0], [1], [True], [False], [2.5], ["a"], ["a", "b"], [None], [1, "a"], [[1]]]
_STR_OPERANDS = ["a", "b", "ab", "A", "", "%", "b_", "1", "B"]
_NUM_OPERANDS = [0, 1, 2, -1, 1.0, 0.0, 0.5, 2.5]
_LIST_OPERANDS = [[], ["a"], ["a", "b"], ["%"], [0], [1], [1.0, 2.5], [0, 2], [1, 2]]
_ALL_OPERANDS = {
    FilterOperator.EQ: [*_STR_OPERANDS, *_NUM_OPERANDS, *_LIST_OPERANDS, None],
    FilterOperator.CONTAINS: [*_STR_OPERANDS, *_NUM_OPERANDS, *_LIST_OPERANDS, None],
    FilterOperator.TEXT_MATCH: _STR_OPERANDS,
    FilterOperator.IS_EMPTY: [None],
}
_ALL_OPERANDS[FilterOperator.NE] = _ALL_OPERANDS[FilterOperator.EQ]
_ALL_OPERANDS[FilterOperator.TEXT_MATCH_INSENSITIVE] = _STR_OPERANDS
for _op in (FilterOperator.GT, FilterOperator.GTE, FilterOperator.LT, FilterOperator.LTE):
    _ALL_OPERANDS[_op] = [*_STR_OPERANDS, *_NUM_OPERANDS]
for _op in (FilterOperator.IN, FilterOperator.NIN, FilterOperator.ANY, FilterOperator.ALL):
    _ALL_OPERANDS[_op] = _LIST_OPERANDS


def test_every_operator_and_operand_equals_llamaindex_simple_vector_store():
    """Exhaustive over small pools: every FilterOperator with every operand of its pool, on
    every key, over nodes holding each value (ints, floats, bools, None, strings with LIKE
    wildcards, lists, dicts) or nothing: the nodes ERASE returns are SimpleVectorStore's."""
    assert set(_ALL_OPERANDS) == set(FilterOperator)
    embed = HashingEmbedding(dim=16)
    metadatas = [{}, *({"a": v} for v in _A_VALUES), *({"b": v} for v in _B_VALUES), *({"a": v} for v in _C_VALUES)]
    nodes = [TextNode(id_=f"n{i:02d}", text=f"node {i}", metadata=m, embedding=embed.vector(f"node {i}"))
             for i, m in enumerate(metadatas)]
    vs = ERASEVectorStore.from_defaults(seed=2)
    vs.add([n.model_copy() for n in nodes])
    checked = 0
    for op, operands in _ALL_OPERANDS.items():
        for key in ("a", "b", "zz"):
            for value in operands:
                try:
                    filters = mf(f(key, value, op))
                except ValueError:
                    continue  # a value MetadataFilter itself refuses
                q = VectorStoreQuery(query_embedding=nodes[0].embedding, similarity_top_k=len(nodes), filters=filters)
                got = set(vs.query(q).ids)
                want, unknown = _stock_pools(nodes, filters)
                assert got - unknown == want, filters
                for negated in (mf(f(key, value, op), condition=FilterCondition.NOT),):
                    q = VectorStoreQuery(query_embedding=nodes[0].embedding, similarity_top_k=len(nodes), filters=negated)
                    assert set(vs.query(q).ids) - unknown == {n.node_id for n in nodes} - unknown - want
                checked += len(nodes) - len(unknown)
    assert checked > 10_000


# ---------------------------------------------------------------------------------- what raises
UNSUPPORTED = [
    mf(f("tenant", ["acme"], FilterOperator.GT)),  # an order needs a number or a string
    mf(f("stars", None, FilterOperator.LT)),
    mf(f("tenant", "acme", FilterOperator.IN)),  # IN, NIN, ANY, ALL need a list
    mf(f("tenant", "acme", FilterOperator.NIN)),
    mf(f("tags", "t", FilterOperator.ANY)),
    mf(f("tags", 3, FilterOperator.ALL)),
    mf(f("tenant", 3, FilterOperator.TEXT_MATCH)),  # TEXT_MATCH needs a string
    mf(f("tenant", ["a"], FilterOperator.TEXT_MATCH_INSENSITIVE)),
    mf(f("$tenant", "acme")),  # "$" keys are the core language's operators
    mf(f("lang", "en"), mf(f("tenant", 1, FilterOperator.IN), condition=FilterCondition.OR)),  # nested, still checked
    {"tenant": {"$regex": "ac.*"}},
    {"$nor": [{"tenant": "acme"}]},
    {"tenant": {"$gt": [1]}},
    {"$tenant": "acme"},
    {},
    "tenant == acme",
]


@pytest.mark.parametrize("filters", UNSUPPORTED, ids=lambda x: repr(x)[:60])
def test_bad_filters_raise_and_change_nothing(filters):
    nodes = corpus()
    r = build(nodes)
    digest = r.digest()
    with pytest.raises(ERASEError):
        build(nodes, filters=filters)
    with pytest.raises(ERASEError):
        r.retrieve("order", filters=filters)
    with pytest.raises(ERASEError):
        asyncio.run(r.aretrieve("order", filters=filters))
    with pytest.raises(ERASEError):
        r.filters = filters
    with pytest.raises(ERASEError):
        r.forget_where(filters)
    assert r.filters is None and r.digest() == digest and len(r.index.audit()) == 0
    empty = build([])  # raised before any shortcut, also on an empty pool
    with pytest.raises(ERASEError):
        empty.retrieve("order", filters=filters)


def test_bad_filter_messages_name_the_problem():
    r = build(corpus())
    with pytest.raises(ERASEError, match=r"IN on 'tenant'.*needs a list value, got 'acme'"):
        r.retrieve("q", filters=mf(f("tenant", "acme", FilterOperator.IN)))
    with pytest.raises(ERASEError, match=r"GT on 'tenant' needs a finite number or a string, got \['acme'\]"):
        r.retrieve("q", filters=mf(f("tenant", ["acme"], FilterOperator.GT)))
    with pytest.raises(ERASEError, match=r"unsupported operator '\$regex' on field 'tenant'"):
        r.retrieve("q", filters={"tenant": {"$regex": "a"}})
    with pytest.raises(ERASEError, match="too many 0/1 elements"):  # [1, 0, ...] == [True, False, ...] in Python
        r.retrieve("q", filters=mf(f("flags", [1, 0] * 5)))
    assert r.retrieve("q", filters=mf(f("flags", [1, 0] * 4))) == []  # 256 spellings: still answered


def test_python_equality_in_metadata_filters_json_equality_in_core_dicts():
    """The rule of each framework: LlamaIndex compares with Python (``True == 1``); a core
    filter dict compares JSON values (``true`` is not ``1``), as LangChain's layer does."""
    embed = HashingEmbedding(dim=16)
    nodes = [TextNode(id_=i, text=i, metadata={"v": v}, embedding=embed.vector(i))
             for i, v in [("int", 1), ("float", 1.0), ("bool", True), ("str", "1"), ("zero", False)]]
    r = build(nodes, k=5, embed=embed)
    assert {n.node.node_id for n in r.retrieve("x", filters=mf(f("v", 1)))} == {"int", "float", "bool"} == li_pool(nodes, mf(f("v", 1)))
    assert {n.node.node_id for n in r.retrieve("x", filters=mf(f("v", 0, FilterOperator.GT)))} == {"int", "float", "bool"}
    assert {n.node.node_id for n in r.retrieve("x", filters={"v": 1})} == {"int", "float"}
    assert {n.node.node_id for n in r.retrieve("x", filters={"v": True})} == {"bool"}


def test_erase_strategy_refuses_filters():
    nodes = corpus()
    tenant = mf(f("tenant", "acme"))
    with pytest.raises(ERASEError, match="strategy 'similarity'"):
        build(nodes, "erase", filters=tenant)
    r = build(nodes, "erase")
    for call in (lambda: r.retrieve("order", filters=tenant), lambda: asyncio.run(r.aretrieve("order", filters=tenant))):
        with pytest.raises(ERASEError, match="strategy 'similarity'"):
            call()
    with pytest.raises(ERASEError, match="strategy 'similarity'"):
        r.filters = tenant
    with pytest.raises(ERASEError, match="strategy 'similarity'"):
        build([], "erase").retrieve("order", filters=tenant)
    r.filters = MetadataFilters(filters=[])  # no filter at all is fine
    assert len(r.retrieve("order")) == 4
    # forgetting by metadata is not selection: it works with either strategy
    assert r.forget_where(tenant).ids
    assert r.digest() == build([n for n in nodes if n.metadata["tenant"] != "acme"], "erase").digest()


# ---------------------------------------------------------------------------------- forget_where
@pytest.mark.parametrize("persisted", [False, True])
def test_forget_where_equals_a_fresh_build(tmp_path, persisted):
    nodes = corpus()
    r = build(nodes, "erase", persist_dir=tmp_path / "p" if persisted else None)
    filters = mf(f("tenant", ["acme", "initech"], FilterOperator.IN), f("lang", "de"))
    gone = li_pool(nodes, filters)
    receipt = r.forget_where(filters)
    assert set(receipt.ids) == gone and gone
    keep = [n for n in nodes if n.node_id not in gone]
    assert r.digest() == build(keep, "erase").digest() and r.verify()
    (entry,) = r.forgotten(filters=filters)
    assert entry["request"] == "where" and entry["count"] == len(gone)
    # numeric equality as in LlamaIndex: stars == 1 also forgets the loose nodes' 1.0
    gone = li_pool(keep, mf(f("stars", 1)))
    assert set(r.forget_where({"stars": 1}).ids) == gone and {"loose-0", "loose-1", "loose-2"} <= gone
    keep = [n for n in keep if n.node_id not in gone]
    assert r.digest() == build(keep, "erase").digest()
    with pytest.raises(ERASEError, match="at least one"):
        r.forget_where(MetadataFilters(filters=[]))
    if persisted:
        r.close()
        r = ERASERetriever.from_persist_dir(tmp_path / "p", embed_model=HashingEmbedding())
        assert r.digest() == build(keep, "erase").digest() and len(r.forgotten(filters=filters)) == 1
    r.close()


def test_async_delete_ref_doc_and_forget_where():
    nodes = corpus()
    r = build(nodes)

    async def main():
        a = await r.adelete_ref_doc("doc-0")
        b = await r.aforget_where(mf(f("tenant", "initech")))
        c = await r.aretrieve("order", filters=mf(f("tenant", "globex")))
        return a, b, c

    a, b, c = asyncio.run(main())
    keep = [n for n in nodes if n.ref_doc_id != "doc-0" and n.metadata["tenant"] != "initech"]
    assert a.ids and b.ids and r.digest() == build(keep).digest()
    assert results(c) == results(build(keep).retrieve("order", filters=mf(f("tenant", "globex"))))


# ---------------------------------------------------------------------------------- persistence and residue
def test_metadata_survives_persist_and_filters_are_not_persisted(tmp_path):
    nodes = corpus()
    tenant = mf(f("tenant", "initech-secret-tenant"))
    r = build(nodes, persist_dir=tmp_path / "p", filters=mf(f("tenant", "globex")))
    expected = {q: results(r.retrieve(q)) for q in QUERIES}
    r.filters = tenant
    r.persist(tmp_path / "p")  # rewrites the settings of a bound retriever
    raw = (tmp_path / "p" / PERSIST_SETTINGS_FILENAME).read_text()
    assert "initech" not in raw and "globex" not in raw
    r.close()
    reopened = ERASERetriever.from_persist_dir(tmp_path / "p", embed_model=HashingEmbedding())
    assert reopened.filters is None
    assert {q: results(reopened.retrieve(q, filters=mf(f("tenant", "globex")))) for q in QUERIES} == expected
    scoped = ERASERetriever.from_persist_dir(tmp_path / "p", embed_model=HashingEmbedding(), filters=mf(f("tenant", "globex")))
    assert {q: results(scoped.retrieve(q)) for q in QUERIES} == expected
    assert all(reopened.index.attributes(n.node_id)["subject"] == n.ref_doc_id for n in nodes if n.ref_doc_id)
    reopened.close(), scoped.close()


def _secret_documents() -> list[Document]:
    return [
        Document(
            text=" ".join(f"Patient Quux{d}Zelda reported SECRET{d}TEXT{j:02d} about the clinic visit {j}." for j in range(6)),
            id_=f"secret-doc-of-zelda-{d}-7f1e",
            metadata={"email": f"zelda{d}.private@example.org", "tenant": "hospital"},
        )
        for d in range(2)
    ]


@pytest.mark.parametrize("how", ["delete_ref_doc", "forget_where"])
def test_deleted_document_leaves_no_trace_in_the_persist_dir(tmp_path, how):
    docs = _secret_documents()
    nodes = corpus() + list(run_transformations(docs, [SentenceSplitter(chunk_size=64, chunk_overlap=0)]))
    target = docs[0]
    gone = {n.node_id for n in nodes if n.ref_doc_id == target.doc_id}
    assert len(gone) > 1
    d, backup = tmp_path / "store", tmp_path / "backup"
    store = d / PERSIST_STORE_FILENAME
    r = build(nodes, persist_dir=d)
    rows = sealed_rows(store)
    assert set(rows) == {n.node_id for n in nodes}

    def needles(n) -> list[bytes]:
        plain = rows[n.node_id][1]
        assert plain.id == n.node_id and json.loads(plain.payload_json)["__data__"]["text"] == n.text
        assert json.loads(plain.attrs_json)["s"] == n.ref_doc_id  # the ref doc id is sealed with the row
        words = [w for w in n.text.split() if w.startswith(("Quux", "SECRET"))]
        extra = [n.text, *words, *(str(v) for v in n.metadata.values() if isinstance(v, str)), plain.attrs_json]
        if n.ref_doc_id:
            extra.append(n.ref_doc_id)
        return plaintext_needles(plain, *extra)

    secret_nodes = [n for n in nodes if n.ref_doc_id and n.ref_doc_id.startswith("secret-doc")]
    all_needles = [needles(n) for n in secret_nodes]
    keys = {i: key for i, (key, _) in rows.items()}
    assert_sealed(d, store, all_needles, keys.values())
    backup.mkdir()
    for p in d.iterdir():  # a copy of the database (not the key file) from before the delete
        if p.name.startswith(PERSIST_STORE_FILENAME) and p != keys_path(store):
            shutil.copy(p, backup / p.name)
    if how == "delete_ref_doc":
        receipt = r.delete_ref_doc(target.doc_id)
    else:
        receipt = r.forget_where(mf(f("email", target.metadata["email"])))
    assert set(receipt.ids) == gone
    kept = [i for i in keys if i not in gone]
    # nothing of the deleted nodes in any file (the audit log holds keyed hashes only); their keys
    # are shredded; the kept nodes' keys are still there (the scan finds what is on disk)
    assert_sealed(d, store, all_needles, [keys[i] for i in kept], [keys[i] for i in gone])
    assert set(sealed_rows(store)) == set(kept)
    assert set(sealed_rows(backup / PERSIST_STORE_FILENAME, key_file=keys_path(store))) == set(kept)
    fresh = build([n for n in nodes if n.node_id not in gone])
    assert r.digest() == fresh.digest()
    r.close()
    assert_sealed(d, store, all_needles, [keys[i] for i in kept], [keys[i] for i in gone])
    reopened = ERASERetriever.from_persist_dir(d, embed_model=HashingEmbedding())
    assert reopened.digest() == fresh.digest() and reopened.ref_doc_node_ids(target.doc_id) == []
    assert len(reopened.forgotten(ref_doc_id=target.doc_id)) == 1
    reopened.close()


