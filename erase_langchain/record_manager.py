"""``ERASERecordManager``: LangChain's record manager, kept in the ERASE store and forgotten with it.

LangChain's ``index()`` keeps, beside the vector store, one record per document chunk: its key
(the hash LangChain also uses as the vector-store id), its group (the source id) and when it
was last seen. Stock record managers keep them in a separate database, where the keys and
source ids of forgotten documents stay on disk, and where a forget done outside ``index()``
(``store.forget(subject=...)``, the CLI) leaves a record saying the document is indexed when it
is not, so the next ``index()`` run skips it.

Here each record is an :class:`erase_core.records.ExampleRecords` entry of the same store,
sealed like a row and *bound* to the row whose id is its key: deleting that row (by any
handle, any forget) deletes the record in the same transaction. ``index(..., cleanup=
"incremental" | "full" | "scoped_full")`` therefore cannot leave a record without its row, and
nothing of a forgotten document (key, hash, source id) survives on disk.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Sequence

from langchain_core.indexing import RecordManager

from erase_core import ERASEError, ExampleIndex
from erase_core.records import ExampleRecords

__all__ = ["ERASERecordManager"]

_PREFIX = "langchain-record-manager\0"


class ERASERecordManager(RecordManager):
    """A LangChain ``RecordManager`` whose records live in (and are forgotten with) the store
    of ``store``: an :class:`~erase_langchain.ERASEVectorStore` (or anything with an ``index``
    attribute holding an :class:`erase_core.ExampleIndex`), or the index itself.

    Use it with the vector store over that same index, as ``index(docs, manager, store, ...)``
    does: records are keyed by the vector-store ids."""

    def __init__(self, namespace: str, store: Any):
        index = store if isinstance(store, ExampleIndex) else getattr(store, "index", None)
        if not isinstance(index, ExampleIndex):
            raise ERASEError(
                "ERASERecordManager needs an ERASEVectorStore (or an erase_core.ExampleIndex) to keep its "
                f"records in; got {type(store).__name__}"
            )
        if not isinstance(namespace, str) or not namespace:
            raise ERASEError(f"namespace must be a non-empty string, got {namespace!r}")
        super().__init__(namespace)
        self._records = ExampleRecords(index)
        self._ns = _PREFIX + namespace

    def create_schema(self) -> None:
        """Nothing to create: the store has its records table."""

    async def acreate_schema(self) -> None:
        """Nothing to create: the store has its records table."""

    def get_time(self) -> float:
        return time.time()

    async def aget_time(self) -> float:
        return self.get_time()

    # ------------------------------------------------------------------ writing
    def update(self, keys: Sequence[str], *, group_ids: Sequence[str | None] | None = None,
               time_at_least: float | None = None) -> None:
        """Upsert the records of ``keys`` (one transaction), each bound to the row of that id."""
        keys = list(keys)
        if group_ids is not None and len(group_ids) != len(keys):
            raise ValueError(f"Length of keys ({len(keys)}) must match length of group_ids ({len(group_ids)})")
        now = self.get_time()
        if time_at_least is not None and time_at_least > now:
            raise ValueError(f"time_at_least must be in the past ({time_at_least} > {now})")
        groups = group_ids if group_ids is not None else [None] * len(keys)
        for g in groups:
            if g is not None and not isinstance(g, str):
                raise ERASEError(f"a group id must be a string or None, got {g!r}")
        self._records.put(self._ns, [(k, json.dumps({"g": g, "t": now}), k, g) for k, g in zip(keys, groups)])

    async def aupdate(self, keys: Sequence[str], *, group_ids: Sequence[str | None] | None = None,
                      time_at_least: float | None = None) -> None:
        await asyncio.to_thread(self.update, keys, group_ids=group_ids, time_at_least=time_at_least)

    def delete_keys(self, keys: Sequence[str]) -> None:
        """Delete the records of ``keys`` (absent ones are skipped)."""
        self._records.delete(self._ns, list(keys))

    async def adelete_keys(self, keys: Sequence[str]) -> None:
        await asyncio.to_thread(self.delete_keys, keys)

    # ------------------------------------------------------------------ reading
    def exists(self, keys: Sequence[str]) -> list[bool]:
        keys = list(keys)
        found = self._records.get(self._ns, keys) if keys else {}
        return [k in found for k in keys]

    async def aexists(self, keys: Sequence[str]) -> list[bool]:
        return await asyncio.to_thread(self.exists, keys)

    def list_keys(self, *, before: float | None = None, after: float | None = None,
                  group_ids: Sequence[str] | None = None, limit: int | None = None) -> list[str]:
        """Keys of the records updated before/after a time and in ``group_ids``, oldest first."""
        wanted = set(group_ids) if group_ids else None  # as LangChain's managers: [] filters nothing
        found = self._records.get(self._ns) if wanted is None else self._records.get(
            self._ns, tags=[g for g in wanted or () if isinstance(g, str) and g])  # only those groups are read
        out = []
        for key, value in found.items():
            record = json.loads(value)
            t = record["t"]
            if (before is not None and t >= before) or (after is not None and t <= after):
                continue
            if wanted is not None and record["g"] not in wanted:
                continue
            out.append((t, key))
        out.sort()
        keys = [k for _, k in out]
        return keys[:limit] if limit else keys

    async def alist_keys(self, *, before: float | None = None, after: float | None = None,
                         group_ids: Sequence[str] | None = None, limit: int | None = None) -> list[str]:
        return await asyncio.to_thread(self.list_keys, before=before, after=after, group_ids=group_ids, limit=limit)

    def close(self) -> None:
        """Release the record manager's handle on the store (the vector store stays open)."""
        self._records.close()
