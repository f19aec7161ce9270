"""Which store a location names: the one place that maps a location to a store class.

A location is a file system path (the SQLite :class:`~erase_core.storage.ExampleStore`) or a
PostgreSQL connection URI, ``postgresql://…`` (:class:`~erase_core.storage.postgres.PostgresStore`,
the ``postgres`` extra). Another backend adds a branch to each function below.
"""

from __future__ import annotations

import os

from .errors import StoreError
from .example_store import ExampleStore, as_store_path, is_store_file
from .interface import Store
from .postgres.connect import is_dsn


def create_store(location, config: dict) -> Store:
    """A new, empty store at ``location`` holding ``config`` (refuses a location in use)."""
    if is_dsn(location):
        from .postgres import PostgresStore

        return PostgresStore.create(location, config)
    try:
        return ExampleStore.create(location, config)
    except StoreError:
        if is_store_file(location):
            raise StoreError(f"{location} already holds an example store (a new store needs a new file; this one already exists): "
                             "reopen it with ExampleIndex.open(path)") from None
        raise


def open_store(location) -> Store:
    """The existing store at ``location`` (anything else there is rejected and left untouched)."""
    if is_dsn(location):
        from .postgres import PostgresStore

        return PostgresStore.open(location)
    return ExampleStore.open(location)


def store_exists(location) -> bool:
    """Whether something is at ``location`` for :func:`open_store` to open (or reject): False
    means :func:`create_store` may make a new store there."""
    if is_dsn(location):
        from .postgres.store import store_exists as pg_store_exists

        return pg_store_exists(location)
    path = as_store_path(location)
    return path.exists() and os.path.getsize(path) > 0
