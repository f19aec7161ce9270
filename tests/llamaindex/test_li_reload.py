"""Reloading an ERASE persist directory the LlamaIndex way, and ``ref_doc_info``.

A plain ``StorageContext.from_defaults(persist_dir=d)`` (no ``vector_store=``) must never come back
as an empty ``SimpleVectorStore`` (retrieval answering ``[]``): it fails at load, saying how to
reload, and changes nothing on disk; the reload it names returns the same nodes.
``VectorStoreIndex.ref_doc_info`` raises for stores that keep the text (LlamaIndex's rule, with
any docstore); ``ERASEVectorStore.ref_doc_info()`` gives what it gives over ``SimpleVectorStore``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from llama_index.core import Document, StorageContext, VectorStoreIndex, load_index_from_storage
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.vector_stores import SimpleVectorStore

from erase_llamaindex import ERASEDocumentStore, ERASEVectorStore

from .helpers import HashingEmbedding

EMBED = HashingEmbedding()
SPLITTER = SentenceSplitter(chunk_size=96, chunk_overlap=0, id_func=lambda i, doc: f"{doc.doc_id}-chunk-{i}")


def documents(n=3):
    return [
        Document(text=" ".join(f"Document {d} sentence {j} is about topic {(d + j) % 5}." for j in range(30)),
                 id_=f"doc-{d}", metadata={"tenant": ["acme", "globex"][d % 2]})
        for d in range(n)
    ]


def snapshot(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def persisted(d: Path, *, with_docstore: bool = False) -> list[tuple[str, str]]:
    """Persist an index over an ERASEVectorStore to ``d``; close it; return its nodes. The store is
    in memory (persist copies it into ``d``), or with the docstore on a file beside ``d`` (as
    docs/llamaindex.md shows it: the docstore's records of an in-memory store stay in memory)."""
    store = ERASEVectorStore.from_defaults(d.parent / "pages.sqlite" if with_docstore else None, seed=0)
    extra = {"docstore": ERASEDocumentStore(store)} if with_docstore else {}
    ctx = StorageContext.from_defaults(vector_store=store, **extra)
    VectorStoreIndex.from_documents(documents(), storage_context=ctx, embed_model=EMBED, transformations=[SPLITTER])
    ctx.persist(persist_dir=str(d))
    nodes = [(n.node_id, n.get_content()) for n in store.get_nodes()]
    assert len(nodes) > 3
    if with_docstore:
        extra["docstore"].close()
    store.close()
    return nodes


RELOAD = r"Reload with StorageContext\.from_defaults\(persist_dir=d, vector_store=ERASEVectorStore\.from_persist_dir\(d\)\)"


def test_plain_reload_fails_at_load_saying_how_and_changes_nothing(tmp_path):
    d = tmp_path / "storage"
    nodes = persisted(d)
    before = snapshot(d)
    with pytest.raises(ValueError, match="ERASE vector store, not SimpleVectorStore data: .*" + RELOAD):
        StorageContext.from_defaults(persist_dir=str(d))
    with pytest.raises(ValueError, match=RELOAD):
        load_index_from_storage(StorageContext.from_defaults(persist_dir=str(d)), embed_model=EMBED)
    assert snapshot(d) == before  # nothing written, nothing removed
    # the reload the message names returns the same nodes, and retrieval finds them
    store = ERASEVectorStore.from_persist_dir(str(d))
    index = load_index_from_storage(StorageContext.from_defaults(persist_dir=str(d), vector_store=store),
                                    embed_model=EMBED)
    assert [(n.node_id, n.get_content()) for n in store.get_nodes()] == nodes
    found = index.as_retriever(similarity_top_k=len(nodes)).retrieve("topic 1")
    assert sorted(h.node.node_id for h in found) == sorted(i for i, _ in nodes)
    store.close()


def test_a_namespaced_manifest_names_its_namespace(tmp_path):
    store = ERASEVectorStore.from_defaults(seed=0)
    VectorStoreIndex.from_documents(documents(2), storage_context=StorageContext.from_defaults(vector_store=store),
                                    embed_model=EMBED, transformations=[SPLITTER])
    store.persist(str(tmp_path / "tenant__vector_store.json"))
    before = snapshot(tmp_path)
    expected = ("vector_stores={'tenant': ERASEVectorStore.from_persist_dir(d, namespace='tenant')}")
    with pytest.raises(ValueError) as caught:
        SimpleVectorStore.from_namespaced_persist_dir(str(tmp_path))  # what StorageContext.from_defaults calls
    # LlamaIndex catches the first failure and retries the default namespace (absent here), so
    # ours is the one the traceback shows first ("During handling of the above exception ...")
    chain, e = [], caught.value
    while e is not None:
        chain.append(str(e))
        e = e.__context__
    assert any(expected in m for m in chain), chain
    assert snapshot(tmp_path) == before
    reopened = ERASEVectorStore.from_persist_dir(str(tmp_path), namespace="tenant")
    assert reopened.index.digest() == store.index.digest()
    reopened.close(), store.close()


def test_with_an_erase_docstore_the_plain_reload_fails_too_and_the_full_reload_works(tmp_path):
    d = tmp_path / "storage"
    nodes = persisted(d, with_docstore=True)
    before = snapshot(tmp_path)
    assert "storage/docstore.json" not in before  # the docstore lives in the store file
    with pytest.raises(FileNotFoundError, match="docstore.json"):  # LlamaIndex reads the docstore first
        StorageContext.from_defaults(persist_dir=str(d))
    assert snapshot(tmp_path) == before
    store = ERASEVectorStore.from_persist_dir(str(d))
    docstore = ERASEDocumentStore(store)
    index = load_index_from_storage(
        StorageContext.from_defaults(persist_dir=str(d), vector_store=store, docstore=docstore), embed_model=EMBED)
    assert [(n.node_id, n.get_content()) for n in store.get_nodes()] == nodes
    assert sorted(docstore.get_all_document_hashes().values()) == ["doc-0", "doc-1", "doc-2"]
    index.delete_ref_doc("doc-1", delete_from_docstore=True)
    assert sorted(docstore.get_all_document_hashes().values()) == ["doc-0", "doc-2"]
    assert sorted(store.ref_doc_info()) == ["doc-0", "doc-2"]
    docstore.close(), store.close()


def test_ref_doc_info(tmp_path):
    """index.ref_doc_info raises for a store that keeps the text, with the stock docstore and with
    ours; store.ref_doc_info() equals what the same index over SimpleVectorStore reports."""
    simple = VectorStoreIndex.from_documents(documents(), embed_model=EMBED, transformations=[SPLITTER])
    for docstore in (False, True):
        store = ERASEVectorStore.from_defaults(seed=0) if not docstore else ERASEVectorStore.from_defaults(
            tmp_path / "s.sqlite", seed=0)
        extra = {"docstore": ERASEDocumentStore(store)} if docstore else {}
        index = VectorStoreIndex.from_documents(documents(), storage_context=StorageContext.from_defaults(
            vector_store=store, **extra), embed_model=EMBED, transformations=[SPLITTER])
        with pytest.raises(NotImplementedError):
            index.ref_doc_info
        for idx in (simple, index):
            idx.delete_ref_doc("doc-2", delete_from_docstore=True)
        expected = {k: (sorted(v.node_ids), v.metadata) for k, v in simple.ref_doc_info.items()}
        assert sorted(expected) == ["doc-0", "doc-1"]
        assert {k: (v.node_ids, v.metadata) for k, v in store.ref_doc_info().items()} == expected
        simple = VectorStoreIndex.from_documents(documents(), embed_model=EMBED, transformations=[SPLITTER])
        store.close()
