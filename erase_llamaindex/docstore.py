"""``ERASEDocumentStore``: a LlamaIndex docstore kept in the ERASE store, forgotten with the nodes.

``IngestionPipeline(docstore=..., docstore_strategy=UPSERTS_AND_DELETE)`` and
``VectorStoreIndex.insert`` record each document's hash (and, in the pipeline, its text) in the
docstore. A stock docstore (``SimpleDocumentStore``, a JSON file) keeps them after the
document's nodes are forgotten, and a forget done outside the pipeline leaves a hash that makes
the next run skip the document. This docstore is a ``KVDocumentStore`` over an
:class:`~erase_llamaindex.kvstore.ERASEKVStore`: every entry is sealed in the vector store's
own store and bound to its key, so forgetting a document's nodes (their ``ref_doc_id`` is the
subject of their rows) deletes its entries in the same transaction, and

* deleting a document or ref doc from the docstore forgets its nodes first (the pipeline
  deletes from the docstore, then from the vector store: a run stopped in between would
  otherwise leave nodes nothing records);
* a document with nodes in the store but no hash here (a run stopped between the vector
  store's add and the docstore's update) reports a hash that matches no document, so the next
  run replaces its nodes instead of adding them twice.
"""

from __future__ import annotations

import asyncio
from typing import Any, Optional

from llama_index.core.storage.docstore.keyval_docstore import KVDocumentStore
from llama_index.core.storage.kvstore.types import DEFAULT_BATCH_SIZE

from erase_core import ERASEError, ExampleIndex

from .kvstore import ERASEKVStore

__all__ = ["ERASEDocumentStore", "UNRECORDED_HASH"]

#: The hash reported for a document whose nodes are in the store with no docstore record.
UNRECORDED_HASH = "erase:nodes-without-a-docstore-record"


class ERASEDocumentStore(KVDocumentStore):
    """A LlamaIndex docstore whose entries live in (and are forgotten with) the store of
    ``store``: an :class:`~erase_llamaindex.ERASEVectorStore` (or anything with an ``index``
    attribute holding an :class:`erase_core.ExampleIndex`), or the index itself. Use it with
    the vector store over that same index."""

    def __init__(self, store: Any, namespace: Optional[str] = None, batch_size: int = DEFAULT_BATCH_SIZE):
        self._erase_kv = ERASEKVStore(store)
        super().__init__(self._erase_kv, namespace=namespace, batch_size=batch_size)

    @property
    def index(self) -> ExampleIndex:
        """The index whose store holds the entries."""
        return self._erase_kv.index

    def _forget_nodes_of(self, doc_id: str) -> None:
        """Forget the examples whose id or subject (``ref_doc_id``) is ``doc_id``; their bound
        entries go in the same transactions."""
        index = self.index
        if doc_id in index:
            index.forget([doc_id])
        if index.ids_of_subject(doc_id):
            index.forget_subject(doc_id)

    def _has_nodes(self, doc_id: str) -> bool:
        index = self.index
        return doc_id in index or bool(index.ids_of_subject(doc_id))

    def delete_document(self, doc_id: str, raise_error: bool = True) -> None:
        """Delete a document: its nodes in the store first, then what is left of its entries."""
        existed = self.document_exists(doc_id)
        self._forget_nodes_of(doc_id)
        super().delete_document(doc_id, raise_error=False)
        if not existed and raise_error:
            raise ValueError(f"doc_id {doc_id} not found.")

    async def adelete_document(self, doc_id: str, raise_error: bool = True) -> None:
        await asyncio.to_thread(self.delete_document, doc_id, raise_error)

    def delete_ref_doc(self, ref_doc_id: str, raise_error: bool = True) -> None:
        """Delete a ref doc: its nodes in the store first, then what is left of its entries."""
        existed = self.get_ref_doc_info(ref_doc_id) is not None
        self._forget_nodes_of(ref_doc_id)
        super().delete_ref_doc(ref_doc_id, raise_error=False)
        for collection in (self._metadata_collection, self._node_collection):  # a document without ref doc info
            self._kvstore.delete(ref_doc_id, collection=collection)
        if not existed and raise_error:
            raise ValueError(f"ref_doc_id {ref_doc_id} not found.")

    async def adelete_ref_doc(self, ref_doc_id: str, raise_error: bool = True) -> None:
        await asyncio.to_thread(self.delete_ref_doc, ref_doc_id, raise_error)

    def get_document_hash(self, doc_id: str) -> Optional[str]:
        """The recorded hash; :data:`UNRECORDED_HASH` for a document with nodes in the store
        and no record (so a pipeline replaces them), None for an unknown one."""
        found = super().get_document_hash(doc_id)
        if found is None and self._has_nodes(doc_id):
            return UNRECORDED_HASH
        return found

    async def aget_document_hash(self, doc_id: str) -> Optional[str]:
        return await asyncio.to_thread(self.get_document_hash, doc_id)

    def persist(self, persist_path: str = "", fs: Any = None) -> None:
        """Nothing to write for a store file (every entry is already committed in it).

        An in-memory index keeps its entries in memory, and persisting the vector store copies
        the rows but not them: refused, before ``StorageContext.persist`` writes anything,
        rather than losing the entries silently."""
        if self.index.path is None:
            raise ERASEError(
                "ERASEDocumentStore over an in-memory vector store cannot be persisted: its entries live in "
                "memory and would be lost. Create the vector store on a store file "
                "(ERASEVectorStore.from_defaults(path, ...)) and the docstore over it")

    def close(self) -> None:
        """Release the docstore's handle on the store (the vector store stays open)."""
        self._erase_kv.close()
