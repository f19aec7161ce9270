"""Persistence: a multi-handle SQLite example store with crypto-shredded deletion."""

from .errors import CorruptStoreError, RowGoneError, ShredPendingError, StoreError
from .example_store import APPLICATION_ID, SCHEMA_VERSION, Changes, ExampleStore, NewRow, as_store_path, keys_path
from .rows import PlainRow

__all__ = [
    "APPLICATION_ID",
    "SCHEMA_VERSION",
    "Changes",
    "CorruptStoreError",
    "RowGoneError",
    "ShredPendingError",
    "ExampleStore",
    "NewRow",
    "PlainRow",
    "StoreError",
    "as_store_path",
    "keys_path",
]
