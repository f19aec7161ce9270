"""The replicas of an index without a store: in memory (its own audit log and notes), or closed.

They answer the same calls as :class:`~.replica.StoreReplica`, so the index never asks whether
it has a store. In memory there is one handle: nothing to catch up with, no versions (always
0), no rows to number, nothing to post and nothing on disk to shred. A closed index refuses
every read and write.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, TypeVar

from .._validation import ERASEError
from ..storage.audit import MemoryAuditLog
from .encoding import Incoming
from .memory import Memory
from .receipt import IndexClosedError

T = TypeVar("T")


def _no_store() -> ERASEError:
    return ERASEError("this step needs the index's store file, and the index has none (in memory, or closed)")


class MemoryReplica:
    """An in-memory index's "store": the audit log and the notes, nothing else."""

    path = None
    version = 0

    def __init__(self, memory: Memory) -> None:
        self.memory = memory
        self.log = MemoryAuditLog(os.urandom(32))
        self.notes: dict[str, str] = {}

    @property
    def secret(self) -> bytes:
        return self.log.secret

    def current(self, version: int) -> bool:
        return True

    def sync(self) -> None:
        pass  # one handle: memory is the pool

    def catch_up_committed(self) -> None:
        raise _no_store()

    def mark_stale(self) -> None:
        pass  # nothing to reload from

    def writing(self) -> "MemoryWrite":
        return MemoryWrite(self)

    def after_commit(self, update: Callable[[], T], version: int) -> T:
        return update()

    def post_selection(self, version: int) -> None:
        pass  # no other handle reads it

    def note(self, key: str) -> str | None:
        return self.notes.get(key)

    def set_note(self, key: str, value: str) -> None:
        self.notes[key] = value

    def audit_rows(self) -> list:
        return list(self.log.rows)

    def reference(self) -> Incoming:
        """This handle's own examples: what ``verify`` rebuilds from."""
        pool = self.memory.pool
        order = sorted(pool.ids)
        vectors, payload_jsons, attrs = pool.encoded(order)
        return Incoming.stored(order, vectors, payload_jsons, attrs)

    def close(self) -> "MemoryReplica":
        return self  # an in-memory index stays usable


class MemoryWrite:
    """The steps of a write in memory: the audit entry is appended; the rest has nothing to do."""

    __slots__ = ("_log",)
    version = 0

    def __init__(self, replica: MemoryReplica) -> None:
        self._log = replica.log

    def __enter__(self) -> "MemoryWrite":
        return self

    def __exit__(self, *exc) -> None:
        return None

    def check(self, new: Incoming) -> None:
        pass  # validated against this (only) handle's pool already

    def delete(self, ids: list[str]) -> None:
        pass

    def add(self, new: Incoming) -> None:
        return None  # no row numbers

    def audit(self, entry: dict) -> None:
        self._log.append(entry)

    def version_after(self) -> int:
        return 0

    def post_selection(self) -> None:
        pass


class ClosedReplica:
    """A store-backed index after ``close()``: every read and write raises
    :class:`IndexClosedError` (memory alone is what no other handle sees)."""

    path = None
    version = 0

    def __init__(self, closed_path: Path) -> None:
        self.closed_path = closed_path
        self.secret = os.urandom(32)  # matches nothing

    def _closed(self) -> IndexClosedError:
        return IndexClosedError(
            f"this index on {self.closed_path} is closed: nothing was changed; reopen it with ExampleIndex.open(path)"
        )

    def current(self, version: int) -> bool:
        return False

    def sync(self) -> None:
        raise self._closed()

    def catch_up_committed(self) -> None:
        raise _no_store()

    def mark_stale(self) -> None:
        pass

    def writing(self) -> MemoryWrite:
        raise self._closed()

    def after_commit(self, update: Callable[[], T], version: int) -> T:
        raise self._closed()

    def post_selection(self, version: int) -> None:
        pass

    def note(self, key: str) -> str | None:
        return None

    def set_note(self, key: str, value: str) -> None:
        raise self._closed()

    def audit_rows(self) -> list:
        return []

    def reference(self) -> Incoming:
        raise self._closed()

    def close(self) -> "ClosedReplica":
        return self
