"""Subjects, metadata and filters in the LangChain layer: ``forget(subject=...)`` and
``forget_where`` are exact (digest equal to a fresh build without those items), ``filter=``
equals exact top-k over the filtered pool, unknown search keywords raise, async twins."""

from __future__ import annotations

import datetime
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("langchain_core")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from langchain_core.documents import Document  # noqa: E402

from erase_core import ERASEError  # noqa: E402
from erase_langchain import ERASEExampleSelector, ERASERetriever  # noqa: E402
from lc_helpers import EXAMPLES, IDS, QUERIES, NGramEmbeddings  # noqa: E402

USERS = ["alice", "bob", "carol", "dave"]
LANGS = ["en", "de", "fr"]
PARAMS = dict(epsilon=0.05, seed=3)

#: The pool with an owner and a language per example (fields, for subject_key / metadata_keys).
OWNED = [{**ex, "user": USERS[n % 4], "lang": LANGS[n % 3]} for n, ex in enumerate(EXAMPLES)]
DOCS = [Document(page_content=ex["input"], metadata={"user_id": USERS[n % 4], "lang": LANGS[n % 3], "topic": ex["output"]})
        for n, ex in enumerate(EXAMPLES)]


@pytest.fixture
def emb():
    return NGramEmbeddings()


def owned_selector(emb, keep=None, **kw):
    keep = range(len(OWNED)) if keep is None else keep
    return ERASEExampleSelector.from_examples(
        [OWNED[n] for n in keep], emb, k=kw.pop("k", 3), ids=[IDS[n] for n in keep], subject_key="user",
        metadata_keys=["lang"], **{"strategy": "erase", **PARAMS, **kw},
    )


def retriever(emb, keep=None, **kw):
    keep = range(len(DOCS)) if keep is None else keep
    return ERASERetriever(embeddings=emb, documents=[DOCS[n] for n in keep], ids=[IDS[n] for n in keep],
                          subject_key="user_id", k=kw.pop("k", 3), **{**PARAMS, **kw})


def kept(predicate) -> list[int]:
    return [n for n in range(len(EXAMPLES)) if predicate(n)]


# ---------------------------------------------------------------------- selector: subjects and metadata
def test_selector_attributes_from_fields_and_arguments(emb):
    s = owned_selector(emb)
    assert s.attributes("ex05") == {"subject": USERS[1], "metadata": {"lang": LANGS[2]}}
    assert s.ids_of_subject("bob") == [IDS[n] for n in kept(lambda n: n % 4 == 1)]
    # explicit subjects=/metadata= give the same examples (and digest) as the fields
    explicit = ERASEExampleSelector.from_examples(
        OWNED, emb, k=3, ids=IDS, subjects=[ex["user"] for ex in OWNED], metadata=[{"lang": ex["lang"]} for ex in OWNED],
        **PARAMS, strategy="erase",
    )
    assert explicit.digest() != s.digest()  # ... except the text: without subject_key/metadata_keys they are content
    explicit = ERASEExampleSelector.from_examples(
        OWNED, emb, k=3, ids=IDS, input_keys=["input", "output"], subjects=[ex["user"] for ex in OWNED],
        metadata=[{"lang": ex["lang"]} for ex in OWNED], **PARAMS, strategy="erase",
    )
    assert explicit.digest() == s.digest()
    # subject_key and metadata_keys fields are bookkeeping: not part of the embedded text
    plain = ERASEExampleSelector.from_examples(EXAMPLES, emb, k=3, ids=IDS, **PARAMS, strategy="erase")
    assert np.array_equal(plain.index.vector("ex07"), s.index.vector("ex07"))
    # add_example(subject=, metadata=) overrides the fields; integers are subjects too
    new = s.add_example({"input": "A new example about rain", "output": "weather", "user": "alice"}, id="n1",
                        subject=4711, metadata={"lang": "en", "tier": 2})
    assert s.attributes(new) == {"subject": "4711", "metadata": {"lang": "en", "tier": 2}}
    assert s.ids_of_subject(4711) == s.ids_of_subject("4711") == ["n1"]


@pytest.mark.parametrize("strategy", ["erase", "similarity"])
def test_selector_forget_subject_is_exact(emb, strategy):
    s = owned_selector(emb, strategy=strategy)
    victims = s.ids_of_subject("carol")
    receipt = s.forget(subject="carol")
    assert sorted(receipt.ids) == victims and receipt.n_remaining == len(EXAMPLES) - len(victims)
    fresh = owned_selector(emb, keep=kept(lambda n: USERS[n % 4] != "carol"), strategy=strategy)
    assert s.digest() == fresh.digest() and s.verify()
    assert s.ids_of_subject("carol") == [] and not set(victims) & set(s.ids)
    for q in QUERIES:
        assert s.select_examples({"input": q}) == fresh.select_examples({"input": q})
    # the deletion is in the audit log (keyed hashes only), and forgetting again is an empty receipt
    assert s.index.forgotten(subject="carol") and s.index.check_audit()
    assert s.forget(subject="carol").ids == ()


@pytest.mark.parametrize("strategy", ["erase", "similarity"])
def test_selector_forget_where_is_exact(emb, strategy):
    s = owned_selector(emb, strategy=strategy)
    receipt = s.forget_where({"lang": {"$in": ["de", "fr"]}})
    assert sorted(receipt.ids) == [IDS[n] for n in kept(lambda n: LANGS[n % 3] != "en")]
    fresh = owned_selector(emb, keep=kept(lambda n: LANGS[n % 3] == "en"), strategy=strategy)
    assert s.digest() == fresh.digest() and s.verify()
    assert s.forget_where({"lang": "de"}).ids == ()  # nothing left to match
    with pytest.raises(ERASEError):
        s.forget_where({"lang": {"$nope": "en"}})  # unknown operator: an error, never ignored
    with pytest.raises(ERASEError):
        s.forget_where({})


def test_forget_arguments(emb):
    s = owned_selector(emb)
    with pytest.raises(ERASEError, match="exactly one"):
        s.forget()
    with pytest.raises(ERASEError, match="exactly one"):
        s.forget(["ex00"], subject="alice")
    with pytest.raises(ERASEError, match="string or an integer"):
        s.forget(subject=["alice"])
    assert s.forget("ex00").ids == ("ex00",)  # by id, as before


def test_metadata_must_be_json(emb):
    s = owned_selector(emb)
    n = len(s)
    bad = {"input": "Some text", "output": "x", "lang": datetime.date(2024, 1, 1)}
    with pytest.raises(ERASEError, match=r"\['lang'\].*date.*not a JSON value"):
        s.add_example(bad)
    with pytest.raises(ERASEError, match="not a JSON value"):
        s.add_example({"input": "t", "output": "x"}, metadata={"n": np.int64(3)})
    with pytest.raises(ERASEError, match="string or an integer"):
        s.add_example({"input": "t", "output": "x", "user": 1.5})
    r = retriever(emb)
    with pytest.raises(ERASEError, match=r"documents\[1\]\.metadata\['when'\]"):
        r.add_documents([Document(page_content="fine", metadata={"a": 1}),
                         Document(page_content="bad", metadata={"when": datetime.datetime(2024, 1, 1)})])
    assert len(s) == n and len(r.ids) == len(DOCS)  # atomic: nothing was added


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_interleaved_forgets_equal_a_fresh_build(emb, data):
    """Random owners and languages, then a random sequence of forget by subject / filter / id:
    the selector always equals a fresh build on what is left."""
    n = len(EXAMPLES)
    owners = data.draw(st.lists(st.sampled_from(["s0", "s1", "s2", None]), min_size=n, max_size=n))
    langs = data.draw(st.lists(st.sampled_from(LANGS), min_size=n, max_size=n))
    strategy = data.draw(st.sampled_from(["erase", "similarity"]))
    examples = [{**ex, "user": o, "lang": g} for ex, o, g in zip(EXAMPLES, owners, langs)]

    def build(keep):
        return ERASEExampleSelector.from_examples([examples[j] for j in keep], emb, k=3, ids=[IDS[j] for j in keep],
                                                  subject_key="user", metadata_keys=["lang"], strategy=strategy,
                                                  **PARAMS)

    s, alive = build(range(n)), set(range(n))
    ops = data.draw(st.lists(st.one_of(
        st.tuples(st.just("subject"), st.sampled_from(["s0", "s1", "s2"])),
        st.tuples(st.just("where"), st.lists(st.sampled_from(LANGS), min_size=1, max_size=2)),
        st.tuples(st.just("id"), st.integers(0, n - 1)),
    ), min_size=1, max_size=4))
    for kind, arg in ops:
        if kind == "subject":
            gone = {j for j in alive if owners[j] == arg}
            s.forget(subject=arg)
        elif kind == "where":
            gone = {j for j in alive if langs[j] in arg}
            s.forget_where({"lang": {"$in": arg}})
        else:
            gone = {arg} & alive
            s.forget([IDS[arg]], missing="ignore")
        alive -= gone
        assert s.digest() == build(sorted(alive)).digest()


@pytest.mark.processes
def test_subjects_persist_and_other_handles_forget(tmp_path, emb):
    path = tmp_path / "owned.sqlite"
    a = owned_selector(emb, persist_path=path, strategy="similarity")
    b = ERASEExampleSelector.open(path, emb, subject_key="user", metadata_keys=["lang"])
    assert b.ids_of_subject("dave") == a.ids_of_subject("dave") != []
    b.forget(subject="dave")
    assert a.ids_of_subject("dave") == []
    done = subprocess.run([sys.executable, "-m", "erase_core.cli", "audit", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    fresh = owned_selector(emb, keep=kept(lambda n: USERS[n % 4] != "dave"), strategy="similarity")
    assert a.digest() == b.digest() == fresh.digest()
    a.close()
    b.close()


# ---------------------------------------------------------------------- retriever: metadata, subjects
def test_retriever_metadata_and_subjects(emb):
    r = retriever(emb, strategy="similarity")
    doc = r.invoke(EXAMPLES[6]["input"], k=1)[0]
    assert doc.id == "ex06" and doc.metadata == DOCS[6].metadata  # Document.metadata round-trips
    assert r.attributes("ex06") == {"subject": USERS[2], "metadata": DOCS[6].metadata}
    # subjects= overrides subject_key; a document without the key has no subject
    ids = r.add_documents([Document(page_content="Owned by a number", metadata={"user_id": 4711}),
                           Document(page_content="Owner given explicitly", metadata={}),
                           Document(page_content="Nobody's", metadata={"lang": "en"})], ids=["m1", "m2", "m3"])
    assert ids == ["m1", "m2", "m3"] and r.ids_of_subject(4711) == ["m1"] and r.attributes("m3")["subject"] is None
    r.add_documents([Document(page_content="Explicit owner", metadata={"user_id": "alice"})], ids=["m4"], subjects=["zed"])
    assert r.ids_of_subject("zed") == ["m4"] and "m4" not in r.ids_of_subject("alice")


@pytest.mark.parametrize("strategy", ["erase", "similarity"])
def test_retriever_forget_subject_and_where_are_exact(emb, strategy):
    r = retriever(emb, strategy=strategy)
    assert len(r.forget(subject="alice").ids) == len(kept(lambda n: n % 4 == 0))
    assert r.digest() == retriever(emb, keep=kept(lambda n: n % 4 != 0), strategy=strategy).digest()
    r.forget_where({"topic": "finance", "lang": {"$in": ["en", "fr"]}})  # all conditions must hold
    keep = kept(lambda n: n % 4 != 0 and not (EXAMPLES[n]["output"] == "finance" and LANGS[n % 3] in ("en", "fr")))
    fresh = retriever(emb, keep=keep, strategy=strategy)
    assert r.digest() == fresh.digest() and r.verify()
    assert [d.id for d in r.invoke(QUERIES[4])] == [d.id for d in fresh.invoke(QUERIES[4])]


# ---------------------------------------------------------------------- filters
def exact_top_k(emb, pool: list[int], query: str, k: int, text=lambda ex: ex["input"]) -> list[str]:
    """Brute force: cosine of the (unit) embeddings of ``text(example)``, ties by id."""
    q = np.asarray(emb.embed_query(query))
    scored = [(-float(np.asarray(emb.embed_query(text(EXAMPLES[n]))) @ q), IDS[n]) for n in pool]
    return [i for _, i in sorted(scored)[:k]]


FILTERS = [
    ({"lang": "en"}, lambda n: LANGS[n % 3] == "en"),
    ({"lang": {"$eq": "de"}}, lambda n: LANGS[n % 3] == "de"),
    ({"lang": {"$in": ["de", "fr"]}, "user_id": "bob"}, lambda n: LANGS[n % 3] in ("de", "fr") and n % 4 == 1),
    ({"topic": "sports"}, lambda n: EXAMPLES[n]["output"] == "sports"),
    ({"lang": "xx"}, lambda n: False),
]


@pytest.mark.parametrize("where,match", FILTERS)
def test_retriever_filter_is_exact_top_k_of_the_filtered_pool(emb, where, match):
    r = retriever(emb, strategy="similarity", k=3)
    pool = kept(match)
    fresh = retriever(emb, keep=pool, strategy="similarity", k=3) if pool else None
    for q in QUERIES:
        got = [d.id for d in r.invoke(q, filter=where)]
        assert got == exact_top_k(emb, pool, q, 3)
        assert got == ([d.id for d in fresh.invoke(q)] if fresh else [])
        assert all(match(IDS.index(i)) for i in got)
    # k larger than what matches: what exists
    assert len(r.invoke(QUERIES[0], filter=where, k=50)) == len(pool)


def test_retriever_search_kwargs(emb):
    r = retriever(emb, strategy="similarity", search_kwargs={"k": 2, "filter": {"lang": "fr"}})
    docs = r.invoke(QUERIES[1])
    assert len(docs) == 2 and all(d.metadata["lang"] == "fr" for d in docs)
    assert all(d.metadata["lang"] == "de" for d in r.invoke(QUERIES[1], filter={"lang": "de"}))  # call replaces default
    assert len({d.metadata["lang"] for d in r.invoke(QUERIES[1], filter=None, k=10)}) == 3  # None: no filter
    assert len(r.invoke(QUERIES[1], k=4)) == 4
    bound = r.bind(filter={"user_id": "carol"})  # RunnableBinding passes the keyword to invoke
    assert {d.metadata["user_id"] for d in bound.invoke(QUERIES[0])} == {"carol"}


def test_unknown_search_keywords_raise(emb):
    r = retriever(emb, strategy="similarity")
    with pytest.raises(TypeError, match="fliter"):
        r.invoke("x", fliter={"lang": "en"})
    with pytest.raises(TypeError, match="score_threshold"):
        r.invoke("x", score_threshold=0.5)
    r.invoke("x", verbose=True)  # LangChain's own keyword is fine
    with pytest.raises(ValueError, match="unknown search_kwargs"):
        retriever(emb, strategy="similarity", search_kwargs={"fetch_k": 10})
    with pytest.raises(ERASEError, match=r"\$regex"):
        r.invoke("x", filter={"n": {"$regex": "3"}})  # unsupported operator
    s = owned_selector(emb, strategy="similarity")
    with pytest.raises(TypeError):
        s.select_examples({"input": "x"}, fliter={"lang": "en"})
    with pytest.raises(ERASEError, match="fetch_k"):
        ERASEExampleSelector.from_examples(EXAMPLES, emb, k=2, strategy="similarity", vectorstore_kwargs={"fetch_k": 9})
    with pytest.raises(ERASEError, match="search_kwargs"):
        ERASEExampleSelector.from_examples(EXAMPLES, emb, k=2, strategy="similarity", search_kwargs={"k": 2})


async def test_unknown_search_keywords_raise_async(emb):
    r = retriever(emb, strategy="similarity")
    with pytest.raises(TypeError, match="fliter"):
        await r.ainvoke("x", fliter={"lang": "en"})


def test_erase_strategy_with_a_filter_raises(emb):
    r = retriever(emb, strategy="erase")
    with pytest.raises(ERASEError, match="'similarity' and 'mmr' only"):
        r.invoke("x", filter={"lang": "en"})
    with pytest.raises(ValueError, match="'similarity' and 'mmr' only"):
        retriever(emb, strategy="erase", search_kwargs={"filter": {"lang": "en"}})
    s = owned_selector(emb)
    with pytest.raises(ERASEError, match="'similarity' and 'mmr' only"):
        s.select_examples({"input": "x"}, filter={"lang": "en"})
    with pytest.raises(ERASEError, match="'similarity' and 'mmr' only"):
        s.with_filter({"lang": "en"})
    calls = emb.calls["texts"]
    with pytest.raises(ERASEError, match="'similarity' and 'mmr' only"):
        ERASEExampleSelector.from_examples(EXAMPLES, emb, k=2, filter={"lang": "en"}, strategy="erase")
    with pytest.raises(ERASEError, match="vectorstore_kwargs"):
        ERASEExampleSelector.from_examples(EXAMPLES, emb, k=2, vectorstore_kwargs={"filter": {"lang": "en"}},
                                           strategy="erase")
    assert emb.calls["texts"] == calls  # refused before embedding anything
    assert s.select_examples({"input": "x"}, filter=None)  # no filter: fine


SELECTOR_FILTERS = [
    ({"lang": "en"}, lambda n: LANGS[n % 3] == "en"),
    ({"lang": {"$in": ["de", "fr"]}, "user": "bob"}, lambda n: LANGS[n % 3] in ("de", "fr") and n % 4 == 1),
    ({"user": {"$eq": "carol"}}, lambda n: n % 4 == 2),
]


@pytest.mark.parametrize("where,match", SELECTOR_FILTERS)
def test_selector_filter_is_exact_top_k_of_the_filtered_pool(emb, where, match):
    build = dict(k=3, ids=IDS, subject_key="user", metadata_keys=["lang", "user"], strategy="similarity", **PARAMS)
    s = ERASEExampleSelector.from_examples(OWNED, emb, **build)
    tenant = s.with_filter(where)  # e.g. one per tenant, sharing the engine
    via_kwargs = ERASEExampleSelector.from_examples(OWNED, emb, vectorstore_kwargs={"filter": where}, **build)
    pool = kept(match)
    for q in QUERIES:
        # the selector's text: the example's values ordered by key (subject/metadata fields excluded)
        expected = exact_top_k(emb, pool, q, 3, text=lambda ex: f"{ex['input']} {ex['output']}")
        assert [x.id for x in s.select({"input": q}, filter=where)] == expected
        assert [x.id for x in tenant.select({"input": q})] == expected
        assert [x.id for x in via_kwargs.select({"input": q})] == expected
        assert tenant.select_examples({"input": q}) == [OWNED[IDS.index(i)] for i in expected]
        assert len(s.select({"input": q})) == 3  # the original keeps no filter
        assert [x.id for x in tenant.select({"input": q}, filter=None)] == [x.id for x in s.select({"input": q})]
    assert tenant.index is s.index
    victim = [x.id for x in tenant.select({"input": QUERIES[0]})][0]
    s.forget(victim)  # a forget through either is a forget in both
    assert victim not in [x.id for x in tenant.select({"input": QUERIES[0]})]


async def test_async_twins(emb):
    s = ERASEExampleSelector(embeddings=emb, k=3, strategy="similarity", subject_key="user", metadata_keys=["lang"])
    ids = await s.aadd_examples(OWNED[:12], ids=IDS[:12])
    assert ids == IDS[:12]
    extra = await s.aadd_example({"input": "The striker scored again", "output": "sports"}, id="x1", subject="bob",
                                 metadata={"lang": "en"})
    assert s.attributes(extra) == {"subject": "bob", "metadata": {"lang": "en"}}
    got = await s.aselect_examples({"input": QUERIES[0]}, filter={"lang": "en"})
    assert got and all(ex.get("lang", "en") == "en" for ex in got)
    receipt = await s.aforget(subject="bob")
    assert "x1" in receipt.ids and s.ids_of_subject("bob") == []
    receipt = await s.aforget_where({"lang": "de"})
    assert receipt.ids and all(s.attributes(i)["metadata"]["lang"] != "de" for i in s.ids)
    assert (await s.aforget(["ex00"])).ids == ("ex00",)
    keep = [n for n in range(12) if n % 4 != 1 and LANGS[n % 3] != "de" and n != 0]
    fresh = ERASEExampleSelector.from_examples([OWNED[n] for n in keep], emb, k=3, ids=[IDS[n] for n in keep],
                                               strategy="similarity", subject_key="user", metadata_keys=["lang"])
    assert s.digest() == fresh.digest()

    r = ERASERetriever(embeddings=emb, k=3, strategy="similarity", subject_key="user_id")
    await r.aadd_documents(DOCS, ids=IDS)
    docs = await r.ainvoke(QUERIES[2], filter={"lang": "fr"})
    assert docs and all(d.metadata["lang"] == "fr" for d in docs)
    await r.aforget(subject="alice")
    await r.aforget_where({"topic": "weather"})
    fresh = retriever(emb, keep=kept(lambda n: n % 4 != 0 and EXAMPLES[n]["output"] != "weather"), strategy="similarity",
                      epsilon=None, seed=0)
    assert r.digest() == fresh.digest()
