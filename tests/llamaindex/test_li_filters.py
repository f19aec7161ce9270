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
from llama_index.core.vector_stores.types import FilterCondition, FilterOperator, MetadataFilter, MetadataFilters
from llama_index.core.vector_stores.utils import build_metadata_filter_fn

from erase_core import ERASEError, UnknownIdError
from erase_core.storage import keys_path
from erase_llamaindex import PERSIST_SETTINGS_FILENAME, PERSIST_STORE_FILENAME, ERASERetriever
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
def test_nodes_record_their_ref_doc_id_and_flat_metadata():
    nodes = corpus()
    nested = TextNode(id_="nested", text="x", metadata={"tags": ["a"], "obj": {"k": 1}, "n": 2, "none": None})
    r = build(nodes + [nested])
    first = nodes[0]
    assert r.index.attributes(first.node_id) == {
        "subject": "doc-0", "metadata": {"tenant": "acme", "lang": "de", "stars": 0},  # "tags" (a list) is not filterable
    }
    assert r.get_node(first.node_id).metadata == first.metadata  # ... but stays in the node
    assert r.index.attributes("loose-1") == {"subject": None, "metadata": {"tenant": "globex", "stars": 1.0}}
    assert r.index.attributes("nested") == {"subject": None, "metadata": {"n": 2, "none": None}}
    assert r.get_node("nested").metadata == nested.metadata
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
    with pytest.raises(ERASEError, match="unsupported keyword"):
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
    "nested-field": mf(f("tags", "t")),  # a list value never equals a scalar: nothing matches
    "unknown-key": mf(f("colour", "red")),
}


@pytest.mark.parametrize("name", sorted(FILTERS))
@pytest.mark.parametrize("k", [1, 4, 100])
def test_filtered_retrieval_is_exact_top_k_over_the_filtered_pool(name, k):
    nodes = corpus()
    filters = FILTERS[name]
    pool = li_pool(nodes, filters)
    if name in ("none-match", "nested-field", "unknown-key"):
        assert pool == set()
    elif name == "numeric-eq":
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


_VALUES = st.sampled_from([0, 1, 2, 1.0, 0.0, -0.0, 2.5, True, False, "1", "a", "b", None, ["a"], {"x": 1}])
_FILTER_VALUES = st.sampled_from([0, 1, 2, 1.0, 0.0, 2.5, "1", "a", "b"])


@st.composite
def _filters(draw):
    out = []
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(["a", "b", "c"]))
        if draw(st.booleans()):
            out.append(f(key, draw(_FILTER_VALUES)))
        else:
            kind = draw(st.sampled_from([str, float, int]))
            values = draw(st.lists(_FILTER_VALUES.filter(lambda v: type(v) is kind), min_size=1, max_size=3))
            try:
                out.append(f(key, values, FilterOperator.IN))
            except ValueError:
                assume(False)
    return mf(*out)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.dictionaries(st.sampled_from(["a", "b", "c"]), _VALUES, max_size=3), min_size=1, max_size=12), _filters())
def test_filter_semantics_equal_llamaindex_simple_vector_store(metadatas, filters):
    """EQ/IN/AND over mixed int/float/bool/str/None/nested values: the filtered pool is the one
    LlamaIndex's own filter function (SimpleVectorStore's) computes."""
    embed = HashingEmbedding(dim=16)
    nodes = [
        TextNode(id_=f"n{i}", text=f"node {i}", metadata=m, embedding=embed.vector(f"node {i}"))
        for i, m in enumerate(metadatas)
    ]
    r = build(nodes, k=len(nodes), embed=embed)
    got = {n.node.node_id for n in r.retrieve("node", filters=filters)}
    assert got == li_pool(nodes, filters)


# ---------------------------------------------------------------------------------- what raises
UNSUPPORTED = [
    *[mf(f("tenant", "acme", op)) for op in (
        FilterOperator.NE, FilterOperator.TEXT_MATCH, FilterOperator.TEXT_MATCH_INSENSITIVE, FilterOperator.CONTAINS,
        FilterOperator.IS_EMPTY,
    )],
    *[mf(f("stars", 1, op)) for op in (FilterOperator.GT, FilterOperator.LT, FilterOperator.GTE, FilterOperator.LTE)],
    *[mf(f("tags", ["t"], op)) for op in (FilterOperator.NIN, FilterOperator.ANY, FilterOperator.ALL)],
    mf(f("tenant", "acme"), f("lang", "en"), condition=FilterCondition.OR),
    mf(f("tenant", "acme"), condition=FilterCondition.NOT),
    mf(f("lang", "en"), mf(f("tenant", "acme"), f("tenant", "globex"), condition=FilterCondition.OR)),
    mf(f("tenant", None)),  # EQ None: LlamaIndex never matches it; ambiguous elsewhere
    mf(f("tags", ["t", "0"])),  # EQ with a list
    mf(f("tenant", "acme", FilterOperator.IN)),  # IN needs a list
    {"tenant": {"$ne": "acme"}},
    {"$or": [{"tenant": "acme"}]},
    {"tenant": None},
    {"tags": ["t", "0"]},
    {"$tenant": "acme"},
    "tenant == acme",
]


@pytest.mark.parametrize("filters", UNSUPPORTED, ids=lambda x: repr(x)[:60])
def test_unsupported_filters_raise_and_change_nothing(filters):
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


def test_unsupported_operator_message_names_it():
    with pytest.raises(ERASEError, match=r"'!=' \(NE\).*EQ and IN conditions combined with AND"):
        build(corpus()).retrieve("q", filters=mf(f("tenant", "acme", FilterOperator.NE)))
    with pytest.raises(ERASEError, match="condition 'or'"):
        build(corpus()).retrieve("q", filters=mf(f("a", "b"), condition=FilterCondition.OR))


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


