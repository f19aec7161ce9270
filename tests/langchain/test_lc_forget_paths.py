"""Every forget entry point of every LangChain class reaches the engine's forget listeners, so a
ForgettingCache watching the object drops the entries of what it forgot before the call
returns (the forget is decided once, in erase_core.forget)."""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.documents import Document
from langchain_core.outputs import Generation
from langchain_core.prompts import PromptTemplate

from erase_langchain import ERASEExampleSelector, ERASERetriever, ERASEVectorStore, ForgettingCache
from lc_helpers import EXAMPLES, IDS, NGramEmbeddings

EXAMPLE_PROMPT = PromptTemplate.from_template("Text: {input}\nTopic: {output}")
N = 8
ROWS = [{**ex, "user": f"u{n % 3}", "lang": ["en", "de"][n % 2]} for n, ex in enumerate(EXAMPLES[:N])]
VICTIM = IDS[4]


def build(kind: str):
    emb = NGramEmbeddings()
    if kind == "selector":
        return ERASEExampleSelector.from_examples(ROWS, emb, k=3, input_keys=["input"], ids=IDS[:N], subject_key="user",
                                                  metadata_keys=["lang"], strategy="similarity")
    docs = [Document(page_content=r["input"], metadata=dict(r)) for r in ROWS]
    if kind == "retriever":
        return ERASERetriever(embeddings=emb, documents=docs, ids=IDS[:N], subject_key="user", k=3)
    return ERASEVectorStore.from_documents(docs, emb, ids=IDS[:N], subject_key="user")


def hand_out_and_cache(kind: str, obj, cache: ForgettingCache) -> None:
    """The victim is handed out through the object's public reads and a prompt holding it is cached."""
    row = ROWS[IDS.index(VICTIM)]
    if kind == "selector":
        assert VICTIM in [s.id for s in obj.select({"input": row["input"]})]
        prompt = "Examples:\n" + EXAMPLE_PROMPT.format(input=row["input"], output=row["output"]) + "\nText: q\nTopic:"
    else:
        docs = obj.invoke(row["input"]) if kind == "retriever" else obj.get_by_ids([VICTIM])
        assert VICTIM in [d.id for d in docs]
        prompt = f"Context:\n{row['input']}\nQuestion: q"
    cache.update(prompt, "llm", [Generation(text="cached")])
    assert cache.holds(VICTIM) == 1 and len(cache) == 1


def entry_points(kind: str) -> dict:
    row = ROWS[IDS.index(VICTIM)]
    points = {
        "forget(ids)": lambda o: o.forget([VICTIM]),
        "forget(one id)": lambda o: o.forget(VICTIM),
        "forget(subject=)": lambda o: o.forget(subject=row["user"]),
        "forget_where": lambda o: o.forget_where({"lang": row["lang"]}),
        "aforget": lambda o: asyncio.run(o.aforget([VICTIM])),
    }
    if kind != "vectorstore":
        points["aforget_where"] = lambda o: asyncio.run(o.aforget_where({"lang": row["lang"]}))
    else:
        points["delete(ids)"] = lambda o: o.delete([VICTIM])
        points["delete(all)"] = lambda o: o.delete()
        points["adelete"] = lambda o: asyncio.run(o.adelete([VICTIM]))
    return points


CASES = [(kind, name) for kind in ("selector", "retriever", "vectorstore") for name in entry_points(kind)]


@pytest.mark.parametrize("kind, entry", CASES)
def test_every_forget_reaches_the_listeners_and_the_cache(kind, entry):
    obj = build(kind)
    index = obj.index
    heard: list[tuple[str, ...]] = []
    index.add_forget_listener(heard.append)
    cache = ForgettingCache()
    cache.watch(obj, EXAMPLE_PROMPT) if kind == "selector" else cache.watch(obj)
    hand_out_and_cache(kind, obj, cache)
    before = set(index.ids)
    entry_points(kind)[entry](obj)
    gone = before - set(index.ids)
    assert VICTIM in gone
    assert [set(ids) for ids in heard] == [gone]  # one announcement, of exactly what went
    assert cache.holds(VICTIM) == 0 and len(cache) == 0  # dropped before the call returned


@pytest.mark.parametrize("kind", ["selector", "retriever", "vectorstore"])
def test_a_forget_request_names_one_thing(kind):
    obj = build(kind)
    digest = obj.index.digest()
    with pytest.raises(ValueError, match="exactly one"):
        obj.forget([VICTIM], subject="u1")
    with pytest.raises(ValueError, match="exactly one"):
        obj.forget()
    assert obj.index.digest() == digest and obj.index.audit() == []
