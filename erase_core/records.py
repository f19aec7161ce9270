"""Records about an index's examples, kept where the examples are and forgotten with them.

Frameworks keep their own bookkeeping beside a vector store: LangChain's record manager (each
document's hash and source id), LlamaIndex's docstore (document hashes, even texts). Kept in a
separate database, that bookkeeping outlives a forget: identifiers and hashes of forgotten
documents stay on disk, and the two drift apart when a run fails half-way.
:class:`ExampleRecords` keeps such records *in the index's store*:

* sealed like rows (keyed-hash names, each record under its own shredded key; see
  :mod:`erase_core.storage.records`), in namespaces;
* optionally **bound** to a string: the record is deleted with any example whose id or subject
  is that string, in the same transaction as the example, whichever handle or process forgets
  it (``forget``, ``forget_subject``, ``forget_where``, ``upsert``, the CLI).

An in-memory index keeps the records in memory, and a forget through the index deletes the
bound ones before it returns (a forget listener; an in-memory index has no other handle).
"""

from __future__ import annotations

import threading
from typing import Sequence

from ._validation import ERASEError
from .example_index import ExampleIndex
from .storage import ExampleStore, StoreError
from .storage.locate import open_store

__all__ = ["ExampleRecords"]


class ExampleRecords:
    """Records kept with ``index``'s examples, in namespaces (see the module doc).

    Values are strings (callers serialise). ``put`` replaces a key's record; ``bound`` ties a
    record to the examples whose id or subject it names; ``tag`` files it under a group that
    ``get(tags=...)`` reads without decrypting the other records."""

    def __init__(self, index: ExampleIndex):
        if not isinstance(index, ExampleIndex):
            raise ERASEError(f"ExampleRecords needs an erase_core.ExampleIndex, got {type(index).__name__}")
        self.index = index
        self._lock = threading.RLock()
        self._store: ExampleStore | None = None
        # in memory: namespace -> key -> (value, bound, tag, forgets of `bound` as a subject when it was put)
        self._memory: dict[str, dict[str, tuple[str, str | None, str | None, int]]] = {}
        path = index.path
        if path is not None:
            try:
                store = open_store(path)  # a handle of our own: writes serialise across handles
            except StoreError as exc:
                raise ERASEError(f"cannot open the records of {path}: {exc}") from None
            if not isinstance(store, ExampleStore):
                store.close()
                raise ERASEError(f"{type(store).__name__} keeps no sealed records yet: records (record managers, "
                                 "docstores) need an index on a SQLite store file, or in memory")
            self._store = store
        else:
            index.add_forget_listener(self._forgotten)

    # ------------------------------------------------------------------ reading
    def get(self, namespace: str, keys: Sequence[str] | None = None, *,
            tags: Sequence[str] | None = None) -> dict[str, str]:
        """``{key: value}`` of ``namespace``: every record, those of ``keys`` that exist, or
        those tagged with one of ``tags`` (not both)."""
        _namespace(namespace)
        keys = None if keys is None else _keys(keys)
        tags = None if tags is None else _keys(tags, "tag")
        if keys is not None and tags is not None:
            raise ERASEError("give keys or tags, not both")
        with self._lock:
            if self._store is not None:
                return self._store.read_records(namespace, keys, tags)
            memory = self._memory.get(namespace, {})
            if keys is not None:
                return {k: memory[k][0] for k in keys if k in memory}
            wanted = None if tags is None else set(tags)
            return {k: v for k, (v, _, tag, _) in memory.items() if wanted is None or tag in wanted}

    # ------------------------------------------------------------------ writing
    def put(self, namespace: str, items: Sequence[tuple]) -> None:
        """Set records ``(key, value, bound)`` or ``(key, value, bound, tag)`` of ``namespace``
        in one transaction (all or nothing)."""
        _namespace(namespace)
        checked: list[tuple[str, str, str | None, str | None]] = []
        for item in items:
            if not (isinstance(item, tuple) and len(item) in (3, 4)):
                raise ERASEError(f"a record is a (key, value, bound[, tag]) tuple, got {item!r}")
            key, value, bound, tag = item if len(item) == 4 else (*item, None)
            _keys([key])
            if not isinstance(value, str):
                raise ERASEError(f"a record value must be a string, got {type(value).__name__}")
            for what, v in (("binding", bound), ("tag", tag)):
                if v is not None and not isinstance(v, str):
                    raise ERASEError(f"a record's {what} must be a string or None, got {v!r}")
            checked.append((key, value, bound, tag))
        with self._lock:
            if self._store is not None:
                with self._store.transaction() as txn:
                    txn.put_records(namespace, checked)
                return
            counts: dict[str | None, int] = {}
            memory = self._memory.setdefault(namespace, {})
            for key, value, bound, tag in checked:
                if bound not in counts:
                    counts[bound] = self._forgets_of(bound)
                memory[key] = (value, bound, tag, counts[bound])

    def delete(self, namespace: str, keys: Sequence[str]) -> int:
        """Delete records of ``namespace`` by key (absent ones are skipped); returns how many were deleted."""
        _namespace(namespace)
        keys = _keys(keys)
        with self._lock:
            if self._store is not None:
                with self._store.transaction() as txn:
                    return txn.delete_records(namespace, keys)
            memory = self._memory.get(namespace, {})
            return sum(memory.pop(k, None) is not None for k in dict.fromkeys(keys))

    def close(self) -> None:
        """Release the store handle (the index stays open)."""
        with self._lock:
            if self._store is not None:
                self._store.close()
            else:
                self.index.remove_forget_listener(self._forgotten)

    # ------------------------------------------------------------------ in memory
    def _forgets_of(self, bound: str | None) -> int:
        return 0 if bound is None else len(self.index.forgotten(subject=bound))

    def _forgotten(self, ids: tuple) -> None:
        """Forget listener of an in-memory index: drop the records bound to a forgotten
        example's id, or to its subject (a forget entry naming it since the record was put)."""
        gone = set(ids)
        with self._lock:
            counts: dict[str, int] = {}
            for memory in self._memory.values():
                for key, (_, bound, _, seen) in list(memory.items()):
                    if bound is None:
                        continue
                    if bound not in gone:
                        if bound not in counts:
                            counts[bound] = self._forgets_of(bound)
                        if counts[bound] == seen:
                            continue
                    del memory[key]


def _namespace(namespace) -> None:
    if not isinstance(namespace, str) or not namespace:
        raise ERASEError(f"a records namespace must be a non-empty string, got {namespace!r}")


def _keys(keys, what: str = "key") -> list[str]:
    if isinstance(keys, (str, bytes)):
        raise ERASEError(f"{what}s must be a list of strings, not a single string")
    out = list(keys)
    for k in out:
        if not isinstance(k, str) or not k:
            raise ERASEError(f"a record {what} must be a non-empty string, got {k!r}")
    return out
