"""``ERASEKVStore``: a LlamaIndex key-value store whose entries live in the ERASE store.

LlamaIndex keeps its docstore and index store in a ``BaseKVStore`` (a JSON file for
``SimpleKVStore``): document ids, hashes and texts beside the vector store, kept after the
documents are forgotten. Here each entry is an :class:`erase_core.records.ExampleRecords` record
of the same store: sealed like a row (no key, value or collection name in clear) and *bound*
to its key, so that forgetting the examples whose id or subject (a node's ``ref_doc_id``) is
that key deletes the entry in the same transaction, whichever handle or process forgets them.
In memory (an index without a store file) the entries are in memory and follow the forgets
of that index.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Dict, List, Optional, Tuple

from llama_index.core.storage.kvstore.types import DEFAULT_BATCH_SIZE, DEFAULT_COLLECTION, BaseKVStore

from erase_core import ERASEError, ExampleIndex
from erase_core.records import ExampleRecords

__all__ = ["ERASEKVStore"]

_PREFIX = "llamaindex-kv\0"


def index_of(store: Any, who: str) -> ExampleIndex:
    """The :class:`~erase_core.ExampleIndex` of an ERASE vector store or retriever (or the index)."""
    index = store if isinstance(store, ExampleIndex) else getattr(store, "index", None)
    if not isinstance(index, ExampleIndex):
        raise ERASEError(f"{who} needs an ERASEVectorStore (or an erase_core.ExampleIndex) to keep its entries in; "
                         f"got {type(store).__name__}")
    return index


class ERASEKVStore(BaseKVStore):
    """A ``BaseKVStore`` kept in the store of ``store`` (an
    :class:`~erase_llamaindex.ERASEVectorStore`, anything with an ``index`` attribute holding an
    :class:`erase_core.ExampleIndex`, or the index). Values are JSON objects; each ``put_all``
    is one transaction."""

    def __init__(self, store: Any):
        self.index = index_of(store, "ERASEKVStore")
        self._records = ExampleRecords(self.index)

    def put(self, key: str, val: dict, collection: str = DEFAULT_COLLECTION) -> None:
        self.put_all([(key, val)], collection=collection)

    async def aput(self, key: str, val: dict, collection: str = DEFAULT_COLLECTION) -> None:
        await asyncio.to_thread(self.put, key, val, collection)

    def put_all(self, kv_pairs: List[Tuple[str, dict]], collection: str = DEFAULT_COLLECTION,
                batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        """Set every pair in one transaction (``batch_size`` is accepted and not needed)."""
        items = []
        for key, val in kv_pairs:
            if not isinstance(val, dict):
                raise ERASEError(f"a value of ERASEKVStore must be a dict, got {type(val).__name__}")
            try:
                text = json.dumps(val, ensure_ascii=False, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise ERASEError(f"the value of {key!r} is not JSON: {exc}") from None
            items.append((key, text, key))
        if items:
            self._records.put(_PREFIX + collection, items)

    async def aput_all(self, kv_pairs: List[Tuple[str, dict]], collection: str = DEFAULT_COLLECTION,
                       batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        await asyncio.to_thread(self.put_all, kv_pairs, collection, batch_size)

    def get(self, key: str, collection: str = DEFAULT_COLLECTION) -> Optional[dict]:
        found = self._records.get(_PREFIX + collection, [key])
        return json.loads(found[key]) if key in found else None

    async def aget(self, key: str, collection: str = DEFAULT_COLLECTION) -> Optional[dict]:
        return await asyncio.to_thread(self.get, key, collection)

    def get_all(self, collection: str = DEFAULT_COLLECTION) -> Dict[str, dict]:
        return {k: json.loads(v) for k, v in sorted(self._records.get(_PREFIX + collection).items())}

    async def aget_all(self, collection: str = DEFAULT_COLLECTION) -> Dict[str, dict]:
        return await asyncio.to_thread(self.get_all, collection)

    def delete(self, key: str, collection: str = DEFAULT_COLLECTION) -> bool:
        return self._records.delete(_PREFIX + collection, [key]) > 0

    async def adelete(self, key: str, collection: str = DEFAULT_COLLECTION) -> bool:
        return await asyncio.to_thread(self.delete, key, collection)

    def close(self) -> None:
        """Release this key-value store's handle on the store (the vector store stays open)."""
        self._records.close()
