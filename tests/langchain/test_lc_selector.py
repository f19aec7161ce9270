"""ERASEExampleSelector: construction surface, ids, strategies, forget, fingerprint,
persistence, async, threads."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import threading
import time

import pytest

pytest.importorskip("langchain_core")

from langchain_core.vectorstores import InMemoryVectorStore  # noqa: E402

from erase_core import ERASEError, ExampleIndex, UnknownIdError  # noqa: E402
from erase_core.storage import keys_path  # noqa: E402
from erase_langchain import ERASEExampleSelector  # noqa: E402
from lc_helpers import EXAMPLES, IDS, QUERIES, NGramEmbeddings, with_ids  # noqa: E402
from loop_probe import LoopWitness, Rendezvous  # noqa: E402
from residue import assert_sealed, plaintext_needles, sealed_rows  # noqa: E402

PARAMS = dict(epsilon=0.05, seed=3)


@pytest.fixture
def emb():
    return NGramEmbeddings()


def build(emb, examples=EXAMPLES, ids=IDS, **kw):
    return ERASEExampleSelector.from_examples(examples, emb, k=kw.pop("k", 4), ids=ids, **{"strategy": "erase", **PARAMS, **kw})


# ---------------------------------------------------------------------- construction surface
def test_stock_call_shapes_work(emb):
    # stock: from_examples(examples, embeddings, vectorstore_cls, k=4, input_keys=None, *, example_keys=None, ...)
    a = ERASEExampleSelector.from_examples(EXAMPLES, emb, InMemoryVectorStore, k=3, input_keys=["input"], ids=IDS)
    b = ERASEExampleSelector.from_examples(EXAMPLES, emb, InMemoryVectorStore, 3, ["input"], ids=IDS)
    # issue shape: from_examples(examples, embeddings, k=4, input_keys=None, ...)
    c = ERASEExampleSelector.from_examples(EXAMPLES, emb, 3, ["input"], ids=IDS)
    d = ERASEExampleSelector.from_examples(EXAMPLES, emb, k=3, input_keys=["input"], ids=IDS)
    for s in (a, b, c, d):
        assert s.k == 3 and s.input_keys == ["input"] and s.strategy == "similarity"  # the stock selector's
    assert a.digest() == b.digest() == c.digest() == d.digest()
    assert a.select_examples({"input": "x"}) == d.select_examples({"input": "x"})


def test_vectorstore_arguments(emb):
    with pytest.raises(TypeError, match=r"'collection_name'; accepted: .*persist_path.*strategy"):
        ERASEExampleSelector.from_examples(EXAMPLES, emb, InMemoryVectorStore, k=2, collection_name="x")
    s = ERASEExampleSelector.from_examples(EXAMPLES, emb, InMemoryVectorStore, k=2)
    assert len(s) == len(EXAMPLES)
    empty = ERASEExampleSelector(embeddings=emb, strategy="erase")
    assert len(empty) == 0 and bool(empty)  # `if prompt.example_selector:` must see a selector
    with pytest.raises(ERASEError, match="vectorstore_kwargs"):
        ERASEExampleSelector.from_examples(EXAMPLES, emb, InMemoryVectorStore, vectorstore_kwargs={"filter": len})
    with pytest.raises(TypeError):
        ERASEExampleSelector.from_examples(EXAMPLES, emb, "not a class")
    with pytest.raises(TypeError, match="k twice"):
        ERASEExampleSelector.from_examples(EXAMPLES, emb, 3, k=2)


def test_text_construction_matches_stock(emb):
    s = ERASEExampleSelector(embeddings=emb, strategy="erase")
    ex = {"b": "two", "a": "one", "c": "three"}
    assert s._example_to_text(ex) == "one two three"  # values ordered by key name
    s2 = ERASEExampleSelector(embeddings=emb, input_keys=["c", "a"], strategy="erase")
    assert s2._example_to_text(ex) == "one three"
    s3 = ERASEExampleSelector(embeddings=emb, id_key="id", strategy="erase")
    assert s3._example_to_text({**ex, "id": "zzz"}) == "one two three"  # the id is not embedded
    with pytest.raises(KeyError):
        s2._example_to_text({"a": "x"})


def test_example_keys_projection(emb):
    s = build(emb, with_ids(), ids=None, id_key="id", example_keys=["output", "input"])
    out = s.select_examples({"input": "anything"})
    assert all(set(e) == {"input", "output"} for e in out)
    s.select_examples({"input": "x"})[0]["input"] = "mutated"
    assert all(s.get(i)["input"] != "mutated" for i in s.ids)  # returned dicts are copies


def test_ids_are_knowable(emb):
    s = build(emb)
    assert s.ids == sorted(IDS)
    t = build(emb, with_ids(), ids=None, id_key="id")
    assert t.ids == sorted(IDS) and t.get("ex03")["input"] == EXAMPLES[3]["input"]
    with pytest.raises(ERASEError, match="not both"):
        build(emb, with_ids(), ids=IDS, id_key="id")
    with pytest.raises(ERASEError, match="has no id field"):
        build(emb, EXAMPLES, ids=None, id_key="id")
    u = ERASEExampleSelector.from_examples(EXAMPLES, emb, strategy="erase")  # generated ids, still listed
    assert len(u.ids) == len(EXAMPLES)


def test_add_example_returns_id(emb):
    s = ERASEExampleSelector(embeddings=emb, k=2, id_key="id", **PARAMS, strategy="erase")
    assert s.select_examples({"input": "x"}) == []  # empty pool: nothing, like the stock selector
    assert s.add_example({"input": "a cat", "output": "animal", "id": "cat"}) == "cat"
    new = s.add_example({"input": "a dog", "output": "animal"}, id="dog")
    assert new == "dog" and s.ids == ["cat", "dog"]
    t = ERASEExampleSelector(embeddings=emb, k=2, strategy="erase")
    gen = t.add_example({"input": "a cow"})
    assert t.ids == [gen] and isinstance(gen, str)


def test_duplicate_id_is_atomic(emb):
    s = build(emb)
    before = s.digest()
    with pytest.raises(ERASEError):
        s.add_examples([{"input": "new one", "output": "x"}, {"input": "dup", "output": "y"}], ids=["new", "ex01"])
    assert s.digest() == before and "new" not in s.ids


# ---------------------------------------------------------------------- strategies
def test_erase_is_fixed_and_does_not_embed_queries(emb):
    s = build(emb)
    emb.calls["query"] = 0
    sets = [s.select_examples({"input": q}) for q in QUERIES]
    assert all(x == sets[0] for x in sets) and len(sets[0]) == 4
    assert emb.calls["query"] == 0
    assert [e.id for e in s.select()] == [e.id for e in s.index.select()]


def test_similarity_is_exact_top_k(emb):
    s = build(emb, strategy="similarity", k=3)
    index = s.index
    for q in QUERIES:
        got = s.select({"input": q})
        expect = index.select(emb.embed_query(q), k=3)
        assert [g.id for g in got] == [e.id for e in expect]
    assert s.select_examples({"input": "goal scored in the final"})[0]["output"] == "sports"
    assert s.select_examples({"input": "bake the bread dough"})[0]["output"] == "cooking"


def test_similarity_k_larger_than_pool_returns_what_exists(emb):
    s = ERASEExampleSelector.from_examples(EXAMPLES[:2], emb, k=5, strategy="similarity", ids=IDS[:2])
    assert len(s.select_examples({"input": "x"})) == 2
    s.forget(IDS[:2])
    assert s.select_examples({"input": "x"}) == []


def test_erase_small_pool_returns_whole_pool_then_clusters(emb):
    s = ERASEExampleSelector.from_examples(EXAMPLES[:2], emb, k=4, ids=IDS[:2], **PARAMS, strategy="erase")
    out = s.select()
    assert [e.id for e in out] == IDS[:2]
    fp2 = s.fingerprint
    s.add_examples(EXAMPLES[2:6], ids=IDS[2:6])
    assert len(s.select()) == 4 and s.fingerprint != fp2
    s.k = 2  # fewer per prompt: the first clusters
    assert [e.id for e in s.select()] == [e.id for e in s.index.select(k=2)]
    s.k = 5
    with pytest.raises(ERASEError, match="at most"):
        s.select()


def test_bad_parameters(emb):
    # errors raised while validating the fields surface as pydantic ValidationError (a ValueError)
    with pytest.raises(ValueError, match="positive integer"):
        ERASEExampleSelector(embeddings=emb, k=0, strategy="erase")
    with pytest.raises(ValueError):
        ERASEExampleSelector(embeddings=emb, strategy="knn")
    with pytest.raises(ValueError):
        ERASEExampleSelector(embeddings=emb, unknown_field=1)
    index = ExampleIndex(k=3, strategy="similarity")
    with pytest.raises(ValueError, match="strategy"):
        ERASEExampleSelector(embeddings=emb, index=index, strategy="erase")
    wrapped = ERASEExampleSelector(embeddings=emb, index=index)
    assert wrapped.k == 3 and wrapped.strategy == "similarity"
    with pytest.raises(ERASEError, match="no fixed set"):
        wrapped.fingerprint
    with pytest.raises(ValueError, match="k=5"):
        ERASEExampleSelector(embeddings=emb, index=ExampleIndex(k=3), k=5)


# ---------------------------------------------------------------------- forget / fingerprint
@pytest.mark.parametrize("strategy", ["erase", "similarity"])
def test_forget_equals_build_without(emb, strategy):
    s = build(emb, strategy=strategy)
    chosen = [e.id for e in s.select({"input": QUERIES[0]})]
    gone = [chosen[0]] + [i for i in ("ex07", "ex13", "ex16") if i != chosen[0]][:2]
    receipt = s.forget(gone)
    assert set(receipt.ids) == set(gone) and receipt.n_remaining == len(EXAMPLES) - 3
    keep = [n for n, i in enumerate(IDS) if i not in gone]
    fresh = build(NGramEmbeddings(), [EXAMPLES[n] for n in keep], [IDS[n] for n in keep], strategy=strategy)
    assert s.digest() == fresh.digest() and s.verify()
    for q in QUERIES:
        assert s.select_examples({"input": q}) == fresh.select_examples({"input": q})
        assert not {e.id for e in s.select({"input": q})} & set(gone)
    with pytest.raises(UnknownIdError):
        s.forget([gone[1]])
    assert s.forget(gone[1], missing="ignore").ids == ()


def test_fingerprint_changes_exactly_when_the_set_changes(emb):
    s = build(emb, k=3)
    fp = s.fingerprint
    chosen = {e.id for e in s.select()}
    others = [i for i in IDS if i not in chosen]
    for i in others[:8]:  # forgetting non-selected examples: set may or may not move
        before_ids = [e.id for e in s.select()]
        receipt = s.forget(i)
        after_ids = [e.id for e in s.select()]
        assert (s.fingerprint != fp) == (after_ids != before_ids) == receipt.selected_changed
        fp = s.fingerprint
    victim = s.select()[0].id
    s.forget(victim)
    assert s.fingerprint != fp
    # a fresh selector over the same examples has the same fingerprint
    rest = sorted(s.ids)
    fresh = build(NGramEmbeddings(), [EXAMPLES[IDS.index(i)] for i in rest], rest, k=3)
    assert fresh.fingerprint == s.fingerprint


# ---------------------------------------------------------------------- persistence
def test_persist_and_reopen_without_reembedding(emb, tmp_path):
    store_dir, backup = tmp_path / "store", tmp_path / "backup"
    store_dir.mkdir(), backup.mkdir()
    path = store_dir / "examples.sqlite"
    # ids of 32+ bytes: the residue scan looks for every 32-byte window of them (a short needle
    # is searched whole, and could turn up in the ciphertext by chance)
    ids = [f"{i}/customer-record@private.example.org" for i in IDS]
    gone, new = ids[5], "new/customer-record@private.example.org"
    s = build(emb, ids=ids, persist_path=path, input_keys=["input"])
    assert s.persist_path == str(path)
    # The store holds exactly the examples, sealed: opened with its keys, each row is the
    # example as the selector holds it (so the needles below are what was written).
    rows = sealed_rows(path)
    assert set(rows) == set(ids)
    for example, i in zip(EXAMPLES, ids):
        plain = rows[i][1]
        assert json.loads(plain.payload_json) == example and plain.vector == s.index.vector(i).tobytes()
    needles = {i: plaintext_needles(rows[i][1], example["input"]) for example, i in zip(EXAMPLES, ids)}
    keys = {i: rows[i][0] for i in ids}
    assert_sealed(store_dir, path, needles.values(), keys.values(), [])
    for f in store_dir.iterdir():  # a copy of the database (not the key file) taken before the forget
        if not f.name.endswith(".keys"):
            shutil.copy(f, backup / f.name)
    s.forget([gone])
    kept_keys = [keys[i] for i in ids if i != gone]
    assert_sealed(store_dir, path, needles.values(), kept_keys, [keys[gone]])
    assert set(sealed_rows(path)) == set(ids) - {gone}
    # The old copy still holds the forgotten row's ciphertext, but the current key file opens
    # only the kept rows: the forget shredded its key.
    con = sqlite3.connect(f"file:{backup / path.name}?mode=ro", uri=True)
    assert con.execute("select count(*) from examples").fetchone()[0] == len(ids)
    con.close()
    assert set(sealed_rows(backup / path.name, key_file=keys_path(path))) == set(ids) - {gone}
    digest, fp, selected = s.digest(), s.fingerprint, s.select_examples({"input": "x"})
    s.close()
    with pytest.raises(ERASEError, match="already holds"):
        build(emb, persist_path=path)
    counting = NGramEmbeddings()
    r = ERASEExampleSelector.open(path, counting, input_keys=["input"])
    assert counting.calls == {"documents": 0, "texts": 0, "query": 0}
    assert r.digest() == digest and r.fingerprint == fp and r.k == 4 and r.strategy == "erase"
    assert gone not in r.ids and len(r) == len(EXAMPLES) - 1
    assert r.verify() and r.select_examples({"input": "x"}) == selected
    hail = {"input": "A hailstorm hit the town", "output": "weather"}
    r.add_example(hail, id=new)
    r.close()
    again = ERASEExampleSelector(embeddings=counting, persist_path=path, strategy="erase")  # the constructor reopens too
    assert new in again.ids and counting.calls["documents"] == 1
    digest = again.digest()
    again.close()
    # Through the public API, a fresh handle on the file sees the forget and the add.
    with ExampleIndex.open(path) as index:
        assert gone not in index and set(index.ids) == (set(ids) - {gone}) | {new}
        assert index.get(new) == hail and index.digest() == digest and index.verify()
    rows = sealed_rows(path)
    assert set(rows) == (set(ids) - {gone}) | {new} and json.loads(rows[new][1].payload_json) == hail
    needles[new] = plaintext_needles(rows[new][1], hail["input"])
    live = [rows[i][0] for i in rows]
    assert_sealed(store_dir, path, needles.values(), live, [keys[gone]])


def test_failed_from_examples_leaves_no_store(tmp_path):
    path = tmp_path / "bad.sqlite"
    with pytest.raises(ERASEError):
        ERASEExampleSelector.from_examples(EXAMPLES[:3], NGramEmbeddings(), ids=["a", "a", "b"], persist_path=path, strategy="erase")
    assert not path.exists()


# ---------------------------------------------------------------------- async and threads
async def test_async_twins(emb):
    s = await ERASEExampleSelector.afrom_examples(EXAMPLES, emb, k=3, ids=IDS, strategy="similarity", **PARAMS)
    sync = build(NGramEmbeddings(), k=3, strategy="similarity")
    assert s.digest() == sync.digest()
    for q in QUERIES:
        assert await s.aselect_examples({"input": q}) == sync.select_examples({"input": q})
    new_id = await s.aadd_example({"input": "Sleet and wind on the coast", "output": "weather"}, id="new")
    assert new_id == "new" and "new" in s.ids
    receipt = await s.aforget(["new", "ex00"])
    assert set(receipt.ids) == {"new", "ex00"}


class ProbedEmbeddings(NGramEmbeddings):
    """NGramEmbeddings whose every (blocking) call runs ``probe()`` first."""

    def __init__(self, probe):
        super().__init__()
        self.probe = probe

    def embed_documents(self, texts):
        self.probe()
        return super().embed_documents(texts)

    def embed_query(self, text):
        self.probe()
        return super().embed_query(text)


async def test_async_does_not_block_the_event_loop():
    # every embedding call blocks until the event loop has run meanwhile (it never would if the
    # call blocked the loop); the three selects must also be in flight at the same time
    witness, meet = LoopWitness(), Rendezvous(3)
    witness.attach()
    slow = ProbedEmbeddings(witness)
    s = await ERASEExampleSelector.afrom_examples(EXAMPLES, slow, k=3, strategy="similarity", ids=IDS)
    slow.probe = lambda: (witness(), meet())
    picked = await asyncio.gather(*(s.aselect_examples({"input": q}) for q in QUERIES[:3]))
    slow.probe = witness
    await s.aadd_example({"input": "x y", "output": "z"})
    assert witness.calls == 5  # one embedding of the pool, three queries, one added example
    sync = build(NGramEmbeddings(), k=3, strategy="similarity")
    assert picked == [sync.select_examples({"input": q}) for q in QUERIES[:3]]


def test_threads_add_forget_select(emb):
    s = build(emb, k=3, strategy="similarity")
    errors: list[BaseException] = []

    def worker(n: int):
        try:
            for j in range(5):
                i = f"t{n}-{j}"
                s.add_example({"input": f"thread {n} item {j} rain goal", "output": "x"}, id=i)
                assert len(s.select_examples({"input": QUERIES[j % len(QUERIES)]})) == 3
                s.forget([i])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert s.digest() == build(NGramEmbeddings(), k=3, strategy="similarity").digest() and s.verify()


def test_select_never_races_with_shrinking_pool(emb):
    """similarity k is clamped to the pool under the engine lock: concurrent forgets never
    make select raise 'k larger than the pool'."""
    s = ERASEExampleSelector.from_examples(EXAMPLES[:6], emb, k=4, strategy="similarity", ids=IDS[:6])
    errors: list[BaseException] = []
    done = threading.Event()

    def reader():
        try:
            while not done.is_set():
                assert len(s.select_examples({"input": "rain"})) <= 4
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    t = threading.Thread(target=reader)
    t.start()
    for i in IDS[:6]:
        s.forget([i])
        time.sleep(0.005)
    done.set()
    t.join()
    assert not errors and s.select_examples({"input": "rain"}) == []
