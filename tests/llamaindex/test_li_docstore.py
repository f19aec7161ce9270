"""ERASEDocumentStore / ERASEKVStore: LlamaIndex's IngestionPipeline (UPSERTS_AND_DELETE) and
VectorStoreIndex over ERASEVectorStore keep no hash, id or text of a dropped or forgotten
document, on a store file and in memory; a stock docstore drifts (it keeps the hash of a
forgotten document, so the pipeline skips it, and keeps its text on disk)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.ingestion import DocstoreStrategy, IngestionPipeline
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.storage.docstore import SimpleDocumentStore

from erase_core import ERASEError
from erase_llamaindex import ERASEDocumentStore, ERASEKVStore, ERASEVectorStore
from erase_llamaindex.docstore import UNRECORDED_HASH

from .helpers import HashingEmbedding

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from residue import all_file_bytes, surviving  # noqa: E402

TEXTS = {
    f"doc-{d}": " ".join(f"Sentence {s} of document {d} says the warehouse in district {d} shipped {d * 11 + s} crates."
                         for s in range(6))
    for d in range(4)
}


def documents(texts: dict[str, str]) -> list[Document]:
    return [Document(text=t, id_=doc_id, metadata={"origin": doc_id}) for doc_id, t in texts.items()]


def splitter() -> SentenceSplitter:
    # node ids derived from the document, so a fresh build gives the same ids
    return SentenceSplitter(chunk_size=64, chunk_overlap=0, id_func=lambda i, doc: f"{doc.doc_id}#{i}")


def new_store(directory: Path | None) -> ERASEVectorStore:
    return ERASEVectorStore.from_defaults(None if directory is None else directory / "pool.sqlite", k=2, seed=9)


def pipeline(store, docstore) -> IngestionPipeline:
    return IngestionPipeline(transformations=[splitter(), HashingEmbedding()], vector_store=store, docstore=docstore,
                             docstore_strategy=DocstoreStrategy.UPSERTS_AND_DELETE)


def fresh_digest(tmp_path: Path, texts: dict[str, str], on_disk: bool) -> str:
    where = tmp_path / "fresh"
    where.mkdir()
    store = new_store(where if on_disk else None)
    docstore = ERASEDocumentStore(store)
    pipeline(store, docstore).run(documents=documents(texts))
    digest = store.index.digest()
    docstore.close()
    store.index.close()
    return digest


def residue(directory: Path, needles: list[str]) -> list:
    return surviving(all_file_bytes(directory), [n.encode() for n in needles])


def sentences(text: str) -> list[str]:
    return [s + "." for s in text.split(". ") if s]


def assert_docstore_forgot(docstore: ERASEDocumentStore, doc_id: str, old_hash: str, old_text: str) -> None:
    """Neither the old hash nor the old text of ``doc_id`` is known (a new version may be)."""
    assert docstore.get_document_hash(doc_id) != old_hash
    assert old_hash not in docstore.get_all_document_hashes()
    assert all(doc.get_content() != old_text for doc in docstore.docs.values())


@pytest.mark.parametrize("on_disk", [True, False], ids=["store", "memory"])
def test_pipeline_upserts_and_deletes_exactly(tmp_path, on_disk):
    directory = tmp_path / "run"
    directory.mkdir()
    store = new_store(directory if on_disk else None)
    docstore = ERASEDocumentStore(store)
    pipe = pipeline(store, docstore)
    pipe.run(documents=documents(TEXTS))
    assert set(docstore.get_all_document_hashes().values()) == set(TEXTS)
    old = {d: docstore.get_document_hash(d) for d in TEXTS}
    # second run: doc-2 dropped, doc-1 changed
    texts = {d: t for d, t in TEXTS.items() if d != "doc-2"}
    texts["doc-1"] = TEXTS["doc-1"].replace("warehouse", "depot")
    pipe.run(documents=documents(texts))
    assert store.index.digest() == fresh_digest(tmp_path, texts, on_disk)  # (a)
    assert not store.index.ids_of_subject("doc-2") and sorted(docstore.get_all_document_hashes().values()) == sorted(texts)
    for doc_id in ("doc-1", "doc-2"):  # (b)
        assert_docstore_forgot(docstore, doc_id, old[doc_id], TEXTS[doc_id])
    assert not docstore.document_exists("doc-2") and docstore.get_document_hash("doc-2") is None
    assert docstore.get_document_hash("doc-1") == documents({"doc-1": texts["doc-1"]})[0].hash
    if on_disk:  # (c) nothing of the dropped document or of the replaced version
        gone = [old["doc-2"], old["doc-1"], TEXTS["doc-2"], *sentences(TEXTS["doc-2"]), *sentences(TEXTS["doc-1"])]
        assert residue(directory, gone) == []
        assert residue(directory, ["doc-2#0", "doc-1"]) == []  # ids are sealed (kept ones too)
    docstore.close()
    store.index.close()


@pytest.mark.parametrize("on_disk", [True, False], ids=["store", "memory"])
def test_a_forget_outside_the_pipeline_removes_the_hash_and_the_next_run_re_adds(tmp_path, on_disk):
    store = new_store(tmp_path if on_disk else None)
    docstore = ERASEDocumentStore(store)
    pipe = pipeline(store, docstore)
    pipe.run(documents=documents(TEXTS))
    old = docstore.get_document_hash("doc-3")
    store.delete("doc-3")  # the vector store's own delete (an erasure request, outside the pipeline)
    assert docstore.get_document_hash("doc-3") is None and not docstore.document_exists("doc-3")
    assert_docstore_forgot(docstore, "doc-3", old, TEXTS["doc-3"])
    if on_disk:
        assert residue(tmp_path, [old, TEXTS["doc-3"], *sentences(TEXTS["doc-3"])]) == []
    pipe.run(documents=documents(TEXTS))
    assert store.index.ids_of_subject("doc-3") and docstore.get_document_hash("doc-3") == old
    assert store.index.digest() == fresh_digest(tmp_path, TEXTS, on_disk)
    docstore.close()
    store.index.close()


def test_a_stock_docstore_drifts(tmp_path):
    """The same forget with SimpleDocumentStore: the hash stays, the pipeline skips the
    document (missing from the store for good), and its text and hash stay on disk."""
    store = new_store(tmp_path)
    docstore = SimpleDocumentStore()
    pipe = pipeline(store, docstore)
    pipe.run(documents=documents(TEXTS))
    old = docstore.get_document_hash("doc-3")
    store.delete("doc-3")
    assert docstore.get_document_hash("doc-3") == old
    pipe.run(documents=documents(TEXTS))
    assert not store.index.ids_of_subject("doc-3")  # drift
    docstore.persist(str(tmp_path / "docstore.json"))
    assert residue(tmp_path, [old]) and residue(tmp_path, sentences(TEXTS["doc-3"])[:1])
    store.index.close()


@pytest.mark.parametrize("stock", [False, True], ids=["erase", "simple"])
def test_vector_store_index_delete_ref_doc_leaves_no_hash(tmp_path, stock):
    store = new_store(tmp_path)
    docstore = SimpleDocumentStore() if stock else ERASEDocumentStore(store)
    context = StorageContext.from_defaults(vector_store=store, docstore=docstore)
    index = VectorStoreIndex.from_documents(documents(TEXTS), storage_context=context, embed_model=HashingEmbedding(),
                                            transformations=[splitter()])
    assert docstore.get_document_hash("doc-0") is not None
    index.delete_ref_doc("doc-0", delete_from_docstore=True)
    if stock:  # what the issue describes: the hash of the deleted document stays
        assert docstore.get_document_hash("doc-0") is not None
    else:
        assert docstore.get_document_hash("doc-0") is None and "doc-0" not in docstore.get_all_document_hashes().values()
        assert sorted(docstore.get_all_document_hashes().values()) == ["doc-1", "doc-2", "doc-3"]
    store.index.close()


def test_a_run_stopped_before_the_docstore_update_is_repaired(tmp_path, monkeypatch):
    """Nodes added, no docstore record: the next run replaces the nodes (no duplicates)."""
    store = new_store(tmp_path)
    docstore = ERASEDocumentStore(store)
    pipe = pipeline(store, docstore)

    def fail(self, *args, **kwargs):
        raise OSError("killed")

    monkeypatch.setattr(ERASEDocumentStore, "set_document_hashes", fail)
    with pytest.raises(OSError):
        pipe.run(documents=documents(TEXTS))
    monkeypatch.undo()
    assert len(store.index) > 0 and docstore.get_all_document_hashes() == {}
    assert docstore.get_document_hash("doc-0") == UNRECORDED_HASH
    pipe.run(documents=documents(TEXTS))
    assert store.index.digest() == fresh_digest(tmp_path, TEXTS, True)
    assert sorted(docstore.get_all_document_hashes().values()) == sorted(TEXTS)
    docstore.close()
    store.index.close()


def test_a_run_stopped_between_the_docstore_and_the_vector_store_delete(tmp_path, monkeypatch):
    """The pipeline deletes a dropped document from the docstore, then from the vector store:
    here the docstore's delete already forgot the nodes, with its entries."""
    store = new_store(tmp_path)
    docstore = ERASEDocumentStore(store)
    pipe = pipeline(store, docstore)
    pipe.run(documents=documents(TEXTS))
    old = docstore.get_document_hash("doc-0")

    def fail(self, *args, **kwargs):
        raise OSError("killed")

    monkeypatch.setattr(ERASEVectorStore, "delete", fail)
    texts = {d: t for d, t in TEXTS.items() if d != "doc-0"}
    with pytest.raises(OSError):
        pipe.run(documents=documents(texts))
    monkeypatch.undo()
    assert not store.index.ids_of_subject("doc-0")
    assert_docstore_forgot(docstore, "doc-0", old, TEXTS["doc-0"])
    assert residue(tmp_path, [old, *sentences(TEXTS["doc-0"])]) == []
    pipe.run(documents=documents(texts))
    assert store.index.digest() == fresh_digest(tmp_path, texts, True)
    docstore.close()
    store.index.close()


def test_async_pipeline_and_reopen(tmp_path):
    store = new_store(tmp_path)
    docstore = ERASEDocumentStore(store)
    pipe = pipeline(store, docstore)
    texts = {d: t for d, t in TEXTS.items() if d != "doc-1"}

    asyncio.run(pipe.arun(documents=documents(TEXTS)))
    old = docstore.get_document_hash("doc-1")
    asyncio.run(pipe.arun(documents=documents(texts)))
    assert store.index.digest() == fresh_digest(tmp_path, texts, True)
    assert asyncio.run(docstore.aget_document_hash("doc-1")) is None
    assert residue(tmp_path, [old, *sentences(TEXTS["doc-1"])]) == []
    hashes = docstore.get_all_document_hashes()
    docstore.close()
    store.index.close()
    reopened = new_store(tmp_path)
    again = ERASEDocumentStore(reopened)
    assert again.get_all_document_hashes() == hashes
    again.close()
    reopened.index.close()


def test_the_kv_store_alone(tmp_path):
    store = new_store(tmp_path)
    kv = ERASEKVStore(store)
    kv.put("a", {"x": 1})
    kv.put_all([("b", {"y": [1, 2]}), ("c", {})], collection="other")
    assert kv.get("a") == {"x": 1} and kv.get("b") is None and kv.get("b", "other") == {"y": [1, 2]}
    assert kv.get_all("other") == {"b": {"y": [1, 2]}, "c": {}}
    assert kv.delete("c", "other") and not kv.delete("c", "other")
    assert asyncio.run(kv.aget_all("other")) == {"b": {"y": [1, 2]}}
    with pytest.raises(ERASEError, match="dict"):
        kv.put("d", [1])  # type: ignore[arg-type]
    with pytest.raises(ERASEError, match="JSON"):
        kv.put("d", {"v": float("nan")})
    with pytest.raises(ERASEError, match="ERASEVectorStore"):
        ERASEKVStore(object())
    assert kv.get("d") is None
    kv.close()
    store.index.close()


def test_persisting_an_in_memory_docstore_is_refused_before_anything_is_written(tmp_path):
    # Persisting the vector store copies its rows to a file, not the docstore's in-memory
    # entries: StorageContext.persist must refuse, not lose them silently.
    store = new_store(None)
    docstore = ERASEDocumentStore(store)
    pipeline(store, docstore).run(documents=documents(TEXTS))
    context = StorageContext.from_defaults(vector_store=store, docstore=docstore)
    with pytest.raises(ERASEError, match="in-memory vector store cannot be persisted"):
        context.persist(persist_dir=str(tmp_path / "saved"))
    assert not (tmp_path / "saved").exists() or not any((tmp_path / "saved").iterdir())
    assert docstore.get_document_hash("doc-0") is not None  # nothing lost either


def test_a_docstore_over_a_store_file_persists_with_the_context(tmp_path):
    store = new_store(tmp_path)
    docstore = ERASEDocumentStore(store)
    pipeline(store, docstore).run(documents=documents(TEXTS))
    StorageContext.from_defaults(vector_store=store, docstore=docstore).persist(persist_dir=str(tmp_path / "saved"))
    assert docstore.get_document_hash("doc-1") is not None
    docstore.close()
    store.index.close()
