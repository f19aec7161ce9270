"""Persistence: round trip, binding (forget reaches the files), residue-free forgetting."""

from __future__ import annotations

import json
import shutil
import sqlite3
import warnings
from pathlib import Path

import numpy as np
import pytest
from llama_index.core.schema import TextNode

from erase_core import ERASEError, ExampleIndex
from erase_core.storage import keys_path
from erase_llamaindex import PERSIST_SETTINGS_FILENAME, PERSIST_STORE_FILENAME, ERASERetriever
from residue import assert_sealed, plaintext_needles, sealed_rows

from .helpers import HashingEmbedding, example_nodes, results

QUERIES = ["the hotel was wonderful", "a waste of money", ""]
#: What a persist directory holds: the settings, the store database and its key file.
PERSISTED = {PERSIST_SETTINGS_FILENAME, PERSIST_STORE_FILENAME, keys_path(Path(PERSIST_STORE_FILENAME)).name}
#: SQLite's write-ahead log and its index, present while a handle has the store open.
WAL_FILES = {PERSIST_STORE_FILENAME + "-wal", PERSIST_STORE_FILENAME + "-shm"}
#: The store's open image, written by an open of a large store (tests lower the threshold).
IMAGE_FILE = {PERSIST_STORE_FILENAME + ".image"}


def assert_persisted_files(d: Path, open_: bool) -> None:
    """The directory holds the persisted files and nothing else (plus, while the store is open,
    possibly SQLite's WAL files, which closing the last handle checkpoints and removes, and the
    store's open image)."""
    names = {p.name for p in Path(d).iterdir()}
    assert PERSISTED <= names <= (PERSISTED | IMAGE_FILE | (WAL_FILES if open_ else set())), sorted(names)


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
    assert PERSISTED == {"erase_retriever.json", "erase_index.sqlite", "erase_index.sqlite.keys"}
    assert_persisted_files(tmp_path / "p", open_=True)
    settings = json.loads((tmp_path / "p" / PERSIST_SETTINGS_FILENAME).read_text())
    assert settings["similarity_top_k"] == 4 and settings["query_scores"] is False
    assert settings["embed_model"] == {"class_name": "TestHashingEmbedding", "model_name": "hashing-64"}
    assert r.digest() == digest  # persisting does not change the index
    r.close()
    assert_persisted_files(tmp_path / "p", open_=False)
    loaded = ERASERetriever.from_persist_dir(tmp_path / "p", embed_model=HashingEmbedding())
    assert loaded.digest() == digest and loaded.fingerprint() == fp and loaded.verify()
    assert loaded.strategy == strategy and loaded.similarity_top_k == 4 and loaded.query_scores is False
    assert {q: results(loaded.retrieve(q)) for q in QUERIES} == expected
    assert loaded.get_node("node-007").metadata == example_nodes(40)[7].metadata
    assert loaded.persist_dir == (tmp_path / "p").resolve()
    loaded.close()
    assert_persisted_files(tmp_path / "p", open_=False)


def node_needles(node: TextNode, plain) -> list[bytes]:
    """Everything of ``node`` in clear: what the store sealed for it (id, payload JSON, vector;
    checked to be this node), its text, its metadata values and, for a secret node, the
    distinctive words of its text (not common words: those could turn up by chance)."""
    payload = json.loads(plain.payload_json)["__data__"]
    assert plain.id == node.node_id and payload["text"] == node.text and payload["metadata"] == node.metadata
    words = [w for w in node.text.split() if w.startswith(("Quux", "SECRETTEXT"))]
    return plaintext_needles(plain, node.text, *words, *map(str, node.metadata.values()))


def test_persist_binds_the_retriever_so_forget_reaches_the_files(tmp_path, embed):
    one, two = secret_node(1), secret_node(2)
    r = build(embed, extra=[one])
    d = tmp_path / "bound"
    store = d / PERSIST_STORE_FILENAME
    assert r.persist_dir is None
    r.persist(d)
    assert r.persist_dir == d.resolve()
    rows = sealed_rows(store)  # the node is in the store, sealed under its own key
    assert one.node_id in rows and rows[one.node_id][1].vector == r.index.vector(one.node_id).tobytes()
    needles = node_needles(one, rows[one.node_id][1])
    key_one = rows[one.node_id][0]
    assert_sealed(d, store, needles, [key for key, _ in rows.values()])
    r.forget([one.node_id])
    # erased from the files at once, no re-persist: another handle no longer sees it, no row
    # opens as it, and its key is shredded
    with ExampleIndex.open(store) as other:
        assert one.node_id not in other and len(other) == 40
    assert one.node_id not in sealed_rows(store)
    assert_sealed(d, store, needles, [], [key_one])
    r.insert_nodes([two])
    # inserts are written through as well (sealed)
    with ExampleIndex.open(store) as other:
        assert other.get(two.node_id)["__data__"]["text"] == two.text
    rows = sealed_rows(store)
    assert set(rows) == {n.node_id for n in example_nodes(40)} | {two.node_id}
    needles += node_needles(two, rows[two.node_id][1])
    assert_sealed(d, store, needles, [key for key, _ in rows.values()], [key_one])
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
    nodes = example_nodes(40) + secrets
    d, backup = tmp_path / "store", tmp_path / "backup"
    store = d / PERSIST_STORE_FILENAME
    build(embed, strategy, extra=secrets, persist_dir=d).close()
    r = ERASERetriever.from_persist_dir(d, embed_model=embed)
    # make the forgotten node one of the selected ones, so the selection moves too
    victim = r.retrieve("Patient Zelda reported the wonderful concert")[0].node.node_id if strategy == "similarity" else None
    target = secrets[0] if victim is None else next(s for s in secrets if s.node_id == victim)
    # What the store holds for every node, opened with its keys: the needles are exactly the
    # plaintext that was sealed (plus the node's text, words and metadata values as such).
    rows = sealed_rows(store)
    assert set(rows) == {n.node_id for n in nodes}
    for n in nodes:
        assert rows[n.node_id][1].vector == r.index.vector(n.node_id).tobytes()
    needles = [node_needles(n, rows[n.node_id][1]) for n in nodes]
    keys = {i: key for i, (key, _) in rows.items()}
    # (1) no plaintext of any node on disk, kept or to be forgotten; (2) every key in the key file
    assert_sealed(d, store, needles, keys.values())
    backup.mkdir()
    for f in d.iterdir():  # a copy of the database (not of the key file) taken before the forget
        if f.name.startswith(PERSIST_STORE_FILENAME) and f != keys_path(store):
            shutil.copy(f, backup / f.name)
    r.forget([target.node_id])
    kept = [i for i in keys if i != target.node_id]
    # still no plaintext anywhere; the target's key is nowhere, the kept nodes' keys are there
    assert_sealed(d, store, needles, [keys[i] for i in kept], [keys[target.node_id]])
    after = sealed_rows(store)
    assert set(after) == set(kept)
    others = [s for s in secrets if s is not target]
    for s in others:  # the kept secret nodes still open, to themselves
        node_needles(s, after[s.node_id][1])
    assert_persisted_files(d, open_=True)
    # (3) the old copy of the database still holds the target's ciphertext, but with the current
    # key file only the kept rows open: the forget shredded the target's key
    con = sqlite3.connect(f"file:{backup / PERSIST_STORE_FILENAME}?mode=ro", uri=True)
    assert con.execute("select count(*) from examples").fetchone()[0] == len(nodes)
    con.close()
    assert set(sealed_rows(backup / PERSIST_STORE_FILENAME, key_file=keys_path(store))) == set(kept)
    # and nowhere in the retriever's memory either
    assert target.node_id not in r and all(target.node_id != n.node.node_id for n in r.retrieve("Zelda"))
    fresh = build(HashingEmbedding(), strategy, extra=others)
    assert r.digest() == fresh.digest() and r.verify()
    r.close()
    assert_persisted_files(d, open_=False)
    assert_sealed(d, store, needles, [keys[i] for i in kept], [keys[target.node_id]])
    assert ERASERetriever.from_persist_dir(d, embed_model=embed).digest() == fresh.digest()


def test_forget_after_persist_equals_a_fresh_build(tmp_path, embed):
    r = build(embed, persist_dir=tmp_path / "a")
    gone = [n.node.node_id for n in r.retrieve("x")][:2] + ["node-020"]
    r.forget(gone)
    fresh = ERASERetriever.from_defaults(
        nodes=[n for n in example_nodes(40) if n.node_id not in gone], embed_model=HashingEmbedding(),
        similarity_top_k=4, strategy="erase", seed=1, persist_dir=tmp_path / "b",
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
