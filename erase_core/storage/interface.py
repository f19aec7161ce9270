"""The store interface: what an :class:`~erase_core.ExampleIndex` asks of a store, nothing else.

A store keeps the pool durably for any number of handles (docs/storage.md, "What a store must
provide", says what each method must guarantee). :class:`~erase_core.storage.ExampleStore` (SQLite)
implements it; :mod:`erase_core.storage.locate` picks the store for a location.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol, Sequence

from .example_store import Changes, NewRow
from .rows import PlainRow

#: ``(version, dim, rows)``: every row at one version, decrypted, in row order.
Loaded = tuple[int, "int | None", list[PlainRow]]


class Transaction(Protocol):
    """One open write transaction: exclusive across handles, atomic, durable when it commits."""

    version: int  # the committed version, once the transaction has committed

    def changes(self, since: int) -> Changes | None:
        """What a handle at ``since`` has not seen (None: too far behind, :meth:`load` instead)."""

    def load(self) -> Loaded:
        """Every row, as the transaction sees them."""

    def add(self, rows: Sequence[NewRow], dim: int) -> list[int]:
        """Insert sealed rows; returns their row numbers (never reused)."""

    def delete(self, row_numbers: Sequence[int]) -> None:
        """Delete rows; their keys are shredded by the time the transaction returns."""

    def audit(self, entry: dict) -> None:
        """Append an entry to the hash-chained audit log (commits with the transaction)."""

    def post_selection(self, picks: Sequence[tuple[int, float]]) -> None:
        """Post the ``erase`` selection (``(row, score)``) of the pool this transaction leaves."""

    def set_note(self, key: str, value: str) -> None:
        """Set an application note (commits with the transaction)."""

    def version_after(self) -> int:
        """The version this transaction commits as (its changes so far)."""


class Store(Protocol):
    """A durable pool shared by any number of handles (see docs/storage.md)."""

    @property
    def path(self) -> Any:
        """Where the store is (a file system path for the SQLite store)."""

    def config(self) -> dict:
        """The index parameters fixed when the store was created."""

    def audit_secret(self) -> bytes:
        """The per-store key of the audit log's keyed hashes."""

    def published_version(self) -> int:
        """The latest committed version (cheap: read before every read of the pool)."""

    def settled_version(self) -> int | None:
        """The committed version when no write is in flight; None while one is."""

    def finish_interrupted(self) -> bool:
        """Finish a write whose writer died or failed after committing; never waits."""

    def load(self) -> Loaded:
        """Every row at one consistent version."""

    def changes_since(self, since: int) -> Changes | None:
        """Row changes after ``since``; None when the change log no longer reaches back."""

    def payloads(self, rows: Sequence[int], version: int) -> dict[int, str]:
        """Payload JSON of ``rows`` for a handle at ``version`` (RowGoneError: catch up first)."""

    def read_image(self) -> Any:
        """The open image (rows without payloads at some version, and a fit), or None."""

    def write_image(self, version: int, dim: int | None, rows: Sequence[PlainRow], model: Any = None) -> bool:
        """Write the open image of ``rows`` at ``version``; never raises for I/O."""

    def posted_selection(self, version: int) -> list[tuple[int, float]] | None:
        """The ``erase`` selection the writer of ``version`` posted (None: compute it)."""

    def post_selection(self, version: int, picks: Sequence[tuple[int, float]]) -> None:
        """Post the selection computed at ``version`` after its write committed."""

    def note(self, key: str) -> str | None:
        """An application note (None if unset)."""

    def audit_rows(self) -> list[tuple[int, str, str, str]]:
        """``(seq, entry JSON, prev hash, hash)`` of every audit entry, in order."""

    def transaction(self) -> AbstractContextManager[Transaction]:
        """A write transaction: commits on normal exit, changes nothing on an exception."""

    def close(self) -> None:
        """Release the handle (idempotent)."""
