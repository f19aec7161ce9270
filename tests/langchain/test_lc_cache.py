"""ForgettingCache: an LLM cache around any BaseCache that drops every cached generation whose
prompt contained a forgotten example, for every forget path (by id, subject, filter; this
object, another handle, another process), with a byte scan of a SQLite-backed cache's file."""

from __future__ import annotations

import pickle
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("langchain_core")

from langchain_core.caches import InMemoryCache  # noqa: E402
from langchain_core.documents import Document  # noqa: E402
from langchain_core.globals import get_llm_cache, set_llm_cache  # noqa: E402
from langchain_core.language_models.fake import FakeListLLM  # noqa: E402
from langchain_core.language_models.fake_chat_models import FakeListChatModel  # noqa: E402
from langchain_core.outputs import Generation  # noqa: E402
from langchain_core.prompts import (  # noqa: E402
    ChatPromptTemplate,
    FewShotChatMessagePromptTemplate,
    FewShotPromptTemplate,
    PromptTemplate,
)

from erase_core import ERASEError  # noqa: E402
from erase_langchain import ERASEExampleSelector, ERASERetriever, ForgettingCache  # noqa: E402
from lc_helpers import EXAMPLES, IDS, QUERIES, NGramEmbeddings, sqlite_llm_cache  # noqa: E402
from residue import all_file_bytes, surviving  # noqa: E402

USERS = ["alice", "bob", "carol", "dave"]
OWNED = [{**ex, "user": USERS[n % 4], "lang": ["en", "de"][n % 2]} for n, ex in enumerate(EXAMPLES)]
EXAMPLE_PROMPT = PromptTemplate.from_template("Text: {input}\nTopic: {output}")


def few_shot(selector) -> FewShotPromptTemplate:
    return FewShotPromptTemplate(
        example_selector=selector, example_prompt=EXAMPLE_PROMPT,
        prefix="Classify the topic of each text as sports, cooking, weather, technology or finance.",
        suffix="Text: {input}\nTopic:", input_variables=["input"],
    )


def selector(strategy="similarity", **kw):
    return ERASEExampleSelector.from_examples(
        OWNED, NGramEmbeddings(), k=kw.pop("k", 3), input_keys=["input"], ids=IDS, subject_key="user",
        metadata_keys=["lang"], strategy=strategy, seed=3, **kw,
    )


def fake_llm(cache) -> FakeListLLM:
    return FakeListLLM(responses=[f"answer {n}" for n in range(100)], cache=cache)


def stored_prompts(inner) -> list[str]:
    if isinstance(inner, InMemoryCache):
        return [prompt for prompt, _ in inner._cache]
    return inner.prompts()


def text_of(example_id: str) -> str:
    return EXAMPLES[IDS.index(example_id)]["input"]


def run_all(chain, queries=QUERIES) -> None:
    for q in queries:
        chain.invoke({"input": q})


@pytest.fixture(params=["memory", "sqlite"])
def inner(request, tmp_path):
    if request.param == "memory":
        yield InMemoryCache()
    else:
        cache = sqlite_llm_cache(tmp_path / "llm_cache.sqlite")
        yield cache
        cache.close()


def victim_in_some_prompts(sel, cache) -> str:
    """An example that some but not all cached prompts contain (so survivors exist)."""
    counts = {i: cache.holds(i) for i in sel.ids}
    return max((i for i in counts if 0 < counts[i] < len(cache)), key=lambda i: (counts[i], i))


# ---------------------------------------------------------------------- the few-shot chain
def test_chain_cache_forgets_the_example(inner, tmp_path):
    sel = selector()
    prompt = few_shot(sel)
    cache = ForgettingCache(inner).watch(prompt)
    llm = fake_llm(cache)
    chain = prompt | llm
    run_all(chain)
    assert len(cache) == len(QUERIES) and llm.i == len(QUERIES)
    run_all(chain)
    assert llm.i == len(QUERIES)  # all served from the cache
    victim = victim_in_some_prompts(sel, cache)
    text = text_of(victim)
    holding = [q for q in QUERIES if text in prompt.format(input=q)]
    assert holding and len(holding) < len(QUERIES) and cache.holds(victim) == len(holding)
    if not isinstance(inner, InMemoryCache):  # positive control: the scan sees cached prompts on disk
        assert surviving(all_file_bytes(tmp_path), [text.encode()])

    receipt = sel.forget(victim)
    assert receipt.ids == (victim,)
    # no entry holds the forgotten text, in the cache's own records or in the inner cache ...
    assert not any(text in p for p in stored_prompts(inner))
    assert len(cache) == len(QUERIES) - len(holding) and cache.holds(victim) == 0
    if not isinstance(inner, InMemoryCache):  # ... or anywhere in the SQLite file (byte scan)
        files = all_file_bytes(tmp_path)
        assert not surviving(files, [text.encode()])
        kept = next(i for i in sel.ids if cache.holds(i))
        assert surviving(files, [text_of(kept).encode()])  # the survivors are still there
    # entries without the example survive and are still served; the others are recomputed
    calls = llm.i
    run_all(chain, [q for q in QUERIES if q not in holding])
    assert llm.i == calls
    run_all(chain, holding)
    assert llm.i == calls + len(holding)
    assert not any(text in p for p in stored_prompts(inner))


@pytest.mark.parametrize("how", ["subject", "where"])
def test_forget_by_subject_or_filter_drops_entries(how):
    sel = selector()
    prompt = few_shot(sel)
    cache = ForgettingCache().watch(prompt)
    run_all(prompt | fake_llm(cache))
    if how == "subject":
        gone = sel.ids_of_subject("bob")
        sel.forget(subject="bob")
    else:
        gone = [i for i in sel.ids if sel.attributes(i)["metadata"]["lang"] == "de"]
        sel.forget_where({"lang": "de"})
    texts = [text_of(i) for i in gone]
    left = stored_prompts(cache.inner)
    assert not any(t in p for t in texts for p in left)
    assert len(left) == len(cache) and all(cache.holds(i) == 0 for i in gone)


def test_erase_strategy_fixed_set(inner):
    sel = selector("erase", k=4)
    prompt = few_shot(sel)
    cache = ForgettingCache(inner).watch(prompt)
    run_all(prompt | fake_llm(cache))
    chosen = [x.id for x in sel.select()]
    assert all(cache.holds(i) == len(QUERIES) for i in chosen)
    outside = next(i for i in sel.ids if i not in chosen)
    receipt = sel.forget(outside)
    if not receipt.selected_changed:  # an example no prompt contained: every entry survives
        assert len(cache) == len(QUERIES)
    sel.forget(chosen[0])  # in every prompt: every entry goes
    assert len(cache) == 0 and stored_prompts(inner) == []


# ---------------------------------------------------------------------- forgets elsewhere
@pytest.mark.processes
def test_forget_by_another_handle_or_process(tmp_path):
    path = tmp_path / "shots.sqlite"
    sel = selector(persist_path=path)
    prompt = few_shot(sel)
    cache = ForgettingCache().watch(prompt)
    llm = fake_llm(cache)
    run_all(prompt | llm)
    victim = victim_in_some_prompts(sel, cache)
    victim_prompt = next(prompt.format(input=q) for q in QUERIES if text_of(victim) in prompt.format(input=q))
    llm_string = next(key for key in cache.inner._cache if key[0] == victim_prompt)[1]

    other = ERASEExampleSelector.open(path, NGramEmbeddings(), input_keys=["input"], subject_key="user")
    other.forget(victim)  # another handle: this cache is not told ...
    assert cache.inner.lookup(victim_prompt, llm_string) is not None
    assert cache.lookup(victim_prompt, llm_string) is None  # ... but never serves it: it catches up first
    assert not any(text_of(victim) in p for p in stored_prompts(cache.inner))

    # another process (the CLI), by subject
    owner = next(u for u in USERS if any(cache.holds(i) for i in sel.ids_of_subject(u)))
    gone = sel.ids_of_subject(owner)
    done = subprocess.run([sys.executable, "-m", "erase_core.cli", "forget", str(path), "--subject", owner],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    cache.purge_forgotten()
    assert not any(text_of(i) in p for i in gone for p in stored_prompts(cache.inner))
    other.close()
    sel.close()


def test_generation_in_flight_during_a_forget_is_not_cached():
    sel = selector()
    prompt = few_shot(sel)
    cache = ForgettingCache().watch(prompt)
    text = prompt.format(input=QUERIES[0])  # selects: the cache has seen these examples
    victim = sel.select({"input": QUERIES[0]})[0].id
    assert text_of(victim) in text
    sel.forget(victim)  # ... while the LLM was still answering
    cache.update(text, "llm", [Generation(text="late answer")])
    assert len(cache) == 0 and cache.lookup(text, "llm") is None and stored_prompts(cache.inner) == []
    # the same through another handle on a store, noticed at update time
    other = ERASEExampleSelector.from_examples(EXAMPLES, NGramEmbeddings(), k=3, input_keys=["input"], ids=IDS,
                                               strategy="similarity")
    p2 = few_shot(other)
    cache2 = ForgettingCache().watch(p2)
    text2 = p2.format(input=QUERIES[1])
    victim2 = other.select({"input": QUERIES[1]})[0].id
    other.index.forget([victim2])  # the engine directly: no notification
    cache2.update(text2, "llm", [Generation(text="late")])
    assert len(cache2) == 0 and stored_prompts(cache2.inner) == []
    # a prompt without forgotten examples is cached as usual
    cache2.update(p2.format(input=QUERIES[1]), "llm", [Generation(text="fresh")])
    assert len(cache2) == 1


def test_the_cache_keeps_no_forgotten_text():
    sel = selector()
    prompt = few_shot(sel)
    cache = ForgettingCache().watch(prompt)
    run_all(prompt | fake_llm(cache))
    victim = victim_in_some_prompts(sel, cache)
    sel.forget(victim)
    state = pickle.dumps((cache._needles._owners, cache._needles._anchors, cache._needles._short, cache._tombs,
                          cache._entries, cache._by_owner, [p.items for p in cache._pools]))
    assert not surviving(state, [text_of(victim).encode(), victim.encode()])
    kept = next(i for i in sel.ids if cache.holds(i))
    assert text_of(kept).encode() in state  # the survivors' prompts are held (the inner cache's keys)


# ---------------------------------------------------------------------- other shapes
def test_chat_model_cache_with_json_escaped_examples():
    examples = [dict(ex) for ex in OWNED]
    examples[0]["input"] = 'The "striker" scored twice in the café final'  # quotes and non-ASCII: JSON-escaped in keys
    sel = ERASEExampleSelector.from_examples(examples, NGramEmbeddings(), k=3, input_keys=["input"], ids=IDS,
                                             strategy="similarity")
    few = FewShotChatMessagePromptTemplate(
        example_selector=sel, input_variables=["input"],
        example_prompt=ChatPromptTemplate.from_messages([("human", "{input}"), ("ai", "{output}")]),
    )
    prompt = ChatPromptTemplate.from_messages([("system", "Classify the topic."), few, ("human", "{input}")])
    cache = ForgettingCache().watch(few)
    chat = FakeListChatModel(responses=[f"r{n}" for n in range(50)], cache=cache)
    chain = prompt | chat
    for q in QUERIES[:3]:
        chain.invoke({"input": q})
    assert cache.holds("ex00") >= 1 and len(cache) == 3
    keys = stored_prompts(cache.inner)
    assert not any(examples[0]["input"] in k for k in keys)  # the raw text is not in the JSON key ...
    sel.forget("ex00")  # ... and is still recognised, escaped
    assert cache.holds("ex00") == 0 and len(cache) == 3 - sum("caf\\u00e9" in k for k in keys)
    assert not any("caf\\u00e9" in k for k in stored_prompts(cache.inner))


def test_retriever_rag_chain():
    docs = [Document(page_content=ex["input"], metadata={"user_id": USERS[n % 4]}) for n, ex in enumerate(EXAMPLES)]
    r = ERASERetriever(embeddings=NGramEmbeddings(), documents=docs, ids=IDS, k=2, strategy="similarity",
                       subject_key="user_id")
    cache = ForgettingCache().watch(r)
    llm = fake_llm(cache)
    template = PromptTemplate.from_template("Context:\n{context}\n\nQuestion: {question}\nAnswer:")
    chain = {"context": r | (lambda ds: "\n\n".join(d.page_content for d in ds)), "question": lambda q: q} | template | llm
    for q in QUERIES:
        chain.invoke(q)
    victim = victim_in_some_prompts(r, cache)
    owner = r.attributes(victim)["subject"]
    gone = r.ids_of_subject(owner)
    r.forget(subject=owner)
    assert not any(text_of(i) in p for i in gone for p in stored_prompts(cache.inner))
    assert len(cache) > 0


async def test_async_chain_and_forget(inner):
    sel = selector()
    prompt = few_shot(sel)
    cache = ForgettingCache(inner).watch(prompt)
    llm = fake_llm(cache)
    chain = prompt | llm
    for q in QUERIES:
        await chain.ainvoke({"input": q})
    assert len(cache) == len(QUERIES)
    victim = victim_in_some_prompts(sel, cache)
    await sel.aforget(victim)
    assert not any(text_of(victim) in p for p in stored_prompts(inner)) and cache.holds(victim) == 0
    owner = next(u for u in USERS if any(cache.holds(i) for i in sel.ids_of_subject(u)))
    gone = sel.ids_of_subject(owner)
    await sel.aforget(subject=owner)
    await sel.aforget_where({"lang": "de"})
    await cache.apurge_forgotten()
    assert not any(text_of(i) in p for i in gone for p in stored_prompts(inner))
    assert await cache.alookup("nothing", "llm") is None
    await cache.aupdate("plain prompt", "llm", [Generation(text="x")])
    assert (await cache.alookup("plain prompt", "llm"))[0].text == "x"
    await cache.aclear()
    assert len(cache) == 0 and stored_prompts(inner) == []


def test_global_cache():
    sel = selector()
    prompt = few_shot(sel)
    cache = ForgettingCache().watch(prompt)
    before = get_llm_cache()
    set_llm_cache(cache)
    try:
        llm = FakeListLLM(responses=[f"a{n}" for n in range(50)])
        run_all(prompt | llm)
        assert len(cache) == len(QUERIES)
        victim = victim_in_some_prompts(sel, cache)
        sel.forget(victim)
        assert not any(text_of(victim) in p for p in stored_prompts(cache.inner))
    finally:
        set_llm_cache(before)


def test_watch_rules_and_clear_inner():
    sel = selector()
    with pytest.raises(ERASEError, match="example_prompt"):
        ForgettingCache().watch(sel)
    with pytest.raises(ERASEError, match="no example selector"):
        ForgettingCache().watch(FewShotPromptTemplate(examples=EXAMPLES[:2], example_prompt=EXAMPLE_PROMPT,
                                                      suffix="{input}", input_variables=["input"]))
    with pytest.raises(TypeError):
        ForgettingCache().watch(object())
    wrong = selector()
    ForgettingCache().watch(wrong, example_prompt=PromptTemplate.from_template("{input} {missing}"))
    with pytest.raises(ERASEError, match="needs 'missing'"):
        wrong.select_examples({"input": "x"})  # a template that cannot render the examples: loud
    cache = ForgettingCache().watch(sel, example_prompt=EXAMPLE_PROMPT)
    assert cache.watch(sel, example_prompt=EXAMPLE_PROMPT) is cache and len(cache._pools) == 1
    assert len(cache._pools[0].renderers) == 1
    old = InMemoryCache()
    old.update("an old prompt", "llm", [Generation(text="old")])
    assert ForgettingCache(old).lookup("an old prompt", "llm")[0].text == "old"  # kept unless asked
    ForgettingCache(old, clear_inner=True)
    assert old.lookup("an old prompt", "llm") is None


def test_with_filter_copy_is_watched():
    sel = selector()
    tenant = sel.with_filter({"lang": "en"})
    prompt = few_shot(tenant)
    cache = ForgettingCache().watch(prompt)
    run_all(prompt | fake_llm(cache))
    victim = victim_in_some_prompts(tenant, cache)
    assert sel.attributes(victim)["metadata"]["lang"] == "en"
    sel.forget(victim)  # through the original: the copy shares its engine and its watchers
    assert cache.holds(victim) == 0 and not any(text_of(victim) in p for p in stored_prompts(cache.inner))


class SlowLLM(FakeListLLM):
    """A fake LLM that takes a while to answer, so that forgets land while calls are in flight."""

    def _call(self, *args, **kwargs):
        time.sleep(0.005)
        return super()._call(*args, **kwargs)


def test_concurrent_chains_and_forgets():
    sel = selector(k=4)
    prompt = few_shot(sel)
    cache = ForgettingCache().watch(prompt)
    chain = prompt | SlowLLM(responses=[f"a{n}" for n in range(10)], cache=cache)
    errors, stop = [], threading.Event()

    def worker(offset):
        try:
            n = offset
            while not stop.is_set():
                chain.invoke({"input": f"{QUERIES[n % len(QUERIES)]} {n % 5}"})
                n += 1
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(j,)) for j in range(3)]
    for t in threads:
        t.start()
    gone = []
    try:
        for owner in ("alice", "bob", "carol"):
            time.sleep(0.05)
            gone += sel.ids_of_subject(owner)
            sel.forget(subject=owner)
        time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors
    assert len(cache) > 0
    assert not any(text_of(i) in p for i in gone for p in stored_prompts(cache.inner))
    assert all(cache.holds(i) == 0 for i in gone)


# ---------------------------------------------------------------------- every source kind, through the core's hook
from langchain_core.example_selectors import (  # noqa: E402
    MaxMarginalRelevanceExampleSelector,
    SemanticSimilarityExampleSelector,
)

from erase_langchain import ERASEVectorStore  # noqa: E402


def example_store(tmp_path=None) -> ERASEVectorStore:
    store = ERASEVectorStore(NGramEmbeddings(), persist_path=None if tmp_path is None else tmp_path / "store.sqlite",
                             subject_key="user")
    store.add_texts([ex["input"] for ex in OWNED], [dict(ex) for ex in OWNED], ids=IDS)
    return store


def stock_selector(kind, store):
    cls = SemanticSimilarityExampleSelector if kind == "similarity" else MaxMarginalRelevanceExampleSelector
    return cls(vectorstore=store, k=3, input_keys=["input"])


def check_forget_reaches_cache(cache, llm, chain, inputs, forget, text_of_id=text_of):
    """Run, rerun from the cache, forget the victim through ``forget`` (which returns every id it
    forgot); the entries holding any of them go, the others are still served, and the ones that
    went are recomputed."""
    for q in inputs:
        chain.invoke(q)
    assert len(cache) == len(inputs)
    calls = llm.i
    for q in inputs:
        chain.invoke(q)
    assert llm.i == calls  # served from the cache
    victim = max((i for i in IDS if 0 < cache.holds(i) < len(cache)), key=lambda i: (cache.holds(i), i))
    assert len([p for p in stored_prompts(cache.inner) if text_of_id(victim) in p]) == cache.holds(victim) > 0
    prompts, before = stored_prompts(cache.inner), len(cache)
    gone = forget(victim)
    assert victim in gone
    texts = [text_of_id(i) for i in gone]
    holding = [p for p in prompts if any(t in p for t in texts)]
    assert all(cache.holds(i) == 0 for i in gone)
    assert not any(t in p for t in texts for p in stored_prompts(cache.inner))
    assert len(cache) == before - len(holding)  # unrelated entries stay ...
    assert len(cache) > 0 or len(gone) > 1  # (one id is in some prompts only: the victim's choice)
    calls = llm.i
    for q in inputs:
        chain.invoke(q)
    assert llm.i == calls + len(holding)  # ... and are served; the dropped ones are recomputed
    return victim


@pytest.mark.parametrize("kind", ["similarity", "mmr"])
@pytest.mark.parametrize("how", ["delete", "forget_subject", "forget_where", "upsert"])
def test_stock_selector_over_the_store(kind, how):
    store = example_store()
    prompt = few_shot(stock_selector(kind, store))
    cache = ForgettingCache().watch(prompt)
    llm = fake_llm(cache)
    chain = prompt | llm

    def forget(victim):
        example = OWNED[IDS.index(victim)]
        if how == "delete":
            store.delete([victim])
            return [victim]
        if how == "forget_subject":
            return store.forget(subject=example["user"]).ids
        if how == "forget_where":
            return store.forget_where({"$and": [{"user": example["user"]}, {"lang": example["lang"]}]}).ids
        # same id, new content: the old content is forgotten
        return store.index.upsert(store.embedding.embed_documents(["a brand new text"]),
                                  [{"page_content": "a brand new text", "metadata": {"input": "a brand new text",
                                                                                     "output": "other"}}], [victim]).ids

    victim = check_forget_reaches_cache(cache, llm, chain, [{"input": q} for q in QUERIES], forget)
    assert victim not in store.ids or how == "upsert"


def test_erase_selector_over_the_store_and_the_store_watched_twice():
    store = example_store()
    sel = ERASEExampleSelector(vectorstore=store, k=3, input_keys=["input"], strategy="similarity")
    prompt = few_shot(sel)
    cache = ForgettingCache().watch(prompt).watch(store)  # one engine, two renderings
    assert len(cache._pools) == 1 and len(cache._pools[0].renderers) == 2
    llm = fake_llm(cache)
    check_forget_reaches_cache(cache, llm, prompt | llm, [{"input": q} for q in QUERIES],
                               lambda victim: sel.forget(victim).ids)


@pytest.mark.parametrize("source", ["store", "vectorstore_retriever", "mmr_retriever", "erase_retriever"])
def test_rag_chain_over_each_retriever(source):
    store = example_store()
    retriever = {
        "store": store.as_retriever(search_kwargs={"k": 2}),
        "vectorstore_retriever": store.as_retriever(search_kwargs={"k": 2}),
        "mmr_retriever": store.as_retriever(search_type="mmr", search_kwargs={"k": 2, "fetch_k": 6}),
        "erase_retriever": ERASERetriever(embeddings=NGramEmbeddings(), index=store.index, k=2, strategy="similarity"),
    }[source]
    cache = ForgettingCache().watch(store if source == "store" else retriever)
    llm = fake_llm(cache)
    template = PromptTemplate.from_template("Context:\n{context}\n\nQuestion: {question}\nAnswer:")
    chain = {"context": retriever | (lambda ds: "\n\n".join(d.page_content for d in ds)),
             "question": lambda q: q} | template | llm
    check_forget_reaches_cache(cache, llm, chain, QUERIES, lambda victim: store.delete([victim]) and [victim])


async def test_async_rag_chain_over_a_vectorstore_retriever():
    store = example_store()
    retriever = store.as_retriever(search_kwargs={"k": 2})
    cache = ForgettingCache().watch(retriever)
    llm = fake_llm(cache)
    template = PromptTemplate.from_template("Context:\n{context}\n\nQuestion: {question}\nAnswer:")
    chain = {"context": retriever | (lambda ds: "\n\n".join(d.page_content for d in ds)),
             "question": lambda q: q} | template | llm
    for q in QUERIES:
        await chain.ainvoke(q)
    victim = max((i for i in IDS if cache.holds(i)), key=lambda i: (cache.holds(i), i))
    await store.adelete([victim])
    assert cache.holds(victim) == 0 and not any(text_of(victim) in p for p in stored_prompts(cache.inner))


def test_store_forgotten_by_another_handle(tmp_path):
    store = example_store(tmp_path)
    prompt = few_shot(stock_selector("similarity", store))
    cache = ForgettingCache().watch(prompt)
    run_all(prompt | fake_llm(cache))
    victim = max((i for i in IDS if cache.holds(i)), key=lambda i: (cache.holds(i), i))
    other = ERASEVectorStore.open(tmp_path / "store.sqlite", NGramEmbeddings())
    other.delete([victim])  # not announced to this process's handle: seen at the next lookup
    assert cache.holds(victim) > 0
    assert cache.lookup("any prompt", "llm") is None
    assert cache.holds(victim) == 0 and not any(text_of(victim) in p for p in stored_prompts(cache.inner))
    other.close()
    store.close()


def test_lookup_scans_nothing_and_update_scans_once(monkeypatch):
    sel = selector()
    prompt = few_shot(sel)
    cache = ForgettingCache().watch(prompt)
    scans = []
    real = cache._needles.find
    monkeypatch.setattr(cache._needles, "find", lambda p: scans.append(p) or real(p))
    chain = prompt | fake_llm(cache)
    run_all(chain)
    assert len(scans) == len(QUERIES)  # one scan per generation written
    run_all(chain)
    assert len(scans) == len(QUERIES)  # hits: no scan at all


def test_forget_listener_hook():
    """The core's public hook: called with the ids of every committed forget through the handle
    (forget, forget_subject, forget_where, upsert's replaced ids), not for no-ops; removable."""
    store = example_store()
    index = store.index
    heard = []
    index.add_forget_listener(heard.append)
    index.add_forget_listener(heard.append)  # once only
    store.delete(["ex00"])
    store.delete(["no-such-id"])  # nothing forgotten: nothing announced
    index.forget_where({"user": "bob"})
    store.add_texts(["new"], [{}], ids=["ex02"])  # replacement
    store.add_texts(["newer"], [{}], ids=["brand-new"])  # no replacement
    bob = tuple(i for i, ex in zip(IDS, OWNED) if ex["user"] == "bob")
    assert heard == [("ex00",), bob, ("ex02",)]
    index.remove_forget_listener(heard.append)
    store.delete(["ex03"])
    assert len(heard) == 3
    with pytest.raises(ERASEError, match="callable"):
        index.add_forget_listener("not callable")

    def broken(ids):
        raise RuntimeError("boom")

    index.add_forget_listener(broken)
    index.add_forget_listener(heard.append)
    with pytest.raises(ERASEError, match="committed.*boom"):
        store.delete(["ex04"])
    assert "ex04" not in store.ids and heard[-1] == ("ex04",)  # committed, and the other listener ran


def test_close_stops_watching():
    store = example_store()
    cache = ForgettingCache().watch(store)
    cache.close()
    store.similarity_search("football", k=2)
    assert cache._needles._owners == {}
    store.delete(["ex00"])  # no error, nothing to do


# ---------------------------------------------------------------------- LangChain's standard cache suites
from langchain_tests.integration_tests import AsyncCacheTestSuite, SyncCacheTestSuite  # noqa: E402


class TestForgettingCacheStandardSync(SyncCacheTestSuite):
    @pytest.fixture
    def cache(self):
        store = example_store()
        return ForgettingCache().watch(few_shot(stock_selector("similarity", store))).watch(store)


class TestForgettingCacheStandardAsync(AsyncCacheTestSuite):
    @pytest.fixture
    async def cache(self):
        return ForgettingCache().watch(few_shot(selector()))
