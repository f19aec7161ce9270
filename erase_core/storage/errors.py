"""Errors of the storage layer."""

from __future__ import annotations

from .._validation import ERASEError


class StoreError(ERASEError):
    """The store file is invalid or damaged, or a store operation failed (see the message for
    what was and was not changed)."""


class CorruptStoreError(StoreError):
    """A stored row failed its authentication check (damaged, edited, or its key is gone)."""


class RowGoneError(StoreError):
    """A row a handle asked for was deleted by a transaction it has not caught up with yet
    (a concurrent forget): catch up and ask again."""


class ShredPendingError(StoreError):
    """A write committed (every handle reads its result), but its shred step did not finish
    before returning: the forgotten rows' old keys may still be in the database's files until
    the next write, read or open of the store finishes it (see docs/deployment.md)."""
