"""SQLite persistence for an example index, with residue-free deletion.

One SQLite file holds the index configuration (a JSON dict) and the examples:
``(seq, id, dim, vector, payload)`` where ``seq`` is an ``INTEGER PRIMARY KEY``
giving insertion order, ``vector`` is the raw little-endian float32 bytes of the
embedding and ``payload`` is a JSON string.  Only ``sqlite3``, ``numpy`` and
``json`` are used -- nothing is ever pickled.

Deletion guarantee
------------------
After :meth:`SQLiteExampleStore.delete` returns, no copy of a deleted row's id,
payload or vector bytes remains in any file of the store:

* ``PRAGMA secure_delete=ON`` is set on every connection, so SQLite overwrites
  deleted cells, freed b-tree pages (table *and* the id's UNIQUE index) and
  freed overflow pages with zeros instead of leaving them on the freelist.
* That alone is not enough: b-tree rebalancing leaves stale copies of cells in
  the unallocated gap of pages it rebuilt, and deleting the row later zeroes
  only the live copy (observed for the id index with SQLite 3.40).  So every
  delete is followed by ``VACUUM``, which rebuilds all pages from the live rows
  and rewrites/truncates the file (one pass over the database per delete).  A
  ``scrub_pending`` flag, set in the deleting transaction and cleared after the
  VACUUM, makes the next open finish the job if the process died in between.
* ``journal_mode=DELETE``: the rollback journal (which holds the pre-images of
  the pages a transaction changes, i.e. the deleted rows) exists only while a
  write transaction is open and is unlinked on commit.  There is no WAL file
  whose old frames could outlive the commit, and no ``-shm`` file.
* ``temp_store=MEMORY`` keeps statement journals and temporary b-trees out of
  temporary files.
* ``synchronous=FULL`` makes every commit durable, and a process killed
  mid-transaction leaves a hot journal that the next open rolls back, so the
  store is always either the before- or the after-state of a transaction.

(What the guarantee cannot cover: blocks that the file system or the storage
device kept after a file was unlinked or overwritten -- that is below the level
of files.)
"""

from __future__ import annotations

import json
import os
import pathlib
import sqlite3
import threading
from collections import Counter
from typing import Iterable

import numpy as np

from ._validation import ERASEError

__all__ = ["SQLiteExampleStore", "StoreError", "SCHEMA_VERSION", "APPLICATION_ID"]

#: ``PRAGMA application_id`` of an ERASE store ("ERSE").
APPLICATION_ID = 0x45525345
#: ``PRAGMA user_version`` of the current schema.
SCHEMA_VERSION = 1
_FORMAT_NAME = "erase-example-store"

_VEC_DTYPE = np.dtype("<f4")
_SIDE_SUFFIXES = ("-journal", "-wal", "-shm")

_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL)",
    "CREATE TABLE config (k INTEGER PRIMARY KEY CHECK (k = 0), json TEXT NOT NULL)",
    # vector before payload: the (small) vector then sits in the cell's local
    # part, the (possibly large) payload spills to overflow pages.
    "CREATE TABLE examples ("
    " seq INTEGER PRIMARY KEY,"
    " id TEXT NOT NULL UNIQUE,"
    " dim INTEGER NOT NULL CHECK (dim > 0),"
    " vector BLOB NOT NULL,"
    " payload TEXT NOT NULL)",
)
_EXPECTED_COLUMNS = {
    "meta": ["key", "value"],
    "config": ["k", "json"],
    "examples": ["seq", "id", "dim", "vector", "payload"],
}


class StoreError(ERASEError):
    """The store file is invalid, or a store operation was refused (nothing was changed)."""


class SQLiteExampleStore:
    """Persistent, transactional store of ``(id, payload JSON, float32 vector)`` rows plus a config dict.

    Thread-safe: one connection, guarded by an internal lock.  Usable as a context manager.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = pathlib.Path(os.fspath(path))
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        if self.path.exists() and not self.path.is_file():
            raise StoreError(f"{self.path} exists and is not a regular file; cannot open it as an example store")
        try:
            conn = sqlite3.connect(
                str(self.path), isolation_level=None, check_same_thread=False, timeout=30.0
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open example store {self.path}: {exc}") from None
        try:
            # Read-only checks first: nothing below writes to a file that is not
            # (or not yet) known to be one of ours.
            state = self._inspect(conn)  # also rolls back a hot journal left by a crash
            self._configure(conn)
            if state == "empty":
                self._initialise(conn)
            else:
                self._drop_stale_journal(conn)
                if self._scrub_pending(conn):
                    self._scrub(conn)  # a delete committed but its scrub did not finish
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    # ------------------------------------------------------------------ opening
    def _inspect(self, conn: sqlite3.Connection) -> str:
        """Return ``"store"`` or ``"empty"``; raise StoreError for anything else."""
        try:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            names = {
                r[0]
                for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
                )
            }
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"{self.path} is not an ERASE example store (not a readable SQLite database: {exc})"
            ) from None
        if app_id == 0 and version == 0 and not names:
            return "empty"  # a zero-length file or a fresh SQLite database: make it a store
        if app_id != APPLICATION_ID:
            raise StoreError(
                f"{self.path} is a SQLite database but not an ERASE example store "
                f"(application_id {app_id:#x}, expected {APPLICATION_ID:#x})"
            )
        if version != SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has example-store schema version {version}; "
                f"this code reads version {SCHEMA_VERSION}"
            )
        try:
            for table, cols in _EXPECTED_COLUMNS.items():
                got = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
                if got != cols:
                    raise StoreError(
                        f"{self.path} is not a valid ERASE example store: table {table!r} "
                        f"has columns {got}, expected {cols}"
                    )
            row = conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path} is not a valid ERASE example store: {exc}") from None
        if row is None or row[0] != _FORMAT_NAME:
            raise StoreError(f"{self.path} is not a valid ERASE example store (missing format marker)")
        return "store"

    def _configure(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("PRAGMA secure_delete = ON")
            if conn.execute("PRAGMA secure_delete").fetchone()[0] != 1:
                raise StoreError("this SQLite build does not support PRAGMA secure_delete")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA temp_store = MEMORY")
            conn.execute("PRAGMA cell_size_check = ON")
            mode = conn.execute("PRAGMA journal_mode = DELETE").fetchone()[0]
        except sqlite3.Error as exc:
            raise StoreError(f"cannot configure example store {self.path}: {exc}") from None
        if str(mode).lower() != "delete":
            raise StoreError(f"cannot put {self.path} in rollback-journal (DELETE) mode; got {mode!r}")

    def _initialise(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                # Another process may have initialised it meanwhile.
                if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0:
                    for stmt in _SCHEMA:
                        conn.execute(stmt)
                    conn.execute("INSERT INTO meta (key, value) VALUES ('format', ?)", (_FORMAT_NAME,))
                    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StoreError(f"cannot create example store {self.path}: {exc}") from None
        self._inspect(conn)

    def _drop_stale_journal(self, conn: sqlite3.Connection) -> None:
        """Remove a leftover rollback journal that SQLite does not consider hot.

        A writer killed after creating its journal but before finalising the journal
        header (so before touching the database) leaves a journal whose magic is zero.
        SQLite ignores such a file and leaves it on disk -- with page images in it.  A
        trivial write transaction reuses the journal and unlinks it at commit.
        """
        journal = self.path.with_name(self.path.name + "-journal")
        if not journal.exists():
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")  # dirties page 1
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StoreError(f"cannot clean up the stale journal of {self.path}: {exc}") from None

    # -------------------------------------------------------------------- scrub
    @staticmethod
    def _scrub_pending(conn: sqlite3.Connection) -> bool:
        return conn.execute("SELECT 1 FROM meta WHERE key = 'scrub_pending'").fetchone() is not None

    def _scrub(self, conn: sqlite3.Connection) -> None:
        """Rewrite the database file so that no byte of a deleted row survives anywhere in it.

        ``secure_delete`` zeroes deleted cells and freed pages, but SQLite's b-tree
        rebalancing leaves stale *copies* of cells in the unallocated gap of pages it
        rebuilt (cells that moved to a sibling page); when such a row is deleted later,
        only its live copy is zeroed.  ``VACUUM`` rebuilds every page from the live rows
        only (in a transient database kept in memory, ``temp_store=MEMORY``), copies the
        result over the file in one journaled transaction and truncates it.  Cost: one
        pass over the whole database per :meth:`delete`.

        Crash safety: the flag ``meta.scrub_pending`` is set in the same transaction as
        the deletion and cleared after the VACUUM; opening a store whose flag is set
        scrubs it first.
        """
        try:
            conn.execute("VACUUM")
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("DELETE FROM meta WHERE key = 'scrub_pending'")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StoreError(
                f"the deletion on {self.path} was committed, but rewriting the file to erase the "
                f"deleted rows' bytes failed ({exc}); it is retried on the next delete or open"
            ) from None

    # ---------------------------------------------------------------- internals
    def _require_open(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"example store {self.path} is closed")
        return self._conn

    def _write(self, fn, what: str):
        """Run ``fn(conn)`` inside one ``BEGIN IMMEDIATE`` ... ``COMMIT``; roll back on any error."""
        with self._lock:
            conn = self._require_open()
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"{what}: cannot start a transaction on {self.path}: {exc}") from None
            try:
                result = fn(conn)
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"{what} failed on {self.path}: {exc}") from None
                raise
            return result

    # ------------------------------------------------------------------- config
    def read_config(self) -> dict | None:
        """The dict last saved by :meth:`write_config`, or None if none was saved."""
        with self._lock:
            conn = self._require_open()
            row = conn.execute("SELECT json FROM config WHERE k = 0").fetchone()
        return None if row is None else json.loads(row[0])

    def write_config(self, config: dict) -> None:
        """Replace the saved config (a JSON-serialisable dict) in one transaction."""
        if not isinstance(config, dict):
            raise StoreError(f"config must be a dict; got {type(config).__name__}")
        try:
            text = json.dumps(config, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"config is not JSON-serialisable: {exc}") from None
        self._write(
            lambda c: c.execute("INSERT OR REPLACE INTO config (k, json) VALUES (0, ?)", (text,)),
            "write_config",
        )

    # ------------------------------------------------------------------ examples
    def add(self, ids: list[str], payloads_json: list[str], vectors: np.ndarray) -> None:
        """Append rows in one transaction; any duplicate id rejects the whole batch."""
        ids = _as_str_list(ids, "ids")
        payloads = _as_str_list(payloads_json, "payloads_json")
        n = len(ids)
        if len(payloads) != n:
            raise StoreError(f"got {len(payloads)} payloads for {n} ids")
        try:
            vecs = np.asarray(vectors)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"vectors must be a numeric (n, d) array: {exc}") from None
        if vecs.ndim != 2 or vecs.shape[0] != n:
            raise StoreError(f"vectors must have shape ({n}, d); got {vecs.shape}")
        if not (np.issubdtype(vecs.dtype, np.floating) or np.issubdtype(vecs.dtype, np.integer)):
            raise StoreError(f"vectors must be a real numeric array; got dtype {vecs.dtype}")
        if n == 0:
            return
        dim = int(vecs.shape[1])
        if dim == 0:
            raise StoreError("vectors have zero dimensions")
        vecs = np.ascontiguousarray(vecs, dtype=_VEC_DTYPE)
        for i, p in enumerate(payloads):
            try:
                json.loads(p)
            except ValueError as exc:
                raise StoreError(f"payloads_json[{i}] (id {ids[i]!r}) is not valid JSON: {exc}") from None
        seen: set[str] = set()
        for i in ids:
            if i in seen:
                raise StoreError(f"duplicate id {i!r} within the batch; nothing was added")
            seen.add(i)

        def do(conn: sqlite3.Connection) -> None:
            row = conn.execute("SELECT dim FROM examples LIMIT 1").fetchone()
            if row is not None and row[0] != dim:
                raise StoreError(f"vectors have dimension {dim}; the store holds dimension {row[0]}")
            present = _existing(conn, ids)
            if present:
                raise StoreError(f"id(s) already in the store: {_preview(present)}; nothing was added")
            conn.executemany(
                "INSERT INTO examples (id, dim, vector, payload) VALUES (?, ?, ?, ?)",
                ((i, dim, vecs[k].tobytes(), payloads[k]) for k, i in enumerate(ids)),
            )

        self._write(do, "add")

    def delete(self, ids: list[str]) -> None:
        """Delete rows in one transaction, leaving no copy of them in any store file.

        Unknown (or repeated) ids reject the whole call and nothing is changed.
        """
        ids = _as_str_list(ids, "ids")
        if len(set(ids)) != len(ids):
            dup = sorted(i for i, c in Counter(ids).items() if c > 1)
            raise StoreError(f"duplicate id(s) in delete request: {_preview(dup)}; nothing was deleted")
        if not ids:
            return

        def do(conn: sqlite3.Connection) -> None:
            cur = conn.executemany("DELETE FROM examples WHERE id = ?", ((i,) for i in ids))
            if cur.rowcount != len(ids):
                raise _Missing()
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('scrub_pending', '1')")

        try:
            self._write(do, "delete")
        except _Missing:
            with self._lock:
                present = set(_existing(self._require_open(), ids))
            missing = [i for i in ids if i not in present]
            raise StoreError(f"unknown id(s): {_preview(missing)}; nothing was deleted") from None
        with self._lock:
            self._scrub(self._require_open())
        # journal_mode=DELETE: every commit unlinked the rollback journal; no WAL exists.

    def load(self) -> tuple[list[str], list[str], np.ndarray | None]:
        """``(ids, payload JSON strings, float32 (n, d) vectors or None)`` in insertion order."""
        with self._lock:
            conn = self._require_open()
            rows = conn.execute("SELECT id, payload, dim, vector FROM examples ORDER BY seq").fetchall()
        if not rows:
            return [], [], None
        dims = {r[2] for r in rows}
        if len(dims) != 1:
            raise StoreError(f"{self.path} is corrupt: rows have different dimensions {sorted(dims)}")
        dim = dims.pop()
        for r in rows:
            if len(r[3]) != 4 * dim:
                raise StoreError(f"{self.path} is corrupt: vector of id {r[0]!r} has {len(r[3])} bytes, expected {4 * dim}")
        buf = b"".join(r[3] for r in rows)
        vecs = np.frombuffer(buf, dtype=_VEC_DTYPE).reshape(len(rows), dim).astype(np.float32, copy=True)
        return [r[0] for r in rows], [r[1] for r in rows], vecs

    def __len__(self) -> int:
        with self._lock:
            conn = self._require_open()
            return int(conn.execute("SELECT count(*) FROM examples").fetchone()[0])

    def __contains__(self, id_: object) -> bool:
        if not isinstance(id_, str):
            return False
        with self._lock:
            conn = self._require_open()
            return conn.execute("SELECT 1 FROM examples WHERE id = ?", (id_,)).fetchone() is not None

    # ------------------------------------------------------------------- files
    def files(self) -> list[pathlib.Path]:
        """Every file this store has on disk now: the database and any -journal/-wal/-shm."""
        candidates = [self.path] + [self.path.with_name(self.path.name + s) for s in _SIDE_SUFFIXES]
        return [p for p in candidates if p.is_file()]

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> "SQLiteExampleStore":
        self._require_open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        state = "closed" if self._conn is None else "open"
        return f"SQLiteExampleStore({str(self.path)!r}, {state})"


class _Missing(Exception):
    """Internal: a delete matched fewer rows than ids given."""


def _as_str_list(values: Iterable[str], name: str) -> list[str]:
    if isinstance(values, (str, bytes)):
        raise StoreError(f"{name} must be a sequence of strings, not a single string")
    try:
        out = list(values)
    except TypeError:
        raise StoreError(f"{name} must be a sequence of strings") from None
    for v in out:
        if not isinstance(v, str):
            raise StoreError(f"{name} must be strings; got {type(v).__name__} {v!r}")
    return out


def _existing(conn: sqlite3.Connection, ids: list[str]) -> list[str]:
    """Those of ``ids`` present in the store (in ``ids`` order)."""
    found: set[str] = set()
    uniq = list(dict.fromkeys(ids))
    for start in range(0, len(uniq), 500):
        chunk = uniq[start : start + 500]
        q = "SELECT id FROM examples WHERE id IN (%s)" % ",".join("?" * len(chunk))
        found.update(r[0] for r in conn.execute(q, chunk))
    return [i for i in ids if i in found]


def _preview(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(repr(i) for i in items[:limit])
    return shown + (f", ... ({len(items)} in all)" if len(items) > limit else "")
