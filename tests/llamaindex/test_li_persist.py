"""Persistence: round trip, binding (forget reaches the files), residue-free forgetting."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from llama_index.core.schema import TextNode

from erase_core import ERASEError, ExampleIndex
from erase_llamaindex import PERSIST_SETTINGS_FILENAME, PERSIST_STORE_FILENAME, ERASERetriever

from .helpers import HashingEmbedding, all_file_bytes, example_nodes, results

QUERIES = ["the hotel was wonderful", "a waste of money", ""]


def secret_node(i: int) -> TextNode:
    return TextNode(
        id_=f"secret-node-id-{i}-9f3c",
        text=f"Patient Zelda Quux{i} reported SECRETTEXT{i:04d} after the wonderful concert",
        metadata={"email": f"zelda{i}.private@example.org", "label": "positive"},
    )


def build(embed, strategy="erase", extra=(), **kw):
    return ERASERetriever.from_defaults(
        nodes=example_nodes(40) + list(extra), embed_model=embed, similarity_top_k=4, strategy=strategy, seed=1, **kw
    )


@pytest.mark.parametrize("strategy", ["erase", "similarity"])
def test_persist_round_trip(tmp_path, embed, strategy):
    r = build(embed, strategy, query_scores=False)
    r.forget(["node-003"])
    digest, fp = r.digest(), r.fingerprint()
    expected = {q: results(r.retrieve(q)) for q in QUERIES}
    r.persist(tmp_path / "p")
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == sorted([PERSIST_SETTINGS_FILENAME, PERSIST_STORE_FILENAME])
    settings = json.loads((tmp_path / "p" / PERSIST_SETTINGS_FILENAME).read_text())
    assert settings["similarity_top_k"] == 4 and settings["query_scores"] is False
    assert settings["embed_model"] == {"class_name": "TestHashingEmbedding", "model_name": "hashing-64"}
    assert r.digest() == digest  # persisting does not change the index
    r.close()
    loaded = ERASERetriever.from_persist_dir(tmp_path / "p", embed_model=HashingEmbedding())
    assert loaded.digest() == digest and loaded.fingerprint() == fp and loaded.verify()
    assert loaded.strategy == strategy and loaded.similarity_top_k == 4 and loaded.query_scores is False
    assert {q: results(loaded.retrieve(q)) for q in QUERIES} == expected
    assert loaded.get_node("node-007").metadata == example_nodes(40)[7].metadata
    assert loaded.persist_dir == (tmp_path / "p").resolve()
    loaded.close()


def test_persist_binds_the_retriever_so_forget_reaches_the_files(tmp_path, embed):
    r = build(embed, extra=[secret_node(1)])
    d = tmp_path / "bound"
    assert r.persist_dir is None
    r.persist(d)
    assert r.persist_dir == d.resolve()
    assert b"SECRETTEXT0001" in all_file_bytes(d)
    r.forget(["secret-node-id-1-9f3c"])
    assert b"SECRETTEXT0001" not in all_file_bytes(d)  # erased from disk at once, no re-persist
    r.insert_nodes([secret_node(2)])
    assert b"SECRETTEXT0002" in all_file_bytes(d)  # inserts are written through as well
    digest = r.digest()
    r.persist(d)  # same directory: only refreshes the settings
    with pytest.raises(ERASEError, match="bound to"):
        r.persist(tmp_path / "elsewhere")
    assert not (tmp_path / "elsewhere").exists()
    r.close()
    reopened = ERASERetriever.from_persist_dir(d, embed_model=embed)
    assert reopened.digest() == digest and "secret-node-id-1-9f3c" not in reopened and "secret-node-id-2-9f3c" in reopened
    with pytest.raises(ERASEError, match="bound to"):
        reopened.persist(tmp_path / "elsewhere")
    reopened.close()


@pytest.mark.parametrize("strategy", ["erase", "similarity"])
def test_forget_leaves_no_trace_in_any_persisted_file(tmp_path, embed, strategy):
    secrets = [secret_node(i) for i in range(3)]
    d = tmp_path / "store"
    build(embed, strategy, extra=secrets, persist_dir=d).close()
    r = ERASERetriever.from_persist_dir(d, embed_model=embed)
    # make the forgotten node one of the selected ones, so the selection moves too
    victim = r.retrieve("Patient Zelda reported the wonderful concert")[0].node.node_id if strategy == "similarity" else None
    target = secrets[0] if victim is None else next(s for s in secrets if s.node_id == victim)
    vector_bytes = r.index.vector(target.node_id).tobytes()
    needles = [
        target.node_id.encode(), target.text.encode(), target.text.split()[4].encode(),
        target.metadata["email"].encode(), vector_bytes, vector_bytes[:16], vector_bytes[-16:],
    ]
    before = all_file_bytes(d)
    assert all(n in before for n in needles), "the scan must see the node before it is forgotten"
    r.forget([target.node_id])
    after = all_file_bytes(d)
    for needle in needles:
        assert needle not in after
    others = [s for s in secrets if s is not target]
    assert all(s.text.encode() in after and s.metadata["email"].encode() in after for s in others)
    assert sorted(p.name for p in d.iterdir()) == sorted([PERSIST_SETTINGS_FILENAME, PERSIST_STORE_FILENAME])
    # and nowhere in the retriever's memory either
    assert target.node_id not in r and all(target.node_id != n.node.node_id for n in r.retrieve("Zelda"))
    fresh = build(HashingEmbedding(), strategy, extra=others)
    assert r.digest() == fresh.digest() and r.verify()
    r.close()
    assert ERASERetriever.from_persist_dir(d, embed_model=embed).digest() == fresh.digest()


def test_forget_after_persist_equals_a_fresh_build(tmp_path, embed):
    r = build(embed, persist_dir=tmp_path / "a")
    gone = [n.node.node_id for n in r.retrieve("x")][:2] + ["node-020"]
    r.forget(gone)
    fresh = ERASERetriever.from_defaults(
        nodes=[n for n in example_nodes(40) if n.node_id not in gone], embed_model=HashingEmbedding(),
        similarity_top_k=4, seed=1, persist_dir=tmp_path / "b",
    )
    assert r.digest() == fresh.digest() and r.fingerprint() == fresh.fingerprint()
    assert [results(r.retrieve(q)) for q in QUERIES] == [results(fresh.retrieve(q)) for q in QUERIES]
    r.close(), fresh.close()
    a = ERASERetriever.from_persist_dir(tmp_path / "a", embed_model=embed)
    b = ERASERetriever.from_persist_dir(tmp_path / "b", embed_model=embed)
    assert a.digest() == b.digest()
    a.close(), b.close()


def test_empty_retriever_persists_and_fills_up(tmp_path, embed):
    r = ERASERetriever.from_defaults(embed_model=embed, similarity_top_k=3, persist_dir=tmp_path / "e")
    assert r.retrieve("q") == []
    r.close()
    r = ERASERetriever.from_persist_dir(tmp_path / "e", embed_model=embed)
    assert r.retrieve("q") == [] and r.similarity_top_k == 3
    r.insert_nodes(example_nodes(10))
    digest = r.digest()
    r.close()
    r = ERASERetriever.from_persist_dir(tmp_path / "e", embed_model=embed)
    assert r.digest() == digest and len(r.retrieve("q")) == 3
    r.close()


def test_persist_refuses_to_overwrite_or_duplicate(tmp_path, embed):
    build(embed, persist_dir=tmp_path / "x").close()
    other = build(embed)
    with pytest.raises(ERASEError, match="already holds"):
        other.persist(tmp_path / "x")
    assert other.persist_dir is None
    # an index that already writes to its own file cannot be copied elsewhere
    idx = ExampleIndex(k=2, path=tmp_path / "own.sqlite")
    idx.add(np.eye(3, 5), [{"a": 1}, {"a": 2}, {"a": 3}], ids=["a", "b", "c"])
    with pytest.raises(ERASEError, match="own store"):
        ERASERetriever(idx, embed).persist(tmp_path / "y")
    idx.close()


def test_from_persist_dir_errors_and_embed_model_warning(tmp_path, embed):
    with pytest.raises(ERASEError, match="not an ERASE retriever"):
        ERASERetriever.from_persist_dir(tmp_path / "missing", embed_model=embed)
    build(embed, persist_dir=tmp_path / "p").close()
    with pytest.warns(UserWarning, match="built with embedding model"):
        ERASERetriever.from_persist_dir(tmp_path / "p", embed_model=HashingEmbedding(dim=32)).close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ERASERetriever.from_persist_dir(tmp_path / "p", embed_model=HashingEmbedding()).close()
    (tmp_path / "p" / PERSIST_SETTINGS_FILENAME).write_text('{"format": "something else"}')
    with pytest.raises(ERASEError, match="settings"):
        ERASERetriever.from_persist_dir(tmp_path / "p", embed_model=embed)


def test_settings_file_holds_no_node_data_and_no_pickle(tmp_path, embed):
    r = build(embed, extra=[secret_node(5)], persist_dir=tmp_path / "s")
    raw = (tmp_path / "s" / PERSIST_SETTINGS_FILENAME).read_bytes()
    assert b"SECRETTEXT" not in raw and b"secret-node-id" not in raw
    json.loads(raw)
    assert not any(p.suffix in (".pkl", ".pickle") for p in (tmp_path / "s").iterdir())
    r.close()
