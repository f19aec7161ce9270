"""The one-line swap inside FewShotPromptTemplate / FewShotChatMessagePromptTemplate:
same prompts as the stock selector, and forgotten examples never reach a prompt."""

from __future__ import annotations

import pytest

pytest.importorskip("langchain_core")

from langchain_core.example_selectors import SemanticSimilarityExampleSelector  # noqa: E402
from langchain_core.prompts import (  # noqa: E402
    ChatPromptTemplate,
    FewShotChatMessagePromptTemplate,
    FewShotPromptTemplate,
    PromptTemplate,
)
from langchain_core.vectorstores import InMemoryVectorStore  # noqa: E402

from erase_langchain import ERASEExampleSelector  # noqa: E402
from lc_helpers import EXAMPLES, IDS, QUERIES, NGramEmbeddings  # noqa: E402

EXAMPLE_PROMPT = PromptTemplate.from_template("Text: {input}\nTopic: {output}")


def few_shot(selector, input_variables=("input",), suffix="Text: {input}\nTopic:") -> FewShotPromptTemplate:
    return FewShotPromptTemplate(
        example_selector=selector,
        example_prompt=EXAMPLE_PROMPT,
        prefix="Classify the topic of each text.",
        suffix=suffix,
        input_variables=list(input_variables),
    )


def chat_few_shot(selector) -> ChatPromptTemplate:
    examples = FewShotChatMessagePromptTemplate(
        example_selector=selector,
        example_prompt=ChatPromptTemplate.from_messages([("human", "{input}"), ("ai", "{output}")]),
        input_variables=["input", "tone"],
    )
    return ChatPromptTemplate.from_messages(
        [("system", "Answer with one topic word, {tone}."), examples, ("human", "{input}")]
    )


def stock_and_erase(k=3, input_keys=None, **erase_kw):
    emb = NGramEmbeddings()
    # before:
    stock = SemanticSimilarityExampleSelector.from_examples(EXAMPLES, emb, InMemoryVectorStore, k=k, input_keys=input_keys)
    # after (the one-line swap):
    erase = ERASEExampleSelector.from_examples(
        EXAMPLES, emb, InMemoryVectorStore, k=k, input_keys=input_keys, strategy="similarity", **erase_kw
    )
    return stock, erase


# ---------------------------------------------------------------------- drop-in
@pytest.mark.parametrize("k", [1, 3, 6])
def test_same_prompts_as_stock_selector(k):
    stock, erase = stock_and_erase(k=k)
    # (no exact score ties among these: the stock selector breaks ties in numpy argsort order, ERASE by id)
    for q in QUERIES + ["completely unrelated words", "rain"]:
        expected = few_shot(stock).format(input=q)
        assert few_shot(erase).format(input=q) == expected
        assert expected.count("Topic:") == k + 1


async def test_same_prompts_async():
    stock, erase = stock_and_erase(k=3)
    for q in QUERIES:
        assert await few_shot(erase).aformat(input=q) == await few_shot(stock).aformat(input=q)


def test_same_prompts_with_input_keys_and_extra_variables():
    """Prompt templates pass every variable to the selector; input_keys limits the text."""
    stock, erase = stock_and_erase(k=3, input_keys=["input"])
    suffix = "Audience: {audience}\nText: {input}\nTopic:"
    for q in QUERIES:
        a = few_shot(stock, ("input", "audience"), suffix).format(input=q, audience="children")
        b = few_shot(erase, ("input", "audience"), suffix).format(input=q, audience="children")
        assert a == b
        alone = few_shot(erase).format(input=q)
        assert b.split("Audience:")[0] == alone.split("Text: " + q)[0]  # same examples as without the extra variable


def test_same_chat_messages_as_stock_selector():
    stock, erase = stock_and_erase(k=2, input_keys=["input"])
    for q in QUERIES:
        a = chat_few_shot(stock).format_messages(input=q, tone="briefly")
        b = chat_few_shot(erase).format_messages(input=q, tone="briefly")
        assert a == b and len(b) == 1 + 2 * 2 + 1


async def test_same_chat_messages_async():
    stock, erase = stock_and_erase(k=2, input_keys=["input"])
    for q in QUERIES[:3]:
        a = await chat_few_shot(stock).aformat_messages(input=q, tone="briefly")
        b = await chat_few_shot(erase).aformat_messages(input=q, tone="briefly")
        assert a == b


def test_example_keys_same_as_stock():
    emb = NGramEmbeddings()
    extra = [{**ex, "source": f"s{n}"} for n, ex in enumerate(EXAMPLES)]
    stock = SemanticSimilarityExampleSelector.from_examples(
        extra, emb, InMemoryVectorStore, k=2, input_keys=["input"], example_keys=["input", "output"]
    )
    erase = ERASEExampleSelector.from_examples(
        extra, emb, InMemoryVectorStore, k=2, input_keys=["input"], example_keys=["input", "output"], strategy="similarity"
    )
    for q in QUERIES:
        assert erase.select_examples({"input": q}) == stock.select_examples({"input": q})


# ---------------------------------------------------------------------- forget
@pytest.mark.parametrize("strategy", ["erase", "similarity"])
def test_forgotten_examples_never_reach_a_prompt(strategy):
    emb = NGramEmbeddings()
    selector = ERASEExampleSelector.from_examples(EXAMPLES, emb, k=3, ids=IDS, strategy=strategy, seed=1)
    prompt = few_shot(selector)
    shown = {i for q in QUERIES for i in IDS if EXAMPLES[IDS.index(i)]["input"] in prompt.format(input=q)}
    gone = sorted(shown)[:3]
    selector.forget(gone)
    texts = [EXAMPLES[IDS.index(i)]["input"] for i in gone]
    for q in QUERIES + ["rain goal bread laptop"]:
        rendered = prompt.format(input=q)
        assert not any(t in rendered for t in texts), (q, rendered)
    keep = [n for n, i in enumerate(IDS) if i not in gone]
    without = ERASEExampleSelector.from_examples(
        [EXAMPLES[n] for n in keep], NGramEmbeddings(), k=3, ids=[IDS[n] for n in keep], strategy=strategy, seed=1
    )
    assert selector.digest() == without.digest()
    for q in QUERIES:
        assert prompt.format(input=q) == few_shot(without).format(input=q)


async def test_forget_async_in_chat_prompt():
    selector = await ERASEExampleSelector.afrom_examples(EXAMPLES, NGramEmbeddings(), k=4, ids=IDS, input_keys=["input"], strategy="erase")
    chat = chat_few_shot(selector)
    before = await chat.aformat_messages(input=QUERIES[0], tone="briefly")
    fp = selector.fingerprint
    victim = selector.select()[1]
    await selector.aforget([victim.id])
    after = await chat.aformat_messages(input=QUERIES[0], tone="briefly")
    assert selector.fingerprint != fp
    assert any(m.content == victim.payload["input"] for m in before)
    assert all(m.content != victim.payload["input"] for m in after)


# ---------------------------------------------------------------------- the default and the stock constructor shape
def test_the_default_strategy_gives_the_stock_prompts():
    """The swap with no other change (no strategy=): ``similarity`` is the default."""
    emb = NGramEmbeddings()
    stock = SemanticSimilarityExampleSelector.from_examples(EXAMPLES, emb, InMemoryVectorStore, k=3)
    erase = ERASEExampleSelector.from_examples(EXAMPLES, emb, InMemoryVectorStore, k=3)
    plain = ERASEExampleSelector(embeddings=emb, k=3)
    plain.add_examples(EXAMPLES)
    assert erase.strategy == plain.strategy == "similarity"
    for q in QUERIES:
        expected = few_shot(stock).format(input=q)
        assert few_shot(erase).format(input=q) == few_shot(plain).format(input=q) == expected


def stock_shaped(k=3, stock_kw=None, **kw):
    """``SemanticSimilarityExampleSelector(vectorstore=..., k=...)`` and the same call with
    ``ERASEExampleSelector`` over an ``ERASEVectorStore``, both filled through ``add_example``."""
    from erase_langchain import ERASEVectorStore

    emb = NGramEmbeddings()
    stock = SemanticSimilarityExampleSelector(vectorstore=InMemoryVectorStore(emb), k=k, **(stock_kw or kw))
    store = ERASEVectorStore(emb)
    ours = ERASEExampleSelector(vectorstore=store, k=k, **kw)
    for ex in EXAMPLES:
        stock.add_example(ex)
        ours.add_example(ex)
    return stock, ours, store


@pytest.mark.parametrize("kw", [{}, {"input_keys": ["input"]}, {"input_keys": ["input"], "example_keys": ["output"]},
                                {"vectorstore_kwargs": {"filter": {"output": "cooking"}}}])
def test_stock_constructor_shape_gives_the_stock_prompts(kw):
    # InMemoryVectorStore filters with a predicate; ERASE with the dict dialect (both mean the same here)
    stock_kw = {"vectorstore_kwargs": {"filter": lambda d: d.metadata["output"] == "cooking"}} if (
        "vectorstore_kwargs" in kw) else kw
    stock, ours, store = stock_shaped(stock_kw=stock_kw, **kw)
    assert ours.strategy == "similarity" and ours.embeddings is store.embeddings and len(store) == len(EXAMPLES)
    for q in QUERIES:  # (no exact score ties: the stock selector breaks them in argsort order, ERASE by id)
        assert ours.select_examples({"input": q}) == stock.select_examples({"input": q})
        if "example_keys" not in kw:  # (the example prompt needs both fields)
            assert few_shot(ours).format(input=q) == few_shot(stock).format(input=q)
    # the stock selector over the same ERASEVectorStore sees what ours wrote, and the reverse
    over_store = SemanticSimilarityExampleSelector(vectorstore=store, k=3, **kw)
    for q in QUERIES:
        assert over_store.select_examples({"input": q}) == ours.select_examples({"input": q})


def test_stock_constructor_shape_forgets_exactly():
    _, ours, store = stock_shaped()
    q = {"input": QUERIES[1]}
    chosen = [s.id for s in ours.select(q)]
    ours.forget(chosen[:2])
    from erase_langchain import ERASEVectorStore

    fresh = ERASEExampleSelector(vectorstore=ERASEVectorStore(NGramEmbeddings()), k=3)
    kept = {i: ours.get(i) for i in ours.ids}
    fresh.add_examples(list(kept.values()), ids=list(kept))
    assert ours.digest() == fresh.digest() == store.digest()
    assert all(ours.select_examples({"input": x}) == fresh.select_examples({"input": x}) for x in QUERIES)
    assert not set(chosen[:2]) & {s.id for s in ours.select(q)}


def test_stock_constructor_shape_rejects_what_it_cannot_honour():
    from erase_core import ERASEError
    from erase_langchain import ERASEVectorStore

    emb = NGramEmbeddings()
    with pytest.raises(ERASEError, match="ERASEVectorStore"):
        ERASEExampleSelector(vectorstore=InMemoryVectorStore(emb), k=3)  # its copies could not be unlearned
    store = ERASEVectorStore(emb)
    with pytest.raises(ERASEError, match="not both"):
        ERASEExampleSelector(vectorstore=store, index=store.index)
    with pytest.raises(ERASEError, match="embedding"):
        ERASEExampleSelector(vectorstore=store, embeddings=NGramEmbeddings())
    with pytest.raises(ERASEError, match="vectorstore_kwargs"):
        ERASEExampleSelector(vectorstore=store, vectorstore_kwargs={"fetch_k": 3})
    with pytest.raises(TypeError, match="'vector_store'.*did you mean 'vectorstore'"):
        ERASEExampleSelector(vector_store=store, k=3)


def test_erase_and_hybrid_stay_options():
    emb = NGramEmbeddings()
    fixed = ERASEExampleSelector.from_examples(EXAMPLES, emb, k=3, ids=IDS, strategy="erase")
    prefixes = {few_shot(fixed).format(input=q).rsplit("Text: ", 1)[0] for q in QUERIES}
    assert len(prefixes) == 1  # one fixed, cacheable prompt prefix for every input
    hybrid = ERASEExampleSelector.from_examples(EXAMPLES, emb, k=2, ids=IDS, strategy="erase", n_nearest=1)
    assert len(hybrid.select_examples({"input": QUERIES[0]})) == 3
    with pytest.raises(ValueError, match="strategy='erase'"):
        ERASEExampleSelector.from_examples(EXAMPLES, emb, k=2, n_nearest=1)  # the hybrid extends 'erase'
