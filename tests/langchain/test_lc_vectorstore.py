"""``ERASEVectorStore``: LangChain's own vector-store suite (unmodified), exactness of every
mutation against a fresh build, the stock example selectors over it, persistence and copies."""

from __future__ import annotations

import copy
import pickle
import sys
from pathlib import Path

import pytest
from langchain_core.documents import Document
from langchain_core.example_selectors import MaxMarginalRelevanceExampleSelector, SemanticSimilarityExampleSelector
from langchain_core.prompts import FewShotPromptTemplate, PromptTemplate
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_tests.integration_tests import VectorStoreIntegrationTests

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lc_helpers import NGramEmbeddings  # noqa: E402
from residue import all_file_bytes, surviving  # noqa: E402

from erase_core import DuplicateIdError, ERASEError, ExampleIndex  # noqa: E402
from erase_langchain import ERASERetriever, ERASEVectorStore  # noqa: E402


class TestERASEVectorStoreInMemory(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self):
        store = ERASEVectorStore(self.get_embeddings())
        yield store
        assert store.verify()  # every test's mutations left the store equal to a fresh build


class TestERASEVectorStorePersisted(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self, tmp_path):
        store = ERASEVectorStore(self.get_embeddings(), persist_path=tmp_path / "store.db")
        yield store
        assert store.verify()
        store.close()


TOPICS = {
    "weather": ["it is sunny today", "rain is coming tomorrow", "a cold and windy morning", "snow in the mountains"],
    "food": ["pasta with tomato sauce", "a bowl of rice and beans", "fresh bread from the oven", "grilled fish tacos"],
    "sport": ["the team won the match", "a long run in the park", "swimming laps at dawn", "tennis finals tonight"],
}


def corpus() -> list[Document]:
    return [Document(id=f"{t}-{j}", page_content=text, metadata={"topic": t, "n": j})
            for t, texts in TOPICS.items() for j, text in enumerate(texts)]


def results(store, query: str) -> list:
    return [
        [(d.id, round(s, 12)) for d, s in store.similarity_search_with_score(query, k=5)],
        [d.id for d in store.max_marginal_relevance_search(query, k=4, fetch_k=8, lambda_mult=0.3)],
        [d.id for d in store.similarity_search(query, k=3, filter={"topic": "food"})],
        [d.id for d in store.similarity_search(query, k=3, filter=lambda d: d.metadata["n"] % 2 == 0)],
        [d.id for d in store.max_marginal_relevance_search(query, k=2, filter={"topic": {"$in": ["sport", "food"]}})],
    ]


QUERIES = ["sunny weather", "dinner with bread", "a match tonight", "morning run"]


@pytest.mark.parametrize("persisted", [False, True])
def test_every_mutation_equals_a_fresh_build(persisted, tmp_path):
    emb = NGramEmbeddings(dim=64)
    docs = corpus()
    store = ERASEVectorStore(emb, persist_path=tmp_path / "s.db" if persisted else None, seed=3)
    store.add_documents(docs)
    store.delete(["food-1", "sport-3", "never-added"])
    store.add_documents([Document(id="weather-0", page_content="heavy rain and thunder", metadata={"topic": "weather", "n": 9})])
    remaining = [d for d in docs if d.id not in ("food-1", "sport-3", "weather-0")]
    remaining.append(Document(id="weather-0", page_content="heavy rain and thunder", metadata={"topic": "weather", "n": 9}))
    fresh = ERASEVectorStore.from_documents(list(reversed(remaining)), emb, seed=3)
    assert store.digest() == fresh.digest() and store.verify()
    for q in QUERIES:
        assert results(store, q) == results(fresh, q)
    assert store.get_by_ids(["food-1", "weather-0"]) == [remaining[-1]]


def test_searches_agree_with_in_memory_vector_store():
    emb = NGramEmbeddings(dim=64)
    ours, theirs = ERASEVectorStore(emb), InMemoryVectorStore(emb)
    for store in (ours, theirs):
        store.add_documents(corpus())
        store.delete(["weather-2"])
    for q in QUERIES:
        a, b = ours.similarity_search_with_score(q, k=6), theirs.similarity_search_with_score(q, k=6)
        assert [d for d, _ in a] == [d for d, _ in b]
        assert [s for _, s in a] == pytest.approx([s for _, s in b], abs=1e-6)
        assert ours.max_marginal_relevance_search(q, k=4, fetch_k=10) == theirs.max_marginal_relevance_search(q, k=4, fetch_k=10)
        keep = lambda d: d.metadata["topic"] != "sport"  # noqa: E731
        assert ours.similarity_search(q, k=3, filter=keep) == theirs.similarity_search(q, k=3, filter=keep)


EXAMPLES = [{"question": q, "answer": a} for q, a in [
    ("what is two plus two", "four"), ("capital of france", "paris"), ("color of the sky", "blue"),
    ("three times three", "nine"), ("capital of italy", "rome"), ("color of grass", "green"),
    ("ten minus one", "nine"), ("largest ocean", "pacific"),
]]


def render(selector_cls, store_cls, **kwargs) -> list[str]:
    emb = NGramEmbeddings(dim=64)
    selector = selector_cls.from_examples(EXAMPLES, emb, store_cls, k=3, **kwargs)
    prompt = FewShotPromptTemplate(
        example_selector=selector, example_prompt=PromptTemplate.from_template("Q: {question}\nA: {answer}"),
        suffix="Q: {question}\nA:", input_variables=["question"],
    )
    out = [prompt.format(question=q) for q in ["capital of spain", "two plus nine", "color of the sea"]]
    selector.add_example({"question": "capital of spain", "answer": "madrid"})
    out.append(prompt.format(question="capital of spain"))
    return out


@pytest.mark.parametrize("selector_cls, kwargs", [
    (SemanticSimilarityExampleSelector, {}),
    (MaxMarginalRelevanceExampleSelector, {"fetch_k": 5}),
])
def test_stock_example_selectors_render_the_same_prompts(selector_cls, kwargs):
    assert render(selector_cls, ERASEVectorStore, **kwargs) == render(selector_cls, InMemoryVectorStore, **kwargs)


def test_stock_selector_constructor_and_vectorstore_delete():
    emb = NGramEmbeddings(dim=64)
    store = ERASEVectorStore.from_texts([" ".join(e.values()) for e in EXAMPLES], emb, metadatas=EXAMPLES,
                                        ids=[f"e{i}" for i in range(len(EXAMPLES))])
    selector = SemanticSimilarityExampleSelector(vectorstore=store, k=2)
    assert {"question": "capital of italy", "answer": "rome"} in selector.select_examples({"question": "capital of italy"})
    selector.vectorstore.delete(["e4"])
    picked = selector.select_examples({"question": "capital of italy"})
    assert {"question": "capital of italy", "answer": "rome"} not in picked and len(picked) == 2


def test_as_retriever_search_types():
    store = ERASEVectorStore.from_documents(corpus(), NGramEmbeddings(dim=64))
    assert [d.id for d in store.as_retriever(search_kwargs={"k": 2}).invoke("sunny weather")] == [
        d.id for d in store.similarity_search("sunny weather", k=2)]
    mmr = store.as_retriever(search_type="mmr", search_kwargs={"k": 3, "fetch_k": 6})
    assert [d.id for d in mmr.invoke("sunny weather")] == [
        d.id for d in store.max_marginal_relevance_search("sunny weather", k=3, fetch_k=6)]
    threshold = store.as_retriever(search_type="similarity_score_threshold", search_kwargs={"score_threshold": 0.2, "k": 5})
    expected = [d.id for d, s in store.similarity_search_with_score("sunny weather today", k=5) if s >= 0.2]
    assert [d.id for d in threshold.invoke("sunny weather today")] == expected and 0 < len(expected) < 5


def test_delete_erases_from_disk_and_other_handles(tmp_path):
    emb = NGramEmbeddings(dim=64)
    secret = "the secret customer record " * 200  # over 4 KB: SQLite spreads it over pages
    store = ERASEVectorStore(emb, persist_path=tmp_path / "s.db")
    store.add_documents(corpus() + [Document(id="secret", page_content=secret, metadata={"topic": "private"})])
    other = ERASEVectorStore.open(tmp_path / "s.db", emb)
    vector = store.index.vector("secret").astype("<f4").tobytes()
    assert other.get_by_ids(["secret"])
    store.delete(["secret"])
    assert other.get_by_ids(["secret"]) == [] and "secret" not in [d.id for d in other.similarity_search(secret, k=20)]
    retriever = ERASERetriever.open(tmp_path / "s.db", emb)  # same file layout as the retriever
    assert len(retriever.ids) == len(corpus())
    for handle in (store, other, retriever):
        handle.close()
    assert surviving(all_file_bytes(tmp_path), [secret.encode(), vector]) == []


def test_delete_none_forgets_everything_and_subjects(tmp_path):
    store = ERASEVectorStore(NGramEmbeddings(dim=32), subject_key="owner")
    store.add_texts(["a b", "c d", "e f"], metadatas=[{"owner": "ann"}, {"owner": "bob"}, {"owner": "ann"}], ids=["1", "2", "3"])
    receipt = store.forget(subject="ann")
    assert sorted(receipt.ids) == ["1", "3"] and store.ids == ["2"]
    assert store.delete() is True and len(store) == 0 and store.similarity_search("a", k=2) == []


def test_bad_input_changes_nothing():
    store = ERASEVectorStore.from_documents(corpus(), NGramEmbeddings(dim=32))
    before = store.digest()
    bad = [
        (lambda: store.add_documents([Document(page_content="x", metadata={"when": object()})]), ERASEError),
        (lambda: store.add_documents([Document(page_content="x"), Document(page_content="y")], ids=["a", "a"]), DuplicateIdError),
        (lambda: store.add_documents([Document(page_content="x")], ids=["a", "b"]), ERASEError),
        (lambda: store.add_texts(["x"], metadatas=[{}, {}]), ERASEError),
        (lambda: store.similarity_search("x", k=0), ERASEError),
        (lambda: store.similarity_search("x", filter={"topic": {"$nope": 1}}), ERASEError),
        (lambda: store.similarity_search_by_vector([0.1] * 31), ERASEError),
        (lambda: store.max_marginal_relevance_search("x", lambda_mult=2.0), ERASEError),
        (lambda: store.similarity_search("x", k=2, unknown_option=1), TypeError),
        (lambda: store.add_texts(["x"], ids=[7]), TypeError),  # ids are strings, never converted
        (lambda: ERASEVectorStore("not an embedding model"), ERASEError),
    ]
    for call, error in bad:
        with pytest.raises(error):
            call()
        assert store.digest() == before and store.verify()


def test_pickle_and_deepcopy(tmp_path):
    emb = NGramEmbeddings(dim=32)
    memory = ERASEVectorStore.from_documents(corpus(), emb, strategy="erase", k=3, seed=5)
    for clone in (pickle.loads(pickle.dumps(memory)), copy.deepcopy(memory)):
        assert clone.digest() == memory.digest() and results(clone, "rain") == results(memory, "rain")
        clone.delete(["food-0"])
        assert "food-0" in memory.ids  # a by-value copy is independent
    persisted = ERASEVectorStore.from_documents(corpus(), emb, persist_path=tmp_path / "s.db")
    clone = pickle.loads(pickle.dumps(persisted))
    persisted.delete(["food-0"])
    assert "food-0" not in clone.ids  # a persisted copy follows the live store
    persisted.close()
    clone.close()


async def test_async_twins_match_sync():
    emb = NGramEmbeddings(dim=64)
    store = await ERASEVectorStore.afrom_texts([d.page_content for d in corpus()], emb,
                                               metadatas=[d.metadata for d in corpus()], ids=[d.id for d in corpus()])
    assert await store.asimilarity_search("rain", k=3) == store.similarity_search("rain", k=3)
    assert await store.amax_marginal_relevance_search("rain", k=3) == store.max_marginal_relevance_search("rain", k=3)
    receipt = await store.aforget(["weather-1"])
    assert receipt.ids == ("weather-1",) and await store.aget_by_ids(["weather-1"]) == []
    assert await store.adelete(["nope"]) is True


def test_wraps_an_existing_index():
    index = ExampleIndex(2, strategy="similarity")
    store = ERASEVectorStore(NGramEmbeddings(dim=16), index=index)
    store.add_texts(["one", "two"], ids=["1", "2"])
    assert index.ids == ["1", "2"]
    with pytest.raises(ERASEError, match="not both"):
        ERASEVectorStore(NGramEmbeddings(dim=16), index=index, persist_path="x.db")


def render_with(selector) -> list[str]:
    prompt = FewShotPromptTemplate(
        example_selector=selector, example_prompt=PromptTemplate.from_template("Q: {question}\nA: {answer}"),
        suffix="Q: {question}\nA:", input_variables=["question"],
    )
    return [prompt.format(question=q) for q in ["capital of spain", "two plus nine", "color of the sea"]]


def test_erase_selector_mmr_is_a_drop_in_for_the_stock_mmr_selector():
    from erase_langchain import ERASEExampleSelector

    emb = NGramEmbeddings(dim=64)
    stock = MaxMarginalRelevanceExampleSelector.from_examples(EXAMPLES, emb, InMemoryVectorStore, 3, None, 5)
    ours = ERASEExampleSelector.from_examples(EXAMPLES, emb, InMemoryVectorStore, 3, None, 5)  # the stock positional call
    assert ours.strategy == "mmr" and ours.fetch_k == 5
    assert render_with(ours) == render_with(stock)
    with pytest.raises(ERASEError, match="fetch_k"):
        ERASEExampleSelector.from_examples(EXAMPLES, emb, k=3, fetch_k=5, strategy="similarity")


@pytest.mark.parametrize("make", ["selector", "retriever"])
def test_mmr_forget_equals_a_fresh_build(make):
    from erase_langchain import ERASEExampleSelector

    emb = NGramEmbeddings(dim=64)
    ids = [f"e{i}" for i in range(len(EXAMPLES))]

    def build(keep):
        if make == "selector":
            return ERASEExampleSelector.from_examples([EXAMPLES[i] for i in keep], emb, k=3, ids=[ids[i] for i in keep],
                                                      strategy="mmr", fetch_k=6, lambda_mult=0.3)
        docs = [Document(page_content=" ".join(EXAMPLES[i].values()), metadata=EXAMPLES[i]) for i in keep]
        return ERASERetriever(embeddings=emb, documents=docs, ids=[ids[i] for i in keep], k=3, strategy="mmr",
                              fetch_k=6, lambda_mult=0.3)

    def picks(obj):
        if make == "selector":
            return [obj.select_examples({"question": q}) for q in ["capital of spain", "nine", "color"]]
        return [[d.id for d in obj.invoke(q)] for q in ["capital of spain", "nine", "color"]]

    full = build(range(len(EXAMPLES)))
    full.forget(["e1", "e6"])
    fresh = build([i for i in range(len(EXAMPLES)) if i not in (1, 6)])
    assert picks(full) == picks(fresh) and full.digest() == fresh.digest()


def test_selectors_and_retrievers_pickle_and_deepcopy():
    from erase_langchain import ERASEExampleSelector

    emb = NGramEmbeddings(dim=32)
    selector = ERASEExampleSelector.from_examples(EXAMPLES, emb, k=3, ids=[f"e{i}" for i in range(len(EXAMPLES))],
                                                  strategy="erase")
    retriever = ERASERetriever.from_documents(corpus(), emb, k=2)
    for clone in (pickle.loads(pickle.dumps(selector)), copy.deepcopy(selector)):
        assert clone.select_examples({"question": "x"}) == selector.select_examples({"question": "x"})
        clone.forget(["e0"])
        assert "e0" in selector.ids
    clone = pickle.loads(pickle.dumps(retriever))
    assert clone.invoke("sunny weather") == retriever.invoke("sunny weather")


def test_reopening_with_another_embedding_model_warns(tmp_path):
    import warnings

    from langchain_core.embeddings import DeterministicFakeEmbedding

    from erase_langchain import ERASEExampleSelector

    ERASEVectorStore.from_documents(corpus(), NGramEmbeddings(dim=64), persist_path=tmp_path / "s.db").close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ERASEVectorStore.open(tmp_path / "s.db", NGramEmbeddings(dim=64)).close()  # the same model: silent
    with pytest.warns(UserWarning, match="DeterministicFakeEmbedding"):
        ERASEVectorStore.open(tmp_path / "s.db", DeterministicFakeEmbedding(size=64)).close()
    ERASEExampleSelector.from_examples(EXAMPLES, NGramEmbeddings(dim=64), k=2, persist_path=tmp_path / "sel.db",
                                       strategy="erase").close()
    with pytest.warns(UserWarning, match="NGramEmbeddings"):
        ERASEExampleSelector.open(tmp_path / "sel.db", DeterministicFakeEmbedding(size=64)).close()
