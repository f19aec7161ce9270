"""Files of a persisted ExampleIndex: copying an in-memory index to a store, and cleaning up.

Shared by :class:`~erase_llamaindex.ERASERetriever` and :class:`~erase_llamaindex.ERASEVectorStore`,
which both *bind* to the store they persist to (later forgets are written there), so that a
forget reaches every copy they made.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from erase_core import ERASEError, ExampleIndex
from erase_core.storage import keys_path

#: Suffix of a file being written (renamed into place when complete).
PARTIAL = ".partial"
_SIDE_FILES = (".keys", ".image", "-journal", "-wal", "-shm")


def unlink_store_files(path: Path) -> None:
    """Remove a store file and its side files (key file, open image, SQLite journal/WAL), if present."""
    for p in [path] + [path.with_name(path.name + s) for s in _SIDE_FILES]:
        try:
            p.unlink()
        except FileNotFoundError:
            pass


def write_json_atomically(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + PARTIAL)
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def copy_to_store(index: ExampleIndex, store_path: Path) -> ExampleIndex:
    """Write an in-memory ``index`` to a new store at ``store_path`` (via a ``.partial`` file,
    renamed into place when complete) and return a handle on it with the identical digest.
    On any error nothing is left at ``store_path``."""
    partial = store_path.with_name(store_path.name + PARTIAL)
    unlink_store_files(partial)  # a crashed earlier attempt may have left one (it may hold node data)
    try:
        index.save(partial)  # the stored float32 rows, byte for byte (no second normalisation)
        os.replace(keys_path(partial), keys_path(store_path))
        os.replace(partial, store_path)
        new = ExampleIndex.open(store_path)
    except BaseException:
        unlink_store_files(partial)
        unlink_store_files(store_path)
        raise
    if new.digest() != index.digest():  # pragma: no cover - guards the byte copy above
        new.close()
        unlink_store_files(store_path)
        raise ERASEError("persisted index does not reproduce the in-memory one (digest mismatch); nothing was written")
    return new
