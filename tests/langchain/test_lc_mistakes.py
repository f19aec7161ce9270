"""Mistakes raise, the same way everywhere: unknown keywords (``TypeError`` naming the keyword
and the accepted ones), ids that are not non-empty strings (one rule for add, upsert, get,
delete, forget), and ``add_documents`` with an existing id (replace, in the retriever as in
the vector store)."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("langchain_core")

from langchain_core.documents import Document  # noqa: E402

from erase_core import ERASEError, ExampleIndex, InvalidIdError, UnknownArgumentError  # noqa: E402
from erase_langchain import ERASEExampleSelector, ERASERetriever, ERASEVectorStore  # noqa: E402
from lc_helpers import EXAMPLES, IDS, QUERIES, NGramEmbeddings  # noqa: E402

TEXTS = [ex["input"] for ex in EXAMPLES]


def docs(n: int = 6, start: int = 0) -> list[Document]:
    return [Document(page_content=TEXTS[i], metadata={"n": i}) for i in range(start, start + n)]


@pytest.fixture
def emb():
    return NGramEmbeddings(dim=64)


# ---------------------------------------------------------------------- unknown keywords
def _store(emb):
    return ERASEVectorStore.from_texts(TEXTS[:4], emb, ids=IDS[:4])


MISSPELT = {
    "selector()": (lambda emb: ERASEExampleSelector(embeddings=emb, stratgy="erase"), "stratgy", "strategy"),
    "selector.from_examples": (lambda emb: ERASEExampleSelector.from_examples(EXAMPLES, emb, stratgy="similarity"),
                               "stratgy", "strategy"),
    "selector.from_examples persist": (
        lambda emb: ERASEExampleSelector.from_examples(EXAMPLES, emb, persist_pth="x.db"), "persist_pth", "persist_path"),
    "selector.afrom_examples": (
        lambda emb: asyncio.run(ERASEExampleSelector.afrom_examples(EXAMPLES, emb, n_neareest=1)), "n_neareest",
        "n_nearest"),
    "retriever()": (lambda emb: ERASERetriever(embeddings=emb, persist_pth="x.db"), "persist_pth", "persist_path"),
    "retriever.from_texts": (lambda emb: ERASERetriever.from_texts(TEXTS, emb, subject_ky="u"), "subject_ky",
                             "subject_key"),
    "retriever.from_documents": (lambda emb: ERASERetriever.from_documents(docs(), emb, stratgy="erase"), "stratgy",
                                 "strategy"),
    "store()": (lambda emb: ERASEVectorStore(emb, persist_pth="x.db"), "persist_pth", "persist_path"),
    "store.from_texts": (lambda emb: ERASEVectorStore.from_texts(TEXTS, emb, subject_ky="u"), "subject_ky",
                         "subject_key"),
    "store.from_documents": (lambda emb: ERASEVectorStore.from_documents(docs(), emb, stratgy="erase"), "stratgy",
                             "strategy"),
    "store.afrom_texts": (lambda emb: asyncio.run(ERASEVectorStore.afrom_texts(TEXTS, emb, sed=1)), "sed", "seed"),
    "store.add_texts": (lambda emb: _store(emb).add_texts(["x"], subjcts=["u"]), "subjcts", "subjects"),
    "store.add_documents": (lambda emb: _store(emb).add_documents(docs(1), subjcts=["u"]), "subjcts", "subjects"),
    "store.aadd_documents": (lambda emb: asyncio.run(_store(emb).aadd_documents(docs(1), idss=["a"])), "idss", "ids"),
    "store.delete": (lambda emb: _store(emb).delete(["ex00"], missing="raise"), "missing", "ids"),
    "store.similarity_search": (lambda emb: _store(emb).similarity_search("x", filtr={"n": 1}), "filtr", "filter"),
    "store.mmr": (lambda emb: _store(emb).max_marginal_relevance_search("x", lambda_mul=0.3), "lambda_mul",
                  "lambda_mult"),
    "ExampleIndex()": (lambda emb: ExampleIndex(3, stratgy="erase"), "stratgy", "strategy"),
    "ExampleIndex.open_or_create": (lambda emb: ExampleIndex.open_or_create("never.db", 3, sed=2), "sed", "seed"),
}


@pytest.mark.parametrize("name", sorted(MISSPELT))
def test_an_unknown_keyword_raises_naming_it_and_the_accepted_ones(emb, name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    call, bad, good = MISSPELT[name]
    with pytest.raises(UnknownArgumentError) as info:
        call(emb)
    assert isinstance(info.value, TypeError) and isinstance(info.value, ERASEError)
    message = str(info.value)
    assert repr(bad) in message and "accepted:" in message and good in message.split("accepted:")[1]
    assert not list(tmp_path.iterdir())  # nothing was created on disk


def test_the_keywords_langchain_passes_are_accepted(emb):
    from langchain_core.indexing import InMemoryRecordManager, index

    store = ERASEVectorStore(emb)
    manager = InMemoryRecordManager("ns")
    manager.create_schema()
    result = index(docs(4), manager, store, cleanup="full", source_id_key="n", batch_size=2,
                   key_encoder="sha256")  # passes batch_size=
    assert result["num_added"] == 4 and len(store) == 4


# ---------------------------------------------------------------------- one id rule
BAD_IDS = [7, b"ex00", "", 1.5]


def _selector(emb):
    return ERASEExampleSelector.from_examples(EXAMPLES[:6], emb, ids=IDS[:6], k=2)


def _retriever(emb):
    return ERASERetriever.from_texts(TEXTS[:6], emb, ids=IDS[:6])


def _vstore(emb):
    return ERASEVectorStore.from_texts(TEXTS[:6], emb, ids=IDS[:6])


#: Every entry point that takes ids, with the object it is called on.
ENTRY_POINTS = {
    "selector.add_examples": (_selector, lambda s, bad: s.add_examples([EXAMPLES[7]], ids=[bad])),
    "selector.add_example": (_selector, lambda s, bad: s.add_example(EXAMPLES[7], id=bad)),
    "selector id_key field": (_selector, lambda s, bad: ERASEExampleSelector.from_examples(
        [{**EXAMPLES[7], "id": bad}], s.embeddings, id_key="id")),
    "selector.from_examples": (_selector, lambda s, bad: ERASEExampleSelector.from_examples(
        [EXAMPLES[7]], s.embeddings, ids=[bad])),
    "selector.get": (_selector, lambda s, bad: s.get(bad)),
    "selector.forget": (_selector, lambda s, bad: s.forget([bad])),
    "selector.forget one": (_selector, lambda s, bad: s.forget(bad)),
    "selector.aforget": (_selector, lambda s, bad: asyncio.run(s.aforget([IDS[0], bad]))),
    "retriever.add_documents": (_retriever, lambda r, bad: r.add_documents(docs(1, 8), ids=[bad])),
    "retriever.aadd_documents": (_retriever, lambda r, bad: asyncio.run(r.aadd_documents(docs(1, 8), ids=[bad]))),
    "retriever.from_texts": (_retriever, lambda r, bad: ERASERetriever.from_texts(TEXTS[:1], r.embeddings, ids=[bad])),
    "retriever.forget": (_retriever, lambda r, bad: r.forget([IDS[0], bad])),
    "store.add_texts": (_vstore, lambda v, bad: v.add_texts(["x"], ids=[bad])),
    "store.add_documents": (_vstore, lambda v, bad: v.add_documents(docs(1, 8), ids=[bad])),
    "store.aadd_texts": (_vstore, lambda v, bad: asyncio.run(v.aadd_texts(["x"], ids=[bad]))),
    "store.from_texts": (_vstore, lambda v, bad: ERASEVectorStore.from_texts(["x"], v.embeddings, ids=[bad])),
    "store.delete": (_vstore, lambda v, bad: v.delete([IDS[0], bad])),
    "store.adelete": (_vstore, lambda v, bad: asyncio.run(v.adelete([bad]))),
    "store.get_by_ids": (_vstore, lambda v, bad: v.get_by_ids([bad])),
    "store.forget": (_vstore, lambda v, bad: v.forget([bad])),
    "store.forget missing=ignore": (_vstore, lambda v, bad: v.forget([bad], missing="ignore")),
}


@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_an_id_is_a_non_empty_string_everywhere(emb, name, bad):
    make, call = ENTRY_POINTS[name]
    obj = make(emb)
    before = obj.digest()
    with pytest.raises(InvalidIdError, match="must be a non-empty string") as info:
        call(obj, bad)
    assert isinstance(info.value, TypeError) and isinstance(info.value, ERASEError)
    assert repr(bad) in str(info.value)  # it names the id
    assert obj.digest() == before and obj.verify()  # state unchanged


def test_int_ids_are_never_converted(emb):
    """``add_texts(ids=[7])`` used to store ``'7'`` while ``delete([7])`` raised."""
    store = _vstore(emb)
    with pytest.raises(InvalidIdError):
        store.add_texts(["x"], ids=[7])
    assert "7" not in store.ids and len(store) == 6


def test_a_missing_document_id_is_generated_in_both(emb):
    """``None`` (a document without an id) is a new UUID, as in LangChain's vector stores."""
    store, retriever = _vstore(emb), _retriever(emb)
    for obj in (store, retriever):
        new = obj.add_documents(docs(2, 8), ids=[None, "given"])
        assert new[1] == "given" and len(new[0]) == 36 and new[0] in obj.ids


# ---------------------------------------------------------------------- add_documents replaces, in both
@pytest.mark.parametrize("make", [_retriever, _vstore], ids=["retriever", "store"])
def test_add_documents_with_existing_ids_replaces_exactly(emb, make):
    obj = make(emb)
    new = [Document(page_content="A brand new text about rain", metadata={"n": 99}),
           Document(page_content=TEXTS[10], metadata={"n": 10})]
    assert obj.add_documents(new, ids=[IDS[1], "fresh"]) == [IDS[1], "fresh"]
    # a fresh build on the resulting data, same seed
    rows = [(IDS[i], Document(page_content=TEXTS[i])) for i in range(6) if i != 1]
    rows += [(IDS[1], new[0]), ("fresh", new[1])]
    rebuilt = type(obj).from_documents([d for _, d in rows], emb, ids=[i for i, _ in rows])
    assert obj.digest() == rebuilt.digest() and obj.verify()
    assert len(obj.ids) == 7
    assert obj.forget([IDS[1]]).ids == (IDS[1],)  # the old version is gone too: one item per id


def test_retriever_and_store_agree_after_replacing(emb):
    retriever, store = _retriever(emb), _vstore(emb)
    for obj in (retriever, store):
        obj.add_documents(docs(3, 9), ids=[IDS[0], IDS[2], "x"])
    assert retriever.digest() == store.digest()
    for q in QUERIES:
        assert retriever.invoke(q) == store.similarity_search(q, k=4)
