"""A persistent example store shared by any number of handles, with crypto-shredded deletion.

Two files per store, and a third for large ones:

* ``PATH``: a SQLite database (WAL mode) holding the configuration, the example rows, each
  sealed under its own key (:mod:`.rows`), a free list of key slots and a change log;
* ``PATH.keys``: the key file (:mod:`.keyfile`): one 32-byte key per row, in fixed slots,
  plus the published change counter;
* ``PATH.image`` (stores of :data:`~.image.IMAGE_MIN_ROWS` rows or more): every row at one
  version in one encrypted file, so a handle opens without decrypting row by row
  (:mod:`.image`); its key is shredded by any deletion.

Nothing an example contains (id, payload, vector) is ever written to either file in clear, so
nothing of it can reach SQLite's pages, journal, WAL or a backup. Forgetting an example
deletes its row and zeroes its key slot in place; every ciphertext copy of it that survives
anywhere is then undecryptable. The cost of a forget is one small transaction and two
``fsync``s, whatever the size of the store (no VACUUM, no rewrite).

Many handles, one pool. Every committed transaction appends its row changes to the change log
under a new *version* and then publishes that version in the key file's header. A handle
remembers the version it caught up to; :meth:`ExampleStore.published_version` is a memory
read, and :meth:`ExampleStore.changes_since` returns the rows to drop and load to catch up (or
None when the log no longer reaches back that far: reload). Writers serialise on an exclusive
``flock`` of the key file around their whole transaction, and read the changes they have not
seen inside it, so every write starts from the current pool.

Crash safety. A transaction's commit is its atomic point. Keys of new rows are written and
made durable before the commit; keys of deleted rows are zeroed after it. A *shred pending*
flag in the key file header is raised before either and lowered after; a handle that finds
it raised (the writer died or failed in between) zeroes every key slot that no row owns
before doing anything else. So a store killed at any point reopens to the state before or
after the transaction, and an interrupted erasure is finished by the next write or open.

What this cannot cover: a copy of the key file taken before a forget (together with a copy
of the database, it still opens the forgotten rows); file systems that do not overwrite in
place (copy-on-write file systems and SSD wear levelling may keep the old block of a zeroed
slot until it is reused).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import uuid as uuid_module
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from .errors import CorruptStoreError, RowGoneError, StoreError
from .image import ImageData, image_path, pack_image, read_image_file, seal_image, write_image_file
from . import records as sealed_records
from . import rowset
from .keyfile import ZERO_KEY, KeyFile
from .rows import PlainRow, new_key, open_many, seal

__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "Changes", "ExampleStore", "NewRow", "as_store_path"]

#: ``PRAGMA application_id`` of an ERASE store ("ERSE").
APPLICATION_ID = 0x45525345
#: ``PRAGMA user_version`` of the current layout (1 was the plaintext layout; 2 kept the audit
#: secret in the database and had no row-set digest; 3 had no sealed records: both are
#: migrated on open).
SCHEMA_VERSION = 4
_MIGRATABLE = (2, 3)
_FORMAT_NAME = "erase-example-store"
_SQLITE_MAGIC = b"SQLite format 3\x00"
#: Change-log entries kept; a handle further behind reloads instead of replaying.
LOG_RETAIN = 100_000
_CHUNK = 500
_OP_ADD, _OP_DEL = 1, 2

# Sealed records (records.py): keyed-hash name, namespace, binding and tag; sealed under their own key slot.
_RECORDS_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS records (name BLOB PRIMARY KEY NOT NULL, ns BLOB NOT NULL, bound BLOB, tag BLOB,"
    " key_slot INTEGER NOT NULL UNIQUE, blob BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS records_ns_tag ON records (ns, tag)",
    "CREATE INDEX IF NOT EXISTS records_bound ON records (bound)",
)

_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL)",
    "CREATE TABLE config (k INTEGER PRIMARY KEY CHECK (k = 0), json TEXT NOT NULL)",
    "CREATE TABLE state (k INTEGER PRIMARY KEY CHECK (k = 0), version INTEGER NOT NULL,"
    " n_slots INTEGER NOT NULL, log_floor INTEGER NOT NULL, dim INTEGER, rows_digest TEXT)",
    # Row numbers are never reused (AUTOINCREMENT), so (row) names one example forever.
    "CREATE TABLE examples (row INTEGER PRIMARY KEY AUTOINCREMENT, key_slot INTEGER NOT NULL UNIQUE,"
    " blob BLOB NOT NULL)",
    "CREATE TABLE free_slots (slot INTEGER PRIMARY KEY)",
    "CREATE TABLE changes (seq INTEGER PRIMARY KEY, op INTEGER NOT NULL, row INTEGER NOT NULL)",
    # The deletion audit log (audit.py): keyed hashes and digests only, hash-chained.
    "CREATE TABLE audit (seq INTEGER PRIMARY KEY, entry TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL)",
    *_RECORDS_SCHEMA,
)


def keys_path(path: Path) -> Path:
    return path.with_name(path.name + ".keys")


# POSIX advisory locks belong to a process and a file: closing ANY descriptor of the database
# file releases every lock this process holds on it, SQLite's included (sqlite.org/howtocorrupt,
# 2.2). So the header check below, which opens the file itself, must never run while this process
# has a connection on that file: stores register their file here, and checking, connecting and
# registering happen under one lock.
_OPEN_FILES: dict[tuple[int, int], int] = {}
_OPEN_FILES_LOCK = threading.Lock()


def _file_id(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def is_store_file(path) -> bool:
    """Whether ``path`` holds an ERASE store (header check; safe while stores are open)."""
    try:
        path = as_store_path(path)
        with _OPEN_FILES_LOCK:
            _inspect_header_unlocked(path)
        return True
    except StoreError:
        return False


@dataclass(frozen=True)
class NewRow:
    """An example to store: id, payload JSON, float32 vector bytes, its two hashes and its
    attributes JSON (subject and metadata; "" for none)."""

    id: str
    payload_json: str
    vector: bytes
    id_hash: int
    example_hash: int
    attrs_json: str = ""


@dataclass
class Changes:
    """What a handle at ``since`` must do to reach ``version``: drop ``removed`` row numbers
    (those it holds), then load ``added`` rows."""

    since: int
    version: int
    removed: list[int] = field(default_factory=list)
    added: list[PlainRow] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.removed or self.added)


def replay_log(since: int, version: int, ops) -> tuple[Changes, list[int]]:
    """The change log's ``(op, row)`` entries after ``since``, in order, as :class:`Changes`
    (rows dropped) and the rows added since and still present (to fetch): every backend's log."""
    removed = [r for op, r in ops if op == _OP_DEL]
    gone = set(removed)
    return Changes(since, version, removed), [r for op, r in ops if op == _OP_ADD and r not in gone]


class ExampleStore:
    """One handle on a store (a SQLite connection and the key file). Thread-safe."""

    def __init__(self, path: Path, conn: sqlite3.Connection, keys: KeyFile, store_uuid: bytes, file_id):
        """Use :meth:`create` or :meth:`open` (the caller holds ``_OPEN_FILES_LOCK``)."""
        self.path = path
        self._conn = conn
        self._keys = keys
        self._uuid = store_uuid
        self._lock = threading.RLock()
        self._closed = False
        self._file_id = file_id
        _OPEN_FILES[file_id] = _OPEN_FILES.get(file_id, 0) + 1

    # ================================================================== opening
    @classmethod
    def create(cls, path, config: dict) -> "ExampleStore":
        """Create a new store at ``path`` (absent, or an empty file) holding ``config``."""
        path = _real(as_store_path(path))
        text = _config_json(config)
        if path.exists() and (not path.is_file() or path.stat().st_size > 0):
            raise StoreError(f"{path} already exists and is not empty: a new store needs a new file")
        if keys_path(path).exists():
            raise StoreError(f"{keys_path(path)} already exists: remove it or choose another path")
        if not path.parent.is_dir():
            raise StoreError(f"cannot create a store at {path}: {path.parent} is not a directory")
        _check_writable(path, "create a store at")
        store_uuid = uuid_module.uuid4().bytes
        with _OPEN_FILES_LOCK:
            return cls._create_locked(path, text, store_uuid)

    @classmethod
    def _create_locked(cls, path: Path, text: str, store_uuid: bytes) -> "ExampleStore":
        try:
            # owner-only from the start: SQLite creates the WAL and shared-memory files with
            # the database's permissions, and the key file and image are created 0600
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                os.fchmod(fd, 0o600)  # an empty file the caller made is narrowed too
            finally:
                os.close(fd)
        except OSError as exc:
            raise StoreError(f"cannot create a store at {path}: {_os_cause(exc)}") from None
        try:
            conn = _connect(path)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot create a store at {path}: {exc}") from None
        keys = None
        secret = os.urandom(32)
        try:
            conn.execute("BEGIN IMMEDIATE")
            for stmt in _SCHEMA:
                conn.execute(stmt)
            conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [("format", _FORMAT_NAME), ("uuid", store_uuid.hex())],
            )
            conn.execute("INSERT INTO config (k, json) VALUES (0, ?)", (text,))
            conn.execute("INSERT INTO state (k, version, n_slots, log_floor, dim, rows_digest) VALUES (0, 0, 0, 0, NULL, ?)",
                         (rowset.seal(rowset.rowset_key(secret), rowset.EMPTY, 0),))
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
            _configure(conn, path)
            keys = KeyFile.create(keys_path(path), store_uuid, secret)
        except BaseException as exc:
            conn.close()
            if keys is None:
                for p in (path, *(path.with_name(path.name + s) for s in ("-journal", "-wal", "-shm"))):
                    p.unlink(missing_ok=True)
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"cannot create a store at {path}: {exc}") from None
            raise
        return cls(path, conn, keys, store_uuid, _file_id(path))

    @classmethod
    def open(cls, path) -> "ExampleStore":
        """Open an existing store. A file that is not one is rejected without being modified.
        A path through a symbolic link opens the store where the link points (its key file,
        WAL and image are beside the real file)."""
        path = _real(as_store_path(path))
        with _OPEN_FILES_LOCK:
            layout = _inspect_header_unlocked(path)
            _check_writable(path, "open the store")
            try:
                conn = _connect(path)
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open example store {path}: {exc}") from None
            try:
                store_uuid = _check_schema(conn, path, layout)
                _configure(conn, path)
                keys = KeyFile.open(keys_path(path), store_uuid, (1, 2) if layout == 2 else (2,))
                store = cls(path, conn, keys, store_uuid, _file_id(path))
            except BaseException:
                conn.close()
                raise
        try:
            if layout in _MIGRATABLE:
                with store._keys.lock():
                    store._migrate_locked()
            if keys.shred_pending():
                with store._keys.lock():
                    store._recover_locked()
            store._check_row_set()
        except BaseException:
            store.close()
            raise
        _remove_dead_image_temps(path)
        return store

    def _migrate_locked(self) -> None:
        """Bring a layout-2 or -3 store to layout 4 (caller holds the write lock). From 2: move
        the audit secret from the database to the key file, then drop it from the database and
        add the row-set digest; from 2 or 3: add the records table; in one transaction.
        Interrupted anywhere, the next open does it again (the secret written to the key file
        first is the same one)."""
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                layout = conn.execute("PRAGMA user_version").fetchone()[0]
                for stmt in _RECORDS_SCHEMA if layout in _MIGRATABLE else ():
                    conn.execute(stmt)
                if layout == 2:
                    row = conn.execute("SELECT value FROM meta WHERE key = 'audit_key'").fetchone()
                    if row is None:
                        raise StoreError(f"{self.path} (layout 2) has no audit secret to migrate")
                    self._keys.install_audit_secret(bytes.fromhex(row[0]))
                    conn.execute("DELETE FROM meta WHERE key = 'audit_key'")  # secure_delete zeroes it
                    conn.execute("ALTER TABLE state ADD COLUMN rows_digest TEXT")
                    rows = [r[0] for r in conn.execute("SELECT row FROM examples")]
                    key = rowset.rowset_key(self._keys.audit_secret())
                    conn.execute("UPDATE state SET rows_digest = ? WHERE k = 0",
                                 (rowset.seal(key, rowset.of_rows(key, rows), len(rows)),))
                if layout in _MIGRATABLE:  # not done meanwhile
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            # the WAL still holds the page with the secret: checkpoint it into the (zeroed) file
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot migrate {self.path} to layout {SCHEMA_VERSION}: {exc}") from None
        if self._keys.format != 2:
            raise StoreError(f"cannot migrate {self.path}: its key file was not updated")

    def _records_key(self) -> bytes:
        key = getattr(self, "_records_key_cache", None)
        if key is None:
            key = self._records_key_cache = sealed_records.records_key(self.audit_secret())
        return key

    def read_records(self, namespace: str, keys: Sequence[str] | None = None,
                     tags: Sequence[str] | None = None) -> dict[str, str]:
        """``{key: value}`` of the sealed records of ``namespace`` (every one, those of ``keys``
        that exist, or those tagged with one of ``tags``), read under the write lock so that no
        key changes meanwhile."""
        with self._lock, self._keys.lock():
            with self._reading() as conn:
                return self._read_records(conn, namespace, keys, tags)

    def _read_records(self, conn: sqlite3.Connection, namespace: str, keys: Sequence[str] | None,
                      tags: Sequence[str] | None = None) -> dict[str, str]:
        rkey = self._records_key()
        ns = sealed_records.namespace_hash(rkey, namespace)
        if keys is None and tags is None:
            found = conn.execute("SELECT name, key_slot, blob FROM records WHERE ns = ?", (ns,)).fetchall()
        else:
            if keys is not None:
                column, hashes = "name", [sealed_records.name_hash(rkey, namespace, k) for k in dict.fromkeys(keys)]
            else:
                column, hashes = "tag", [sealed_records.tag_hash(rkey, t) for t in dict.fromkeys(tags or ())]
            found = []
            for lo in range(0, len(hashes), _CHUNK):
                chunk = hashes[lo : lo + _CHUNK]
                marks = ",".join("?" * len(chunk))
                found.extend(conn.execute(f"SELECT name, key_slot, blob FROM records WHERE ns = ? AND {column} IN ({marks})",
                                          [ns, *chunk]))
        slot_keys = self._keys.read([slot for _, slot, _ in found])
        try:
            return dict(sealed_records.open_record(self._uuid, name, key, blob)
                        for (name, _, blob), key in zip(found, slot_keys))
        except CorruptStoreError as exc:
            raise CorruptStoreError(f"{self.path} is damaged: {exc}") from None

    def _rowset_key(self) -> bytes:
        key = getattr(self, "_rowset_key_cache", None)
        if key is None:
            key = self._rowset_key_cache = rowset.rowset_key(self.audit_secret())
        return key

    def _check_row_set(self, rows: Sequence[int] | None = None, digest: str | None = None) -> None:
        """Check the rows present against the sealed row-set record (:mod:`.rowset`): a row
        deleted or inserted with plain SQL is a :class:`CorruptStoreError`. ``rows`` and
        ``digest`` (the record), read at one version by a caller that read every row: the full
        check; without them, the cheap one of every open (the record's seal and the row count)."""
        try:
            if rows is None:
                with self._reading() as conn:
                    digest = conn.execute("SELECT rows_digest FROM state WHERE k = 0").fetchone()[0]
                    count = conn.execute("SELECT count(*) FROM examples").fetchone()[0]
                rowset.check_count(self._rowset_key(), digest, count)
            else:
                rowset.check_rows(self._rowset_key(), digest, rows)
        except rowset.RowSetMismatch:
            raise CorruptStoreError(
                f"{self.path} is damaged: its set of rows does not match the row-set digest "
                "(a row was deleted or inserted behind the library's back, or the database was edited)"
            ) from None

    # ================================================================== reading
    def published_version(self) -> int:
        """The latest committed version any handle published: one memory read."""
        return self._keys.published_version()

    def settled_version(self) -> int | None:
        """The committed version when no write is in flight (two memory reads); None while one
        is, or one was interrupted: then the published version may lag the database, and
        only :meth:`changes_since` (a query) tells what is committed.

        The in-flight flag is raised before a transaction commits and lowered only after its
        version is published, and it is read first: whenever it reads lowered, every commit
        before that moment is published."""
        keys = self._keys
        if keys.shred_pending():
            return None
        return keys.published_version()

    def finish_interrupted(self) -> bool:
        """Finish a write that was interrupted after raising the in-flight flag (its writer
        died, or failed after the commit): zero every key slot no row owns and publish the
        committed version. Never waits: False while a writer is at work (or finishing failed
        again); the caller then reads what is committed from the database."""
        keys = self._keys
        with self._lock:
            self._require_open()
            if not keys.shred_pending():
                return True
            if not keys.try_lock():
                return False
            try:
                if keys.shred_pending():
                    self._recover_locked()
                return True
            except StoreError:
                return False
            finally:
                keys.unlock()

    def config(self) -> dict:
        with self._reading() as conn:
            row = conn.execute("SELECT json FROM config WHERE k = 0").fetchone()
        return json.loads(row[0])

    def load(self) -> tuple[int, int | None, list[PlainRow]]:
        """``(version, dim, rows)``: every row, decrypted, in row order, at one consistent version."""
        while True:
            with self._reading() as conn:
                version, dim, digest = conn.execute("SELECT version, dim, rows_digest FROM state WHERE k = 0").fetchone()
                records = conn.execute("SELECT row, key_slot, blob FROM examples ORDER BY row").fetchall()
            self._check_row_set([r[0] for r in records], digest)
            rows = self._decrypt(records, dim, version)
            if rows is not None:
                return version, dim, rows

    def changes_since(self, since: int) -> Changes | None:
        """Row changes after version ``since``; None when the log was pruned past it (reload)."""
        while True:
            with self._reading() as conn:
                changes = self._changes_in(conn, since)
            if changes is None or changes[0] is None:
                return None
            result, dim, records = changes
            rows = self._decrypt(records, dim, result.version)
            if rows is not None:
                result.added = rows
                return result

    def _changes_in(self, conn, since: int):
        version, dim, floor = conn.execute("SELECT version, dim, log_floor FROM state WHERE k = 0").fetchone()
        if since > version:
            raise StoreError(f"this handle is at version {since} but {self.path} is at {version}: the store was replaced")
        if since < floor:
            return None
        ops = conn.execute("SELECT op, row FROM changes WHERE seq > ? ORDER BY seq", (since,)).fetchall()
        changes, added_rows = replay_log(since, version, ops)
        return changes, dim, _fetch_rows(conn, added_rows)

    def _decrypt(self, records, dim: int | None, version: int, *, locked: bool = False) -> list[PlainRow] | None:
        """Decrypt rows read at ``version``; None when a concurrent forget took a key (retry).
        ``locked``: the caller holds the write lock, so no key can change (failure is damage)."""
        if not records:
            return []
        if dim is None:
            raise CorruptStoreError(f"{self.path} is damaged: it has rows but no vector width")
        keys = self._keys.read([slot for _, slot, _ in records])
        try:
            if ZERO_KEY in keys:
                row = records[keys.index(ZERO_KEY)][0]
                raise CorruptStoreError(f"row {row} has no key")
            return open_many(self._uuid, [(row, key, blob) for (row, _, blob), key in zip(records, keys)], 4 * int(dim))
        except CorruptStoreError as exc:
            if not locked and self._committed_version() != version:
                return None  # a writer committed since our snapshot: read again
            raise CorruptStoreError(
                f"{self.path} is damaged: {exc} (edited or corrupted bytes, or a key file from another copy)"
            ) from None

    def _decrypt_locked(self, records, dim: int | None, version: int) -> list[PlainRow]:
        """:meth:`_decrypt` under the write lock, where no key can change: it never retries."""
        rows = self._decrypt(records, dim, version, locked=True)
        if rows is None:  # only an unlocked read can race a forget
            raise CorruptStoreError(f"{self.path}: a key changed under the write lock")
        return rows

    # ================================================================== the open image (image.py)
    def read_image(self) -> ImageData | None:
        """The rows at some earlier or the current version, from the open image; None when
        there is no readable one (then load the long way). Replay :meth:`changes_since` its
        ``version`` to catch up."""
        self._require_open()
        key = self._keys.image_key()
        if key == ZERO_KEY:
            return None
        image = read_image_file(image_path(self.path), key, self._uuid)
        if image is None or image.version > self._committed_version():
            return None  # not of this database (e.g. one restored from an older copy)
        return image

    def write_image(self, version: int, dim: int | None, rows: Sequence[PlainRow], model=None) -> bool:
        """Write the open image of ``rows`` (every row at ``version``, as :meth:`load` gave
        them; ``model``: the clustering's exported state fitted on them in that order). It
        becomes readable only if the store is still at ``version``; any later
        deletion shreds it. Returns whether it was installed; never raises for I/O (the image
        only saves time)."""
        if dim is None or not rows:
            return False
        key = new_key()
        target = image_path(self.path)
        try:
            tmp = write_image_file(target, seal_image(pack_image(rows, int(dim), model), key, self._uuid, version))
        except (OSError, ValueError):
            return False
        try:
            with self._lock, self._keys.lock():
                if self._keys.shred_pending() or self._committed_version() != version:
                    return False
                os.replace(tmp, target)
                _fsync_dir(target.parent)
                self._keys.set_image_key(key)
                self._keys.sync()
                return True
        except (OSError, StoreError):
            return False
        finally:
            tmp.unlink(missing_ok=True)

    def payloads(self, rows: Sequence[int], version: int) -> dict[int, str]:
        """``{row: payload JSON}`` of ``rows``, read and decrypted now, for a handle at
        ``version``. :class:`RowGoneError` when one was deleted since that version (catch up),
        :class:`CorruptStoreError` when one is missing or unreadable although nothing changed."""
        wanted = sorted(set(rows))
        with self._reading() as conn:
            records = _fetch_rows(conn, wanted)
            dim = conn.execute("SELECT dim FROM state WHERE k = 0").fetchone()[0]
        found = len(records) == len(wanted)
        plain = self._decrypt(records, dim, version) if found else None
        if plain is None:
            if self._committed_version() != version:
                raise RowGoneError(f"a row of {self.path} was deleted after version {version}")
            raise CorruptStoreError(f"{self.path} is damaged: a row this handle holds is missing or unreadable")
        return {r.row: r.payload_json for r in plain}

    def _committed_version(self) -> int:
        with self._reading() as conn:
            return conn.execute("SELECT version FROM state WHERE k = 0").fetchone()[0]

    def __len__(self) -> int:
        with self._reading() as conn:
            return int(conn.execute("SELECT count(*) FROM examples").fetchone()[0])

    def audit_secret(self) -> bytes:
        """The per-store key of the audit log's keyed hashes (from the key file)."""
        self._require_open()
        secret = self._keys.audit_secret()
        if secret == ZERO_KEY:
            raise StoreError(f"the key file {self._keys.path} holds no audit secret (damaged)")
        return secret

    def note(self, key: str) -> str | None:
        """An application note stored with the store (e.g. which embedding model made the vectors)."""
        with self._reading() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (_NOTE + key,)).fetchone()
            return None if row is None else row[0]

    def audit_rows(self) -> list[tuple[int, str, str, str]]:
        """``(seq, entry JSON, prev hash, hash)`` of every audit entry, in order."""
        with self._reading() as conn:
            return conn.execute("SELECT seq, entry, prev, hash FROM audit ORDER BY seq").fetchall()

    # ================================================================== writing
    @contextmanager
    def transaction(self) -> Iterator["WriteTransaction"]:
        """A write transaction: exclusive across handles and processes, atomic, durable.

        Inside, :meth:`WriteTransaction.changes` gives what the caller has not seen yet, so it
        can validate against the current pool. On normal exit the transaction commits, the
        keys of deleted rows are shredded and the new version is published; on an exception
        nothing is changed.
        """
        with self._lock, self._keys.lock():
            conn = self._require_open()
            if self._keys.shred_pending():
                self._recover_locked()
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot start a write transaction on {self.path}: {exc}") from None
            txn = WriteTransaction(self, conn)
            try:
                yield txn
                shred = txn._finish()
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                if txn.new_slots:  # keys written for rows that were not committed
                    self._try_shred(txn.new_slots)
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"the write to {self.path} failed and was rolled back: {exc}") from None
                if isinstance(exc, OSError):  # the key file (the only file written before the commit)
                    raise StoreError(
                        f"the write to {self.path} failed and was rolled back, nothing was changed: "
                        f"cannot write {exc.filename or self._keys.path}: {exc.strerror or exc}"
                    ) from None
                raise
            try:
                if txn.freed_record_slots:
                    self._keys.shred(txn.freed_record_slots)
                if shred:
                    self._shred_deleted(shred, posting=txn.posted is not None)
                if shred or txn.freed_record_slots:
                    self._keys.sync()
                if txn.posted is not None and txn.version != txn.base_version:
                    self._post(txn.version, txn.posted)
                self._keys.publish(txn.version)
                self._keys.set_shred_pending(False)
            except OSError as exc:
                what = "zeroing the deleted rows' keys" if shred or txn.freed_record_slots else "publishing its version"
                raise StoreError(
                    f"the change to {self.path} was committed, but {what} failed ({exc}); every handle "
                    "already reads the committed state, and the next read, write or open on this store finishes it"
                ) from None

    def _shred_deleted(self, slots, *, posting: bool = False) -> None:
        """Zero the keys of deleted rows and everything else in the key file that can hold
        those rows: the open image's key, and the posted selection (unless a new one is about
        to overwrite it). Not yet durable: the caller syncs."""
        self._keys.shred(slots)
        self._keys.shred_image_key()
        if not posting:
            self._keys.clear_selection()

    def _post(self, version: int, picks) -> None:
        try:
            self._keys.post_selection(version, picks)
        except OSError:
            try:
                self._keys.clear_selection()
            except OSError:
                pass  # a torn board fails its digest: handles recompute instead

    def post_selection(self, version: int, picks) -> None:
        """Post the ``erase`` selection (``(row, score)`` pairs) a handle computed at ``version``
        after its write committed, unless another write has been published since."""
        with self._lock, self._keys.lock():
            self._require_open()
            if self._keys.published_version() == version:
                self._post(version, picks)

    def posted_selection(self, version: int) -> list[tuple[int, float]] | None:
        """The ``erase`` selection the writer of ``version`` posted (None: compute it)."""
        self._require_open()
        return self._keys.posted_selection(version)

    def _try_shred(self, slots) -> None:
        try:
            self._keys.shred(slots)
            self._keys.sync()
        except OSError:
            pass  # the shred-pending flag stays raised: the next write or open zeroes them

    def _recover_locked(self) -> None:
        """Finish an interrupted transaction's key work: zero every slot that no row owns."""
        conn = self._require_open()
        try:
            conn.execute("BEGIN")
            try:
                version, n_slots = conn.execute("SELECT version, n_slots FROM state WHERE k = 0").fetchone()
                free = [r[0] for r in conn.execute("SELECT slot FROM free_slots")]
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read {self.path} to finish an interrupted erasure: {exc}") from None
        try:
            self._shred_deleted(free)  # the image and the board may hold a row it deleted
            self._keys.truncate(n_slots)
            self._keys.sync()
            self._keys.publish(version)
            self._keys.set_shred_pending(False)
        except OSError as exc:
            raise StoreError(f"cannot finish an interrupted erasure on {self.path}: {exc}") from None

    # ================================================================== plumbing
    @contextmanager
    def _reading(self):
        with self._lock:
            conn = self._require_open()
            try:
                conn.execute("BEGIN")
                try:
                    yield conn
                finally:
                    if conn.in_transaction:
                        conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read {self.path}: {exc}") from None

    def _require_open(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError(f"example store {self.path} is closed")
        return self._conn

    def files(self) -> list[Path]:
        """Every file of this store on disk now (database, key file, WAL, shared memory, journal)."""
        candidates = [self.path, keys_path(self.path), image_path(self.path)] + [
            self.path.with_name(self.path.name + s) for s in ("-journal", "-wal", "-shm")
        ]
        partial = sorted(self.path.parent.glob(f"{image_path(self.path).name}.tmp-*"))  # an image being written
        return [p for p in candidates + partial if p.is_file()]

    def close(self) -> None:
        with self._lock, _OPEN_FILES_LOCK:
            if self._closed:
                return
            self._closed = True
            self._conn.close()
            self._keys.close()
            left = _OPEN_FILES.get(self._file_id, 1) - 1
            if left:
                _OPEN_FILES[self._file_id] = left
            else:
                _OPEN_FILES.pop(self._file_id, None)

    def __enter__(self) -> "ExampleStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ExampleStore({str(self.path)!r}, {'closed' if self._closed else 'open'})"


class WriteTransaction:
    """The open write transaction of one handle (see :meth:`ExampleStore.transaction`)."""

    def __init__(self, store: ExampleStore, conn: sqlite3.Connection):
        self._store = store
        self._conn = conn
        self.base_version, self.dim, self._n_slots, self._floor, self._rows_digest = conn.execute(
            "SELECT version, dim, n_slots, log_floor, rows_digest FROM state WHERE k = 0"
        ).fetchone()
        self.version = self.base_version
        self._ops: list[tuple[int, int]] = []
        self._shred: list[int] = []
        self.new_slots: list[int] = []
        #: key slots of replaced or deleted records, zeroed right after the commit
        self.freed_record_slots: list[int] = []
        self._n_slots_at_start = self._n_slots
        self.posted: list[tuple[int, float]] | None = None

    def changes(self, since: int) -> Changes | None:
        """What a handle at ``since`` has not seen (None: reload with :meth:`load`)."""
        got = self._store._changes_in(self._conn, since)
        if got is None:
            return None
        result, dim, records = got
        result.added = self._store._decrypt_locked(records, dim, result.version)
        return result

    def load(self) -> tuple[int, int | None, list[PlainRow]]:
        version, dim = self.base_version, self.dim
        records = self._conn.execute("SELECT row, key_slot, blob FROM examples ORDER BY row").fetchall()
        self._store._check_row_set([r[0] for r in records], self._rows_digest)
        return version, dim, self._store._decrypt_locked(records, dim, version)

    def add(self, rows: Sequence[NewRow], dim: int) -> list[int]:
        """Insert sealed rows; returns their row numbers."""
        if not rows:
            return []
        if self.dim is None:
            self._conn.execute("UPDATE state SET dim = ? WHERE k = 0", (dim,))
            self.dim = dim
        elif self.dim != dim:
            raise StoreError(f"vectors have dimension {dim}; the store holds dimension {self.dim}")
        conn, store = self._conn, self._store
        slots = self._take_slots(len(rows))
        start = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM sqlite_sequence WHERE name = 'examples'").fetchone()[0]
        numbers = list(range(start + 1, start + 1 + len(rows)))
        keys = [new_key() for _ in rows]
        self._write_keys(slots, keys)
        conn.executemany(
            "INSERT INTO examples (row, key_slot, blob) VALUES (?, ?, ?)",
            (
                (n, s, seal(store._uuid, n, key, example_id=r.id, payload_json=r.payload_json, vector=r.vector,
                            id_hash=r.id_hash, example_hash=r.example_hash, attrs_json=r.attrs_json))
                for n, s, key, r in zip(numbers, slots, keys, rows)
            ),
        )
        self._ops.extend((_OP_ADD, n) for n in numbers)
        return numbers

    def _take_slots(self, n: int) -> list[int]:
        """``n`` key slots for new rows or records: free ones first, then new ones at the end."""
        conn = self._conn
        free = [r[0] for r in conn.execute("SELECT slot FROM free_slots ORDER BY slot LIMIT ?", (n,))]
        if free:
            conn.execute("DELETE FROM free_slots WHERE slot <= ?", (free[-1],))
        slots = free + list(range(self._n_slots, self._n_slots + n - len(free)))
        self._n_slots += n - len(free)
        return slots

    def _write_keys(self, slots: list[int], keys: list[bytes]) -> None:
        keyfile = self._store._keys
        keyfile.set_shred_pending(True)  # before any key reaches the file
        self.new_slots.extend(slots)
        keyfile.write(slots, keys)
        keyfile.sync()  # a committed row or record always has a durable key

    # ------------------------------------------------------------------ sealed records (records.py)
    def put_records(self, namespace: str, items: Sequence[tuple[str, str, str | None, str | None]]) -> None:
        """Set the records ``(key, value, bound, tag)`` of ``namespace``, replacing any with the
        same key (the last of repeated keys wins). Each is sealed under a new key; ``bound``: the
        id or subject of the rows whose deletion deletes the record with them (None: unbound);
        ``tag``: a group to read records by (None: none)."""
        latest = {key: (value, bound, tag) for key, value, bound, tag in items}
        if not latest:
            return
        store = self._store
        rkey = store._records_key()
        names = [sealed_records.name_hash(rkey, namespace, key) for key in latest]
        self._drop_records("name", names)
        slots = self._take_slots(len(names))
        keys = [new_key() for _ in names]
        self._write_keys(slots, keys)
        ns = sealed_records.namespace_hash(rkey, namespace)
        self._conn.executemany(
            "INSERT INTO records (name, ns, bound, tag, key_slot, blob) VALUES (?, ?, ?, ?, ?, ?)",
            ((name, ns, None if bound is None else sealed_records.bind_hash(rkey, bound),
              None if tag is None else sealed_records.tag_hash(rkey, tag), slot,
              sealed_records.seal_record(store._uuid, name, key, record_key, value))
             for name, slot, key, (record_key, (value, bound, tag)) in zip(names, slots, keys, latest.items())),
        )

    def records(self, namespace: str, keys: Sequence[str] | None = None,
                tags: Sequence[str] | None = None) -> dict[str, str]:
        """``{key: value}`` of the records of ``namespace``: every one, those of ``keys`` that
        exist, or those tagged with one of ``tags``."""
        return self._store._read_records(self._conn, namespace, keys, tags)

    def delete_records(self, namespace: str, keys: Sequence[str]) -> int:
        """Delete records of ``namespace`` by key (absent keys are skipped); returns how many went."""
        rkey = self._store._records_key()
        return self._drop_records("name", [sealed_records.name_hash(rkey, namespace, k) for k in dict.fromkeys(keys)])

    def _drop_records(self, column: str, hashes: Sequence[bytes]) -> int:
        """Delete the records whose ``column`` (name or bound) is in ``hashes``; their key slots
        are zeroed right after the commit."""
        conn, gone = self._conn, 0
        for lo in range(0, len(hashes), _CHUNK):
            chunk = list(hashes[lo : lo + _CHUNK])
            marks = ",".join("?" * len(chunk))
            slots = [r[0] for r in conn.execute(f"SELECT key_slot FROM records WHERE {column} IN ({marks})", chunk)]
            if slots:
                conn.execute(f"DELETE FROM records WHERE {column} IN ({marks})", chunk)
                self.freed_record_slots.extend(slots)
                gone += len(slots)
        return gone

    def _drop_bound_records(self, row_numbers: list[int]) -> None:
        """Delete the records bound to the id or subject of rows about to be deleted."""
        conn = self._conn
        if conn.execute("SELECT 1 FROM records WHERE bound IS NOT NULL LIMIT 1").fetchone() is None:
            return  # the common case: nothing to match, no row to decrypt
        rkey = self._store._records_key()
        binds: set[bytes] = set()
        for row in self._store._decrypt_locked(_fetch_rows(conn, row_numbers), self.dim, self.base_version):
            binds.add(sealed_records.bind_hash(rkey, row.id))
            subject = json.loads(row.attrs_json).get("s") if row.attrs_json else None
            if subject is not None:
                binds.add(sealed_records.bind_hash(rkey, str(subject)))
        self._drop_records("bound", sorted(binds))

    def delete(self, row_numbers: Sequence[int]) -> None:
        """Delete rows (their keys are shredded right after the commit)."""
        if not row_numbers:
            return
        conn = self._conn
        slots: list[int] = []
        self._drop_bound_records(list(row_numbers))
        for lo in range(0, len(row_numbers), _CHUNK):
            chunk = list(row_numbers[lo : lo + _CHUNK])
            marks = ",".join("?" * len(chunk))
            found = conn.execute(f"SELECT row, key_slot FROM examples WHERE row IN ({marks})", chunk).fetchall()
            if len(found) != len(set(chunk)):
                missing = sorted(set(chunk) - {r for r, _ in found})
                raise StoreError(f"rows {missing[:5]} are not in {self._store.path}; nothing was deleted")
            slots.extend(s for _, s in found)
            conn.execute(f"DELETE FROM examples WHERE row IN ({marks})", chunk)
        # the slots become free at _finish, not now: an add in this transaction must not take a
        # slot whose key is zeroed right after the commit
        self._shred.extend(slots)
        self._ops.extend((_OP_DEL, n) for n in row_numbers)

    def set_note(self, key: str, value: str) -> None:
        """Set an application note (commits with the transaction; not part of the pool)."""
        self._conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (_NOTE + key, value))

    def post_selection(self, picks) -> None:
        """The ``erase`` selection of the pool this transaction leaves, as ``(row, score)``
        pairs, posted for other handles right after the commit (see :meth:`ExampleStore.posted_selection`)."""
        self.posted = list(picks)

    def version_after(self) -> int:
        """The version this transaction commits as (its changes so far)."""
        return self.base_version + len(self._ops)

    def audit(self, entry: dict) -> None:
        """Append an entry to the audit log, chained to the last one (commits with the transaction)."""
        from .audit import GENESIS, chain_hash, entry_json

        last = self._conn.execute("SELECT hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        prev = GENESIS if last is None else last[0]
        text = entry_json(entry)
        self._conn.execute("INSERT INTO audit (entry, prev, hash) VALUES (?, ?, ?)", (text, prev, chain_hash(prev, text)))

    def _finish(self) -> list[int]:
        """Write the change log and state; returns the key slots to shred after the commit."""
        conn = self._conn
        if self.freed_record_slots:
            conn.executemany("INSERT INTO free_slots (slot) VALUES (?)", ((s,) for s in self.freed_record_slots))
            self._store._keys.set_shred_pending(True)  # zeroed after the commit: see _shred
        if not self._ops:
            if self._n_slots != self._n_slots_at_start:  # new records only
                conn.execute("UPDATE state SET n_slots = ? WHERE k = 0", (self._n_slots,))
            return []
        first = self.base_version + 1
        conn.executemany(
            "INSERT INTO changes (seq, op, row) VALUES (?, ?, ?)",
            ((first + i, op, row) for i, (op, row) in enumerate(self._ops)),
        )
        self.version = self.base_version + len(self._ops)
        floor = self._floor
        if self.version - floor > 2 * LOG_RETAIN:
            floor = self.version - LOG_RETAIN
            conn.execute("DELETE FROM changes WHERE seq <= ?", (floor,))
        try:
            digest = rowset.record_after(self._store._rowset_key(), self._rows_digest,
                                         [row for op, row in self._ops if op == _OP_ADD],
                                         [row for op, row in self._ops if op == _OP_DEL])
        except rowset.RowSetMismatch:
            raise CorruptStoreError(f"{self._store.path} is damaged: its row-set record does not authenticate") from None
        conn.execute(
            "UPDATE state SET version = ?, n_slots = ?, log_floor = ?, rows_digest = ? WHERE k = 0",
            (self.version, self._n_slots, floor, digest),
        )
        if self._shred:
            conn.executemany("INSERT INTO free_slots (slot) VALUES (?)", ((s,) for s in self._shred))
        # raised before the commit (an add raised it already, before writing keys): from the
        # commit until the version is published, readers see it and ask the database
        self._store._keys.set_shred_pending(True)
        return self._shred


#: Prefix of application notes in the meta table (kept apart from the store's own keys).
_NOTE = "note:"


# ---------------------------------------------------------------------- helpers
def _config_json(config: dict) -> str:
    if not isinstance(config, dict):
        raise StoreError(f"config must be a dict; got {type(config).__name__}")
    try:
        return json.dumps(config, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"config is not JSON-serialisable: {exc}") from None


def as_store_path(path) -> Path:
    """``path`` as a Path; anything that is not a file system path raises ours."""
    if not isinstance(path, (str, os.PathLike)) or isinstance(path, bytes):
        raise StoreError(f"a store path must be a str or os.PathLike; got {type(path).__name__} {path!r}")
    text = os.fspath(path)
    if not isinstance(text, str) or not text:
        raise StoreError(f"a store path must be a non-empty file system path; got {path!r}")
    return Path(text)


def _remove_dead_image_temps(path: Path) -> None:
    """Remove open images left half-written by a process that died (``PATH.image.tmp-<pid>-<hex>``
    whose pid no longer runs): they are sealed under a key that was never installed, but they
    take disk space forever otherwise."""
    prefix = f"{image_path(path).name}.tmp-"
    for tmp in path.parent.glob(f"{prefix}*"):
        pid_text = tmp.name[len(prefix):].split("-", 1)[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid():
            continue
        try:
            os.kill(int(pid_text), 0)
            continue  # it still runs (a pid reused by another program keeps its file until then)
        except ProcessLookupError:
            pass
        except OSError:
            continue  # another user's process: alive
        try:
            tmp.unlink()
        except OSError:
            pass


def _real(path: Path) -> Path:
    """The file a path names, through any symbolic links (SQLite keeps the WAL beside it too)."""
    return Path(os.path.realpath(path))


def _check_writable(path: Path, doing: str) -> None:
    """A store needs write access to its directory and files even to be read (the WAL and
    shared-memory files, the key file's flags, finishing an interrupted erasure): say so,
    rather than SQLite's "unable to open database file"."""
    try:
        read_only = bool(os.statvfs(path.parent).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    if read_only:
        raise StoreError(
            f"cannot {doing} {path}: it is on a read-only file system; an ERASE store needs write access "
            "even to be read (its WAL, shared-memory and key files): copy it to a writable place"
        )
    denied = [p for p in (path.parent, path, keys_path(path)) if p.exists() and not os.access(p, os.W_OK)]
    if denied:
        raise StoreError(
            f"cannot {doing} {path}: {denied[0]} is not writable by this user; an ERASE store needs write "
            "access to its directory and files even to be read"
        )


def _os_cause(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=60.0)


def _configure(conn: sqlite3.Connection, path: Path) -> None:
    try:
        conn.execute("PRAGMA secure_delete = ON")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA temp_store = MEMORY")
        conn.execute("PRAGMA cell_size_check = ON")
        conn.execute("PRAGMA journal_size_limit = 4194304")  # a reset WAL shrinks back to 4 MB
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    except sqlite3.Error as exc:
        raise StoreError(f"cannot configure example store {path}: {exc}") from None
    if str(mode).lower() != "wal":
        raise StoreError(f"cannot put {path} in WAL mode (got {mode!r}); is it on a network file system?")


def _inspect_header_unlocked(path: Path) -> int:
    """Reject anything that is not an ERASE store by reading its header, before SQLite opens it.

    The caller holds ``_OPEN_FILES_LOCK``. When this process already has the file open as a
    store, the header was checked then and is not read again (see ``_OPEN_FILES``)."""
    if not path.exists():
        raise StoreError(f"no example store at {path}")
    if not path.is_file():
        raise StoreError(f"{path} is not a regular file; it cannot be an example store")
    if _OPEN_FILES.get(_file_id(path)):
        return SCHEMA_VERSION  # checked (and migrated) when this process opened it
    try:
        with open(path, "rb") as fh:
            head = fh.read(100)
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc}") from None
    if len(head) < 100 or not head.startswith(_SQLITE_MAGIC):
        raise StoreError(f"{path} is not an ERASE example store (not a SQLite database)")
    app_id = int.from_bytes(head[68:72], "big")
    version = int.from_bytes(head[60:64], "big")
    if app_id != APPLICATION_ID:
        raise StoreError(
            f"{path} is a SQLite database but not an ERASE example store "
            f"(application_id {app_id:#x}, expected {APPLICATION_ID:#x})"
        )
    if version != SCHEMA_VERSION and version not in _MIGRATABLE:
        raise StoreError(f"{path} has example-store layout version {version}; this code reads version {SCHEMA_VERSION}"
                         + (f" (and migrates {', '.join(map(str, _MIGRATABLE))})" if _MIGRATABLE else ""))
    return version


def _check_schema(conn: sqlite3.Connection, path: Path, layout: int = SCHEMA_VERSION) -> bytes:
    try:
        conn.execute("BEGIN")
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            need = {"meta", "config", "state", "examples", "free_slots", "changes", "audit"} | (
                {"records"} if layout == SCHEMA_VERSION else set())
            if not need <= tables:
                raise StoreError(f"{path} is not a valid ERASE example store (missing tables {sorted(need - tables)})")
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            if conn.execute("SELECT count(*) FROM state").fetchone()[0] != 1:
                raise StoreError(f"{path} is not a valid ERASE example store (no state row)")
        finally:
            conn.execute("COMMIT")
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path} is not a valid ERASE example store: {exc}") from None
    if meta.get("format") != _FORMAT_NAME or "uuid" not in meta or (layout == 2 and "audit_key" not in meta):
        raise StoreError(f"{path} is not a valid ERASE example store (missing format marker)")
    try:
        return bytes.fromhex(meta["uuid"])
    except ValueError:
        raise StoreError(f"{path} is not a valid ERASE example store (bad uuid)") from None


def _fetch_rows(conn: sqlite3.Connection, rows: list[int]) -> list[tuple]:
    out: list[tuple] = []
    for lo in range(0, len(rows), _CHUNK):
        chunk = rows[lo : lo + _CHUNK]
        marks = ",".join("?" * len(chunk))
        out.extend(conn.execute(f"SELECT row, key_slot, blob FROM examples WHERE row IN ({marks}) ORDER BY row", chunk))
    out.sort(key=lambda r: r[0])
    return out
