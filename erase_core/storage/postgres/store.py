"""A store in PostgreSQL: one pool for handles on any number of hosts (docs/deployment.md,
"Several hosts"). It implements the store interface (:mod:`..interface`) as the SQLite
:class:`~erase_core.storage.ExampleStore` does:

* **Writers** serialise on a session-level advisory lock (keyed by the store's state table),
  held for the transaction and the shred step after it; a writer that dies loses its session
  and with it the lock.
* **Versions and the change log** are rows of ``erase_state`` and ``erase_changes``, written in
  the write's transaction; row numbers come from ``erase_state.next_row`` and are never reused.
* **Freshness**: :meth:`PostgresStore.settled_version` is one query (one round trip) on the
  version row, so a read that starts after a forget returned, on any host, sees it.
* **Reads** run in one ``REPEATABLE READ`` snapshot, so rows, wrapped keys and bucket keys are
  always of one version.
* **Shredding**: rows are sealed as in the SQLite store (:mod:`..rows`); row keys are wrapped
  under bucket keys (:mod:`.keys`), which a forget replaces; the shred step (:mod:`.shred`)
  then purges the old bucket keys from the cluster's files. A ``shred_pending`` flag, set in
  the forget's transaction, makes the next write, open or read finish a shred that a dead
  writer left.

* **Posted selection**: sealed in the state row under a key that every post and every
  deleting transaction replaces (:mod:`.board`).

* **The open image** is one sealed value (:mod:`..image`) whose key any deleting transaction
  deletes with the image.
"""

from __future__ import annotations

import json
import threading
import uuid as uuid_module
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence, TypeVar

from .. import rowset
from ..errors import CorruptStoreError, RowGoneError, ShredPendingError, StoreError
from ..example_store import LOG_RETAIN, Changes, NewRow, replay_log
from ..image import ImageData, open_image, pack_image, seal_image
from ..rows import PlainRow, new_key as new_row_key, open_many, seal
from . import schema, shred
from .board import BOARD_BUCKET, open_board, seal_board

#: The row of ``erase_keys`` that holds the open image's key.
IMAGE_BUCKET = -3
from .connect import connect, describe
from .keys import AUDIT_BUCKET, BUCKET_ROWS, Unwrapper, new_key, wrap

__all__ = ["PostgresStore", "PgWriteTransaction"]

_OP_ADD, _OP_DEL = 1, 2
T = TypeVar("T")
#: High half of the advisory lock key ("ERSE"); the low half is the state table's oid.
_LOCK_CLASS = 0x45525345


def _psycopg():
    import psycopg

    return psycopg


class PostgresStore:
    """One handle on a store in PostgreSQL (one connection). Thread-safe."""

    def __init__(self, dsn: str, conn, store_uuid: bytes, bucket_rows: int):
        """Use :meth:`create` or :meth:`open`."""
        self._dsn = dsn
        self._where = describe(dsn)
        self._conn = conn
        self._uuid = store_uuid
        self._bucket_rows = bucket_rows
        self._lock = threading.RLock()
        self._closed = False
        self._secret: bytes | None = None
        _configure(conn)
        self._lock_key = self._read_lock_key(conn)

    @property
    def path(self) -> str:
        """The connection string this handle was opened with (reopen a copy with it)."""
        return self._dsn

    # ================================================================== opening
    @classmethod
    def create(cls, dsn: str, config: dict) -> "PostgresStore":
        """Create a store in the DSN's database and schema, which must hold none (nor any
        table of the same names)."""
        text = _config_json(config)
        conn = connect(dsn)
        where = describe(dsn)
        psycopg = _psycopg()
        try:
            found = schema.present(conn)
            if found:
                try:
                    schema.check(conn, where)
                except StoreError:
                    raise StoreError(f"cannot create a store in {where}: it has tables named "
                                     f"{', '.join(found)} that are not an ERASE store") from None
                raise StoreError(f"{where} already holds an example store: reopen it with ExampleIndex.open(dsn)")
            missing = shred.problems(conn)
            if missing:
                raise StoreError(f"cannot create a store in {where}: forgets could not be shredded there: "
                                 + "; ".join(missing))
            store_uuid = uuid_module.uuid4().bytes
            secret = new_key()
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_CLASS << 32,))
                if schema.present(conn):
                    raise StoreError(f"{where} already holds an example store (created concurrently)")
                for stmt in schema.DDL:
                    conn.execute(stmt)
                with conn.cursor() as cur:
                    cur.executemany("INSERT INTO erase_meta (key, value) VALUES (%s, %s)", [
                        ("format", schema.FORMAT_NAME), ("schema_version", str(schema.SCHEMA_VERSION)),
                        ("uuid", store_uuid.hex()), ("bucket_rows", str(BUCKET_ROWS))])
                conn.execute("INSERT INTO erase_keys (bucket, key) VALUES (%s, %s)", (AUDIT_BUCKET, secret))
                conn.execute("INSERT INTO erase_config (k, json) VALUES (0, %s)", (text,))
                conn.execute(
                    "INSERT INTO erase_state (k, version, next_row, log_floor, dim, rows_digest, shred_pending)"
                    " VALUES (0, 0, 1, 0, NULL, %s, false)",
                    (rowset.seal(rowset.rowset_key(secret), rowset.EMPTY, 0),))
            return cls(dsn, conn, store_uuid, BUCKET_ROWS)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, psycopg.Error):
                raise StoreError(f"cannot create a store in {where}: {_cause(exc)}") from None
            raise

    @classmethod
    def open(cls, dsn: str) -> "PostgresStore":
        """Open the store in the DSN's database and schema; anything else is rejected untouched.
        Finishes a shred step that a writer which died left pending."""
        conn = connect(dsn)
        where = describe(dsn)
        psycopg = _psycopg()
        try:
            meta = schema.check(conn, where)
            missing = shred.problems(conn)
            if missing:
                raise StoreError(f"cannot open the store in {where}: forgets could not be shredded there: "
                                 + "; ".join(missing))
            try:
                store_uuid, bucket_rows = bytes.fromhex(meta["uuid"]), int(meta["bucket_rows"])
            except (KeyError, ValueError):
                raise StoreError(f"{where} is not a valid ERASE example store (bad uuid or bucket size)") from None
            store = cls(dsn, conn, store_uuid, bucket_rows)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, psycopg.Error):
                raise StoreError(f"cannot open the store in {where}: {_cause(exc)}") from None
            raise
        try:
            store.audit_secret()
            store._check_row_set()
            if store.settled_version() is None:
                with store._writer():
                    store._finish_pending_locked()
        except BaseException:
            store.close()
            raise
        return store

    @staticmethod
    def _read_lock_key(conn) -> int:
        oid = conn.execute("SELECT 'erase_state'::regclass::oid::bigint").fetchone()[0]
        return (_LOCK_CLASS << 32) | int(oid)

    # ================================================================== reading
    def published_version(self) -> int:
        """The committed version (one query)."""
        return self._state()[0]

    def settled_version(self) -> int | None:
        """The committed version (one query, one round trip); None while a forget's shred step
        is pending (its commit is visible already: the caller may finish it)."""
        version, pending = self._state()
        return None if pending else version

    def _state(self) -> tuple[int, bool]:
        row = self._read(lambda conn: conn.execute("SELECT version, shred_pending FROM erase_state WHERE k = 0").fetchone(),
                         snapshot=False)
        if row is None:
            raise CorruptStoreError(f"{self._where} is damaged: it has no state row")
        return int(row[0]), bool(row[1])

    def finish_interrupted(self) -> bool:
        """Finish a shred step a dead writer left pending. Never waits for a writer: False when
        one holds the lock (it finishes its own). Reads are exact either way."""
        with self._lock:
            conn = self._live()
            try:
                if not conn.execute("SELECT pg_try_advisory_lock(%s)", (self._lock_key,)).fetchone()[0]:
                    return False
                try:
                    self._finish_pending_locked()
                    return True
                finally:
                    conn.execute("SELECT pg_advisory_unlock(%s)", (self._lock_key,))
            except (StoreError, _psycopg().Error):
                return False

    def config(self) -> dict:
        row = self._read(lambda conn: conn.execute("SELECT json FROM erase_config WHERE k = 0").fetchone())
        return json.loads(row[0])

    def load(self) -> tuple[int, int | None, list[PlainRow]]:
        """``(version, dim, rows)``: every row, decrypted, in row order, at one version."""
        def read(conn):
            state = conn.execute("SELECT version, dim, rows_digest FROM erase_state WHERE k = 0").fetchone()
            return state, _all_rows(conn), self._bucket_keys(conn, None)

        (version, dim, digest), records, keys = self._read(read)
        return version, dim, self._open_rows(records, keys, dim, digest)

    def changes_since(self, since: int) -> Changes | None:
        """Row changes after version ``since``; None when the log was pruned past it (reload)."""
        got = self._read(lambda conn: self._changes_in(conn, since))
        if got is None:
            return None
        result, dim, records, keys = got
        result.added = self._open_rows(records, keys, dim)
        return result

    def _changes_in(self, conn, since: int):
        version, dim, floor = conn.execute("SELECT version, dim, log_floor FROM erase_state WHERE k = 0").fetchone()
        if since > version:
            raise StoreError(f"this handle is at version {since} but {self._where} is at {version}: the store was replaced")
        if since < floor:
            return None
        ops = conn.execute("SELECT op, row FROM erase_changes WHERE seq > %s ORDER BY seq", (since,)).fetchall()
        changes, added = replay_log(since, version, ops)
        records = _fetch(conn, added)
        keys = self._bucket_keys(conn, {r[0] // self._bucket_rows for r in records}) if records else {}
        return changes, dim, records, keys

    def payloads(self, rows: Sequence[int], version: int) -> dict[int, str]:
        """``{row: payload JSON}`` of ``rows`` for a handle at ``version`` (:class:`RowGoneError`
        when one was deleted since: catch up first)."""
        wanted = sorted(set(rows))

        def read(conn):
            state = conn.execute("SELECT version, dim FROM erase_state WHERE k = 0").fetchone()
            records = _fetch(conn, wanted)
            return state, records, self._bucket_keys(conn, {r[0] // self._bucket_rows for r in records}) if records else {}

        (now, dim), records, keys = self._read(read)
        if len(records) != len(wanted):
            if now != version:
                raise RowGoneError(f"a row of {self._where} was deleted after version {version}")
            raise CorruptStoreError(f"{self._where} is damaged: a row this handle holds is missing")
        return {r.row: r.payload_json for r in self._open_rows(records, keys, dim)}

    def _bucket_keys(self, conn, buckets) -> dict[int, bytes]:
        if buckets is None:
            got = conn.execute("SELECT bucket, key FROM erase_keys WHERE bucket >= 0").fetchall()
        else:
            got = conn.execute("SELECT bucket, key FROM erase_keys WHERE bucket = ANY(%s)", (sorted(buckets),)).fetchall()
        return {int(b): bytes(k) for b, k in got}

    def _open_rows(self, records, keys: dict[int, bytes], dim: int | None, digest: str | None = None) -> list[PlainRow]:
        """Decrypt ``(row, wrapped, blob)`` records read in one snapshot with ``keys``;
        with ``digest`` (a full load) also check the row-set record."""
        if digest is not None:
            self._check_row_set([r[0] for r in records], digest)
        if not records:
            return []
        if dim is None:
            raise CorruptStoreError(f"{self._where} is damaged: it has rows but no vector width")
        unwrap = Unwrapper(self._uuid, keys)
        try:
            size = self._bucket_rows
            sealed = [(row, unwrap(row, row // size, bytes(wrapped)), bytes(blob)) for row, wrapped, blob in records]
            return open_many(self._uuid, sealed, 4 * int(dim))
        except CorruptStoreError as exc:
            raise CorruptStoreError(f"{self._where} is damaged: {exc} (edited rows, or keys of another store)") from None

    def _rowset_key(self) -> bytes:
        return rowset.rowset_key(self.audit_secret())

    def _check_row_set(self, rows: Sequence[int] | None = None, digest: str | None = None) -> None:
        """The row-set record against the rows present (the count at open; every row number
        when ``rows`` are given): a row deleted or inserted with plain SQL is caught."""
        try:
            if rows is None:
                digest, count = self._read(lambda conn: (
                    conn.execute("SELECT rows_digest FROM erase_state WHERE k = 0").fetchone()[0],
                    conn.execute("SELECT count(*) FROM erase_examples").fetchone()[0]))
                rowset.check_count(self._rowset_key(), digest, count)
            else:
                rowset.check_rows(self._rowset_key(), digest, rows)
        except rowset.RowSetMismatch:
            raise CorruptStoreError(
                f"{self._where} is damaged: its set of rows does not match the row-set digest "
                "(a row was deleted or inserted behind the library's back)") from None

    def audit_secret(self) -> bytes:
        """The per-store key of the audit log's keyed hashes (bucket -1 of the key table)."""
        if self._secret is None:
            row = self._read(lambda conn: conn.execute(
                "SELECT key FROM erase_keys WHERE bucket = %s", (AUDIT_BUCKET,)).fetchone())
            if row is None or len(bytes(row[0])) != 32:
                raise CorruptStoreError(f"{self._where} is damaged: it holds no audit secret")
            self._secret = bytes(row[0])
        return self._secret

    def note(self, key: str) -> str | None:
        row = self._read(lambda conn: conn.execute(
            "SELECT value FROM erase_meta WHERE key = %s", (_NOTE + key,)).fetchone())
        return None if row is None else row[0]

    def audit_rows(self) -> list[tuple[int, str, str, str]]:
        return self._read(lambda conn: [
            tuple(r) for r in conn.execute("SELECT seq, entry, prev, hash FROM erase_audit ORDER BY seq")])

    def __len__(self) -> int:
        return int(self._read(lambda conn: conn.execute("SELECT count(*) FROM erase_examples").fetchone()[0]))

    # the open image (..image): one sealed value in erase_image, its key row -3 of erase_keys
    def read_image(self) -> ImageData | None:
        """The rows at some earlier or the current version, from the open image; None when there
        is no readable one (then load the long way)."""
        got = self._read(lambda conn: conn.execute(
            "SELECT i.version, i.blob, k.key, s.version FROM erase_image i JOIN erase_keys k ON k.bucket = %s"
            " CROSS JOIN erase_state s WHERE i.k = 0 AND s.k = 0", (IMAGE_BUCKET,), binary=True).fetchone())
        if got is None or got[0] > got[3]:
            return None
        image = open_image(got[1], bytes(got[2]), self._uuid)
        return image if image is not None and image.version == got[0] else None

    def write_image(self, version: int, dim: int | None, rows: Sequence[PlainRow], model=None) -> bool:
        """Store the open image of ``rows`` (every row at ``version``) if the store is still at
        ``version``; any later deletion deletes its key. Never raises (the image only saves time)."""
        if dim is None or not rows:
            return False
        key = new_key()
        try:
            blob = b"".join(seal_image(pack_image(rows, int(dim), model), key, self._uuid, version))
        except ValueError:
            return False
        psycopg = _psycopg()
        try:
            with self._writer() as conn, conn.transaction():
                now, pending = conn.execute("SELECT version, shred_pending FROM erase_state WHERE k = 0").fetchone()
                if now != version or pending:
                    return False
                # only a cache: a crash may lose it (then opens go the long way), so the commit
                # does not wait for the flush of the image's WAL
                conn.execute("SET LOCAL synchronous_commit = off")
                conn.execute("INSERT INTO erase_keys (bucket, key) VALUES (%s, %s)"
                             " ON CONFLICT (bucket) DO UPDATE SET key = EXCLUDED.key", (IMAGE_BUCKET, key))
                conn.execute("INSERT INTO erase_image (k, version, blob) VALUES (0, %s, %s) ON CONFLICT (k)"
                             " DO UPDATE SET version = EXCLUDED.version, blob = EXCLUDED.blob", (version, blob))
            return True
        except (StoreError, psycopg.Error):
            return False

    # the posted selection (board.py)
    def posted_selection(self, version: int) -> list[tuple[int, float]] | None:
        """The ``erase`` selection the writer of ``version`` posted (None: compute it)."""
        got = self._read(lambda conn: conn.execute(
            "SELECT s.version, s.board, k.key FROM erase_state s LEFT JOIN erase_keys k ON k.bucket = %s"
            " WHERE s.k = 0", (BOARD_BUCKET,)).fetchone())
        if got is None or got[0] != version or got[1] is None or got[2] is None:
            return None
        return open_board(bytes(got[2]), self._uuid, version, bytes(got[1]))

    def post_selection(self, version: int, picks) -> None:
        """Post the selection a handle computed at ``version`` after its write committed, unless
        another write committed since."""
        psycopg = _psycopg()
        with self._lock:
            conn = self._live()
            try:
                # never waits: a writer at work is about to make this version stale anyway
                if not conn.execute("SELECT pg_try_advisory_lock(%s)", (self._lock_key,)).fetchone()[0]:
                    return
                try:
                    with conn.transaction():
                        if conn.execute("SELECT version FROM erase_state WHERE k = 0").fetchone()[0] == version:
                            self._write_board(conn, version, list(picks))
                finally:
                    conn.execute("SELECT pg_advisory_unlock(%s)", (self._lock_key,))
            except psycopg.Error as exc:
                raise StoreError(f"cannot post a selection to {self._where}: {_cause(exc)}") from None

    def _write_board(self, conn, version: int, picks: list[tuple[int, float]] | None) -> None:
        """A new board key, and the board sealed under it (none when ``picks`` is None)."""
        key = new_key()
        conn.execute("INSERT INTO erase_keys (bucket, key) VALUES (%s, %s)"
                     " ON CONFLICT (bucket) DO UPDATE SET key = EXCLUDED.key", (BOARD_BUCKET, key))
        board = None if picks is None else seal_board(key, self._uuid, version, picks)
        conn.execute("UPDATE erase_state SET board = %s WHERE k = 0", (board,))

    # ================================================================== writing
    @contextmanager
    def transaction(self) -> Iterator["PgWriteTransaction"]:
        """A write transaction: exclusive across handles and hosts, atomic, durable. On normal
        exit it commits and, when it deleted rows, runs the shred step before returning."""
        psycopg = _psycopg()
        with self._writer() as conn:
            self._finish_pending_locked()
            try:
                with conn.transaction():
                    txn = PgWriteTransaction(self, conn)
                    yield txn
                    txn._finish()
            except psycopg.Error as exc:
                if conn.broken or conn.closed:
                    raise StoreError(
                        f"the write to {self._where} failed: the connection was lost ({_cause(exc)}); if that "
                        "happened during COMMIT it may have committed: every handle reads what is committed") from None
                raise StoreError(f"the write to {self._where} failed and was rolled back: {_cause(exc)}") from None
            if txn.shred_xid is not None:
                try:
                    self._shred_locked(txn.shred_xid)
                except (StoreError, psycopg.Error) as exc:
                    raise ShredPendingError(
                        f"the change to {self._where} was committed, but shredding the replaced keys failed "
                        f"({_cause(exc)}); the next write, read or open finishes it") from None

    @contextmanager
    def _writer(self):
        """This handle's connection, holding the store's writer lock (a session advisory lock)."""
        psycopg = _psycopg()
        with self._lock:
            for attempt in (0, 1):  # a connection lost since the last use is replaced once
                conn = self._live()
                try:
                    conn.execute("SELECT pg_advisory_lock(%s)", (self._lock_key,))
                    break
                except psycopg.Error as exc:
                    if attempt == 0 and (conn.broken or conn.closed):
                        continue
                    raise StoreError(f"cannot start a write transaction on {self._where}: {_cause(exc)}") from None
            try:
                yield conn
            finally:
                if not (conn.broken or conn.closed):
                    try:
                        conn.execute("SELECT pg_advisory_unlock(%s)", (self._lock_key,))
                    except psycopg.Error:
                        pass

    def _finish_pending_locked(self) -> None:
        row = self._conn.execute("SELECT shred_pending, shred_xid FROM erase_state WHERE k = 0").fetchone()
        if row[0]:
            self._shred_locked(row[1])

    def _shred_locked(self, xid: str | None) -> None:
        """The shred step (:mod:`.shred`), under the writer lock, then lower the flag."""
        conn = self._conn
        if xid:
            waiting = shred.wait_for_snapshots(conn, xid)
            if waiting:
                raise StoreError(f"transactions (pids {waiting}) hold snapshots older than the forget")
        shred.purge(conn)
        conn.execute("UPDATE erase_state SET shred_pending = false, shred_xid = NULL WHERE k = 0")

    # ================================================================== plumbing
    def _read(self, fn: Callable[[Any], T], *, snapshot: bool = True) -> T:
        """``fn(conn)`` in one snapshot (``snapshot``: a transaction; else one autocommit
        statement). Reads are idempotent: when the connection was lost (a server restart, a
        dropped connection), the handle reconnects and tries once more, then names the server."""
        psycopg = _psycopg()
        with self._lock:
            for attempt in (0, 1):
                conn = self._live()
                try:
                    if not snapshot:
                        return fn(conn)
                    with conn.transaction():
                        return fn(conn)
                except psycopg.Error as exc:
                    if attempt == 0 and (conn.broken or conn.closed):
                        continue
                    raise StoreError(f"cannot read {self._where}: {_cause(exc)}") from None
        raise AssertionError("unreachable")

    def _live(self):
        """The connection, reconnected when the previous one was lost."""
        if self._closed:
            raise StoreError(f"example store {self._where} is closed")
        conn = self._conn
        if conn.closed or conn.broken:
            conn = self._conn = connect(self._dsn)
            _configure(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()

    def __enter__(self) -> "PostgresStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PostgresStore({self._where}, {'closed' if self._closed else 'open'})"


class PgWriteTransaction:
    """The open write transaction of one handle (see :meth:`PostgresStore.transaction`)."""

    def __init__(self, store: PostgresStore, conn):
        self._store = store
        self._conn = conn
        self.base_version, self.dim, self._next_row, self._floor, self._rows_digest = conn.execute(
            "SELECT version, dim, next_row, log_floor, rows_digest FROM erase_state WHERE k = 0").fetchone()
        self.version = self.base_version
        self._ops: list[tuple[int, int]] = []
        self._rekey: set[int] = set()
        self._keys: dict[int, bytes] = {}
        self.posted: list[tuple[int, float]] | None = None
        self.shred_xid: str | None = None  # set when the commit leaves replaced keys to purge

    def changes(self, since: int) -> Changes | None:
        got = self._store._changes_in(self._conn, since)
        if got is None:
            return None
        result, dim, records, keys = got
        result.added = self._store._open_rows(records, keys, dim)
        return result

    def load(self) -> tuple[int, int | None, list[PlainRow]]:
        records = _all_rows(self._conn)
        keys = self._store._bucket_keys(self._conn, None)
        return self.base_version, self.dim, self._store._open_rows(records, keys, self.dim, self._rows_digest)

    def _key_of(self, buckets) -> dict[int, bytes]:
        want = set(buckets) - self._keys.keys()
        if want:
            self._keys.update(self._store._bucket_keys(self._conn, want))
        return self._keys

    def add(self, rows: Sequence[NewRow], dim: int) -> list[int]:
        """Insert sealed rows; returns their row numbers. A bucket's first row creates its key."""
        if not rows:
            return []
        if self.dim is None:
            self._conn.execute("UPDATE erase_state SET dim = %s WHERE k = 0", (dim,))
            self.dim = dim
        elif self.dim != dim:
            raise StoreError(f"vectors have dimension {dim}; the store holds dimension {self.dim}")
        store, size, conn = self._store, self._store._bucket_rows, self._conn
        numbers = list(range(self._next_row, self._next_row + len(rows)))
        self._next_row += len(rows)
        buckets = {n // size for n in numbers}
        keys = self._key_of(buckets)
        created = {b: new_key() for b in sorted(buckets - keys.keys())}
        if created:
            with conn.cursor() as cur:
                cur.executemany("INSERT INTO erase_keys (bucket, key) VALUES (%s, %s)", list(created.items()))
            keys.update(created)
        row_keys = [new_row_key() for _ in rows]
        with conn.cursor() as cur:
            with cur.copy("COPY erase_keywraps (row, wrapped) FROM STDIN") as copy:
                for n, row_key in zip(numbers, row_keys):
                    copy.write_row((n, wrap(keys[n // size], store._uuid, n, n // size, row_key)))
            with cur.copy("COPY erase_examples (row, blob) FROM STDIN") as copy:
                for n, row_key, r in zip(numbers, row_keys, rows):
                    copy.write_row((n, seal(store._uuid, n, row_key, example_id=r.id, payload_json=r.payload_json,
                                            vector=r.vector, id_hash=r.id_hash, example_hash=r.example_hash,
                                            attrs_json=r.attrs_json)))
        self._ops.extend((_OP_ADD, n) for n in numbers)
        return numbers

    def delete(self, row_numbers: Sequence[int]) -> None:
        """Delete rows; the keys of their buckets are replaced before the commit and the old
        ones purged right after it."""
        if not row_numbers:
            return
        wanted = list(row_numbers)
        found = [r for (r,) in self._conn.execute("DELETE FROM erase_examples WHERE row = ANY(%s) RETURNING row",
                                                  (wanted,)).fetchall()]
        if len(found) != len(set(wanted)):
            missing = sorted(set(wanted) - set(found))
            raise StoreError(f"rows {missing[:5]} are not in {self._store._where}; nothing was deleted")
        self._conn.execute("DELETE FROM erase_keywraps WHERE row = ANY(%s)", (wanted,))
        self._rekey.update(r // self._store._bucket_rows for r in found)
        self._ops.extend((_OP_DEL, n) for n in wanted)

    def set_note(self, key: str, value: str) -> None:
        self._conn.execute("INSERT INTO erase_meta (key, value) VALUES (%s, %s)"
                           " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value", (_NOTE + key, value))

    def post_selection(self, picks) -> None:
        """Post the ``erase`` selection of the pool this transaction leaves (with its commit)."""
        self.posted = list(picks)

    def version_after(self) -> int:
        return self.base_version + len(self._ops)

    def audit(self, entry: dict) -> None:
        from ..audit import GENESIS, chain_hash, entry_json

        last = self._conn.execute("SELECT seq, hash FROM erase_audit ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (0, GENESIS) if last is None else (last[0], last[1])
        text = entry_json(entry)
        self._conn.execute("INSERT INTO erase_audit (seq, entry, prev, hash) VALUES (%s, %s, %s, %s)",
                           (seq + 1, text, prev, chain_hash(prev, text)))

    def _rekey_buckets(self) -> None:
        """Give every bucket a deleted row was in a new key, re-wrapping its remaining rows
        (a bucket left empty loses its key)."""
        conn, store, size = self._conn, self._store, self._store._bucket_rows
        buckets = sorted(self._rekey)
        old = dict(self._key_of(buckets))
        unwrap = Unwrapper(store._uuid, old)
        records = conn.execute(
            "SELECT w.row, w.wrapped FROM unnest(%s::bigint[]) AS b(lo)"
            " JOIN erase_keywraps w ON w.row >= b.lo AND w.row < b.lo + %s", ([b * size for b in buckets], size),
            binary=True).fetchall()
        live = {row // size for row, _ in records}
        new = {b: new_key() for b in buckets if b in live}
        rows = [row for row, _ in records]
        wrapped = [wrap(new[row // size], store._uuid, row, row // size, unwrap(row, row // size, bytes(w)))
                   for row, w in records]
        if rows:
            conn.execute("UPDATE erase_keywraps w SET wrapped = v.wrapped FROM unnest(%s::bigint[], %s::bytea[])"
                         " AS v(row, wrapped) WHERE w.row = v.row", (rows, wrapped))
        if new:
            conn.execute("UPDATE erase_keys k SET key = v.key FROM unnest(%s::int[], %s::bytea[]) AS v(bucket, key)"
                         " WHERE k.bucket = v.bucket", (list(new), list(new.values())))
        empty = [b for b in buckets if b not in live]
        if empty:
            conn.execute("DELETE FROM erase_keys WHERE bucket = ANY(%s)", (empty,))
        for b in empty:
            self._keys.pop(b, None)
        self._keys.update(new)

    def _finish(self) -> None:
        """Replace the deleted rows' bucket keys, write the change log and the state row."""
        if not self._ops:
            return
        conn = self._conn
        if self._rekey:
            self._rekey_buckets()
            # the open image holds the deleted rows: its key goes (purged by the shred step)
            conn.execute("DELETE FROM erase_keys WHERE bucket = %s", (IMAGE_BUCKET,))
            conn.execute("DELETE FROM erase_image")
            self.shred_xid = str(conn.execute("SELECT pg_current_xact_id()::xid::text").fetchone()[0])
        first = self.base_version + 1
        with conn.cursor() as cur, cur.copy("COPY erase_changes (seq, op, row) FROM STDIN") as copy:
            for i, (op, row) in enumerate(self._ops):
                copy.write_row((first + i, op, row))
        self.version = self.base_version + len(self._ops)
        floor = self._floor
        if self.version - floor > 2 * LOG_RETAIN:
            floor = self.version - LOG_RETAIN
            conn.execute("DELETE FROM erase_changes WHERE seq <= %s", (floor,))
        try:
            digest = rowset.record_after(self._store._rowset_key(), self._rows_digest,
                                         [row for op, row in self._ops if op == _OP_ADD],
                                         [row for op, row in self._ops if op == _OP_DEL])
        except rowset.RowSetMismatch:
            raise CorruptStoreError(f"{self._store._where} is damaged: its row-set record does not authenticate") from None
        if self.posted is not None:
            self._store._write_board(conn, self.version, self.posted)
        elif self._rekey:  # a deleting transaction that posts nothing leaves no board
            self._store._write_board(conn, self.version, None)
        conn.execute(
            "UPDATE erase_state SET version = %s, next_row = %s, log_floor = %s, rows_digest = %s,"
            " shred_pending = shred_pending OR %s, shred_xid = COALESCE(%s, shred_xid) WHERE k = 0",
            (self.version, self._next_row, floor, digest, self.shred_xid is not None, self.shred_xid))


#: Prefix of application notes in erase_meta.
_NOTE = "note:"


def _all_rows(conn) -> list[tuple]:
    """Every ``(row, wrapped, blob)``, in row order: two sequential scans joined here (a join
    ordered by the server sorts the whole table, spilling to disk past ``work_mem``)."""
    wraps = dict(conn.execute("SELECT row, wrapped FROM erase_keywraps", binary=True).fetchall())
    blobs = conn.execute("SELECT row, blob FROM erase_examples", binary=True).fetchall()
    blobs.sort(key=lambda r: r[0])
    # a row without its wrapped key (an edited database) opens with an empty one: it fails to authenticate
    return [(row, wraps.get(row, b""), blob) for row, blob in blobs]


def _fetch(conn, rows: list[int]) -> list[tuple]:
    if not rows:
        return []
    return conn.execute("SELECT e.row, w.wrapped, e.blob FROM erase_examples e JOIN erase_keywraps w USING (row)"
                        " WHERE e.row = ANY(%s) ORDER BY e.row", (rows,), binary=True).fetchall()


def _config_json(config: dict) -> str:
    if not isinstance(config, dict):
        raise StoreError(f"config must be a dict; got {type(config).__name__}")
    try:
        return json.dumps(config, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"config is not JSON-serialisable: {exc}") from None


def _configure(conn) -> None:
    """Every transaction of a handle reads one snapshot."""
    conn.isolation_level = _psycopg().IsolationLevel.REPEATABLE_READ


def _cause(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def store_exists(dsn: str) -> bool:
    """Whether the DSN's schema has any of the store's tables (a store, or something
    :meth:`PostgresStore.open` rejects): False means a new store may be created there."""
    conn = connect(dsn)
    try:
        return bool(schema.present(conn))
    except _psycopg().Error as exc:
        raise StoreError(f"cannot read {describe(dsn)}: {_cause(exc)}") from None
    finally:
        conn.close()
