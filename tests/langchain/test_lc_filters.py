"""LangChain's filter language over ERASE: the dict dialect, InMemoryVectorStore's callable, and
the ``structured_query`` visitor, compared with the stock InMemoryVectorStore."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.documents import Document
from langchain_core.structured_query import Comparator, Comparison, Operation, Operator, StructuredQuery
from langchain_core.vectorstores import InMemoryVectorStore

from erase_core import ERASEError
from erase_langchain import ERASEExampleSelector, ERASERetriever, ERASETranslator, ERASEVectorStore
from lc_helpers import NGramEmbeddings


# ---------------------------------------------------------------------------------- a reference
def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def json_equal(a, b) -> bool:
    """JSON equality, written out: numbers by value, booleans apart from numbers."""
    if _num(a) and _num(b):
        return a == b
    if type(a) is not type(b) and not (isinstance(a, (list, tuple)) and isinstance(b, (list, tuple))):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return a == b


def like(text: str, pattern: str) -> bool:
    """SQL LIKE by recursion on the pattern (``%``, ``_``, ``\\`` escapes)."""
    if not pattern:
        return not text
    head, rest = pattern[0], pattern[1:]
    if head == "%":
        return any(like(text[i:], rest) for i in range(len(text) + 1))
    if head == "\\":
        head, rest = rest[0], rest[1:]
    elif head == "_":
        return bool(text) and like(text[1:], rest)
    return bool(text) and text[0] == head and like(text[1:], rest)


def reference(where: dict, md: dict) -> bool:
    """The dialect (see erase_core.filters), evaluated directly on one document's metadata."""
    for key, cond in where.items():
        if key == "$and":
            ok = all(reference(w, md) for w in cond)
        elif key == "$or":
            ok = any(reference(w, md) for w in cond)
        elif key == "$not":
            ok = not reference(cond, md) if isinstance(cond, dict) else not any(reference(w, md) for w in cond)
        else:
            ok = all(_field(key, op, arg, md) for op, arg in (cond.items() if isinstance(cond, dict) else [("$eq", cond)]))
        if not ok:
            return False
    return True


def _field(key, op, arg, md) -> bool:
    present, v = key in md, md.get(key)
    if op in ("$eq", "$ne"):
        return (present and json_equal(v, arg)) == (op == "$eq")
    if op in ("$in", "$nin"):
        return (present and any(json_equal(v, a) for a in arg)) == (op == "$in")
    if op in ("$gt", "$gte", "$lt", "$lte"):
        if not present or not ((_num(v) and _num(arg)) or (isinstance(v, str) and isinstance(arg, str))):
            return False
        return {"$gt": v > arg, "$gte": v >= arg, "$lt": v < arg, "$lte": v <= arg}[op]
    if op == "$exists":
        return present == arg
    if op == "$contains":
        if isinstance(v, list):
            return any(json_equal(e, arg) for e in v)
        return isinstance(v, (str, dict)) and isinstance(arg, str) and arg in v
    if op == "$like":
        return isinstance(v, str) and like(v, arg)
    if op == "$ilike":
        return isinstance(v, str) and like(v.lower(), arg.lower())
    raise AssertionError(op)


# ---------------------------------------------------------------------------------- generated data
_SCALARS = [0, 1, 2, 1.0, 0.0, 2.5, -3, True, False, None, "", "a", "b", "ab", "Ab", "a%b_", "1"]
_VALUE = st.one_of(
    st.sampled_from(_SCALARS),
    st.lists(st.sampled_from([0, 1, 1.0, True, "a", "b", None]), max_size=3),
    st.sampled_from([{"a": 1}, {"a": 1.0}, {"a": True}, {}]),
)
_KEYS = st.sampled_from(["a", "b", "c"])
_ORDERED = st.sampled_from([0, 1, 2, -1, 1.0, 0.5, 2.5, "", "a", "ab", "b", "B"])
_PATTERNS = st.sampled_from(["a", "a%", "%b", "%", "_", "a_", "A%", "%\\%%", "a\\%b\\_", "", "%a%b%"])


def _leaf():
    return st.one_of(
        st.builds(lambda k, v: {k: v}, _KEYS, _VALUE.filter(lambda v: not isinstance(v, dict))),  # plain equality
        st.builds(lambda k, op, v: {k: {op: v}}, _KEYS, st.sampled_from(["$eq", "$ne", "$contains"]), _VALUE),
        st.builds(lambda k, op, v: {k: {op: v}}, _KEYS, st.sampled_from(["$in", "$nin"]), st.lists(_VALUE, max_size=3)),
        st.builds(lambda k, op, v: {k: {op: v}}, _KEYS, st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), _ORDERED),
        st.builds(lambda k, v: {k: {"$exists": v}}, _KEYS, st.booleans()),
        st.builds(lambda k, op, v: {k: {op: v}}, _KEYS, st.sampled_from(["$like", "$ilike"]), _PATTERNS),
        st.builds(lambda k, lo, hi: {k: {"$gte": lo, "$lt": hi}}, _KEYS, _ORDERED, _ORDERED),
    )


_FILTER = st.recursive(
    _leaf(),
    lambda inner: st.one_of(
        st.builds(lambda op, ws: {op: ws}, st.sampled_from(["$and", "$or"]), st.lists(inner, max_size=3)),
        st.builds(lambda w: {"$not": w}, inner),
        st.builds(lambda ws: {"$not": ws}, st.lists(inner, min_size=1, max_size=2)),
        st.builds(lambda a, b: {**a, **b}, inner, inner),  # several keys: all must hold
    ),
    max_leaves=6,
)


def _stores(metadatas):
    emb = NGramEmbeddings(dim=32)
    docs = [Document(id=f"d{i}", page_content=f"document {i}", metadata=m) for i, m in enumerate(metadatas)]
    ours = ERASEVectorStore.from_documents(docs, emb, ids=[d.id for d in docs])
    stock = InMemoryVectorStore(emb)
    stock.add_documents(docs, ids=[d.id for d in docs])
    return docs, ours, stock


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.dictionaries(_KEYS, _VALUE, max_size=3), min_size=1, max_size=10), st.lists(_FILTER, min_size=1, max_size=6))
def test_dict_filters_equal_in_memory_vector_store_with_the_same_predicate(metadatas, filters):
    """The dict dialect on ERASEVectorStore returns what InMemoryVectorStore returns with the
    dialect written out as its callable filter; the callable itself gives the same on both."""
    docs, ours, stock = _stores(metadatas)
    n = len(docs)
    for where in filters:
        want = {d.id for d in stock.similarity_search("document", k=n, filter=lambda d, w=where: reference(w, d.metadata))}
        assert {d.id for d in ours.similarity_search("document", k=n, filter=where)} == want, where
        assert {d.id for d in ours.similarity_search("document", k=n, filter=lambda d, w=where: reference(w, d.metadata))} == want
        assert ours.index.ids_where(where) == sorted(want)


def test_every_operator_on_a_fixed_table():
    metadatas = [{"n": v} for v in _SCALARS] + [{"n": [1, "a"]}, {"n": {"a": 1}}, {}]
    docs, ours, stock = _stores(metadatas)
    wheres = [
        {"n": 1}, {"n": {"$ne": 1}}, {"n": {"$gt": 0}}, {"n": {"$gte": 1}}, {"n": {"$lt": 1}}, {"n": {"$lte": 0}},
        {"n": {"$in": [1, "a"]}}, {"n": {"$nin": [1, "a"]}}, {"n": {"$exists": False}}, {"n": {"$contains": "a"}},
        {"n": {"$like": "a%"}}, {"n": {"$ilike": "A_"}}, {"n": {"$gt": "a"}}, {"n": True}, {"n": None},
        {"$or": [{"n": 2}, {"n": "b"}]}, {"$not": {"n": {"$in": [0, 1]}}}, {"$and": [{"n": {"$gt": 0}}, {"n": {"$lt": 2}}]},
        {"$and": []}, {"$or": []}, {"n": {"$in": []}},
    ]
    sizes = set()
    for where in wheres:
        want = {d.id for d in stock.similarity_search("document", k=len(docs), filter=lambda d: reference(where, d.metadata))}
        got = {d.id for d in ours.similarity_search("document", k=len(docs), filter=where)}
        assert got == want, where
        sizes.add(len(got))
    assert len(sizes) > 5  # the filters tell documents apart
    # true is not 1, 1 is 1.0 (the JSON rule; LlamaIndex's layer follows Python instead)
    ids = {d.id: d.metadata.get("n", "missing") for d in docs}
    assert sorted(repr(ids[d.id]) for d in ours.similarity_search("document", k=len(docs), filter={"n": 1})) == ["1", "1.0"]


# ---------------------------------------------------------------------------------- every layer
META = [{"lang": lang, "stars": s, "tags": tags} for lang, s, tags in [
    ("en", 1, ["a"]), ("de", 2, ["b"]), ("en", 3, ["a", "b"]), ("fr", 4, []), ("de", 5, ["a"]), ("en", 2.5, ["c"]),
]]
TEXTS = [f"review number {i} of the product" for i in range(len(META))]
WHERE = {"$or": [{"lang": "fr"}, {"$and": [{"stars": {"$gte": 2}}, {"tags": {"$contains": "a"}}]}]}
WANT = {i for i, m in enumerate(META) if reference(WHERE, m)}


def test_retriever_and_forget_where_take_the_full_language():
    emb = NGramEmbeddings(dim=64)
    r = ERASERetriever.from_texts(TEXTS, emb, metadatas=META, strategy="similarity", k=len(TEXTS))
    got = r.invoke("review", filter=WHERE)
    assert {TEXTS.index(d.page_content) for d in got} == WANT and 0 < len(WANT) < len(TEXTS)
    assert asyncio.run(r.ainvoke("review", filter=WHERE)) == got


def test_selector_takes_the_full_language():
    emb = NGramEmbeddings(dim=64)
    examples = [{"input": t, "output": str(i), **m} for i, (t, m) in enumerate(zip(TEXTS, META))]
    selector = ERASEExampleSelector.from_examples(examples, emb, k=len(TEXTS), input_keys=["input"], strategy="similarity",
                                                  metadata_keys=["lang", "stars", "tags"])
    got = selector.select_examples({"input": "review"}, filter=WHERE)
    assert {int(e["output"]) for e in got} == WANT
    assert {int(e["output"]) for e in selector.with_filter({"stars": {"$lt": 2}}).select_examples({"input": "x"})} == {0}


def test_vector_store_forget_where_equals_a_fresh_build(tmp_path):
    emb = NGramEmbeddings(dim=64)
    ids = [f"r{i}" for i in range(len(TEXTS))]
    store = ERASEVectorStore.from_texts(TEXTS, emb, metadatas=META, ids=ids, persist_path=tmp_path / "s.sqlite")
    receipt = store.forget_where(WHERE)
    assert set(receipt.ids) == {ids[i] for i in WANT}
    keep = [i for i in range(len(TEXTS)) if i not in WANT]
    fresh = ERASEVectorStore.from_texts([TEXTS[i] for i in keep], emb, metadatas=[META[i] for i in keep], ids=[ids[i] for i in keep])
    assert store.index.digest() == fresh.index.digest() and store.index.verify()
    assert [d.id for d in store.similarity_search("review", k=6)] == [d.id for d in fresh.similarity_search("review", k=6)]
    assert len(store.index.forgotten(where=WHERE)) == 1


@pytest.mark.parametrize("where, match", [
    ({"stars": {"$regex": "1"}}, r"unsupported operator '\$regex' on field 'stars'"),
    ({"$nor": [{"lang": "en"}]}, r"unsupported logical operator '\$nor'"),
    ({"stars": {"$gt": [1]}}, r"\$gt on 'stars' needs a number or a string"),
    ({"stars": {"$in": 1}}, r"\$in on 'stars' needs a list"),
    ({"stars": {"$exists": 1}}, r"\$exists on 'stars' needs true or false"),
    ({"lang": {"$like": 3}}, r"\$like on 'lang' needs a string pattern"),
    ({"lang": {"$like": "en\\"}}, "ends with the escape character"),
    ({"$or": {"lang": "en"}}, r"\$or needs a list of filters"),
    ({"lang": {"$and": []}}, "logical operator"),
    ({"lang": {"x": 1}}, "not all operators"),
    ({"lang": {}}, "empty dict"),
    ({"lang": {1, 2}}, "not a JSON value"),
    ({}, "empty dict"),
    ("lang == en", "must be a dict"),
])
def test_bad_filters_raise_naming_the_problem_and_change_nothing(where, match):
    emb = NGramEmbeddings(dim=64)
    store = ERASEVectorStore.from_texts(TEXTS, emb, metadatas=META, ids=[f"r{i}" for i in range(len(TEXTS))])
    digest = store.index.digest()
    with pytest.raises(ERASEError, match=match):
        store.similarity_search("review", k=2, filter=where)
    with pytest.raises(ERASEError, match=match):
        store.forget_where(where)
    assert store.index.digest() == digest and store.index.audit() == []


# ---------------------------------------------------------------------------------- structured_query
def c(comparator, attribute, value) -> Comparison:
    return Comparison(comparator=comparator, attribute=attribute, value=value)


def test_translator_maps_every_comparator_and_operator():
    t = ERASETranslator()
    assert c(Comparator.EQ, "lang", "en").accept(t) == {"lang": {"$eq": "en"}}
    for comparator in Comparator:
        op = {"contain": "$contains"}.get(comparator.value, "$" + comparator.value)
        value = ["a"] if comparator in (Comparator.IN, Comparator.NIN) else "a"
        assert c(comparator, "x", value).accept(t) == {"x": {op: value}}
    both = Operation(operator=Operator.AND, arguments=[c(Comparator.GT, "stars", 2), c(Comparator.LT, "stars", 5)])
    assert both.accept(t) == {"$and": [{"stars": {"$gt": 2}}, {"stars": {"$lt": 5}}]}
    assert Operation(operator=Operator.NOT, arguments=[c(Comparator.EQ, "a", 1)]).accept(t) == {"$not": {"a": {"$eq": 1}}}
    assert Operation(operator=Operator.NOT, arguments=[c(Comparator.EQ, "a", 1), c(Comparator.EQ, "b", 2)]).accept(t) == {
        "$not": [{"a": {"$eq": 1}}, {"b": {"$eq": 2}}]}
    date = c(Comparator.GTE, "day", {"type": "date", "date": "2024-05-01"})
    assert date.accept(t) == {"day": {"$gte": "2024-05-01"}}
    assert t.visit_structured_query(StructuredQuery(query="q", filter=None)) == ("q", {})
    assert t.visit_structured_query(StructuredQuery(query="q", filter=date, limit=3)) == (
        "q", {"filter": {"day": {"$gte": "2024-05-01"}}, "k": 3})
    with pytest.raises(ERASEError, match="not a JSON value"):
        t.visit_structured_query(StructuredQuery(query="q", filter=c(Comparator.EQ, "a", object())))
    with pytest.raises(ERASEError, match=r"\$in on 'a' needs a list"):
        t.visit_structured_query(StructuredQuery(query="q", filter=c(Comparator.IN, "a", "x")))


def test_self_query_translation_over_the_store():
    """What SelfQueryRetriever does with the LLM's structured query: translate, then
    ``vectorstore.search(query, search_type, **kwargs)``; the same documents as the stock
    store given the same condition as a callable."""
    emb = NGramEmbeddings(dim=64)
    docs = [Document(id=f"r{i}", page_content=t, metadata=m) for i, (t, m) in enumerate(zip(TEXTS, META))]
    store = ERASEVectorStore.from_documents(docs, emb, ids=[d.id for d in docs])
    stock = InMemoryVectorStore(emb)
    stock.add_documents(docs, ids=[d.id for d in docs])
    sq = StructuredQuery(
        query="product review",
        filter=Operation(operator=Operator.OR, arguments=[
            c(Comparator.EQ, "lang", "fr"),
            Operation(operator=Operator.AND, arguments=[c(Comparator.GTE, "stars", 2), c(Comparator.CONTAIN, "tags", "a")]),
        ]),
        limit=2,
    )
    query, kwargs = ERASETranslator().visit_structured_query(sq)
    got = store.search(query, "similarity", **kwargs)
    want = stock.similarity_search(query, k=2, filter=lambda d: reference(kwargs["filter"], d.metadata))
    assert [d.id for d in got] == [d.id for d in want] and len(got) == 2
    assert all(reference(WHERE, d.metadata) for d in got)
