"""The key file: one 32-byte key per stored example, in fixed slots overwritten in place.

Crypto-shredding: every example row in the database is encrypted under its own random key,
and the keys live here, never in the database or its journal. Forgetting an example zeroes
its key slot in place (``pwrite`` + ``fsync``); every copy of its ciphertext that SQLite may
still hold (freed pages, stale cells left by b-tree rebalancing, the WAL, a backup of the
database) is then noise.

Layout::

    [0, 4096)        header: magic, format, store uuid, published version, in-flight flag,
                     the open image's key (image.py; zero when there is no readable image),
                     the audit secret (audit.py), the posted selection (below)
    [4096 + 32*s)    slot s: the key of the row that owns slot s, or 32 zero bytes

The header also carries the store's *published version*: the change counter that writers
bump after each committed transaction. Readers map the header and compare one integer with
the version they caught up to, so a freshness check costs a memory read, not a query.

Writers serialise on an exclusive ``flock`` of this file, held around the whole database
transaction, so published versions only ever grow.

The header also carries the *posted selection*: the ``erase`` strategy's fixed set (store row
numbers and scores, no ids or content) that the writer of a version computed. A handle that
catches up to that version can answer ``select()`` from it without redoing the writer's
clustering update first (which can cost tens of milliseconds when a forget moves a
centroid). It is written in place, with a digest that makes a torn or stale read fail,
and zeroed by any deleting transaction that does not post a new one.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import mmap
import os
import struct
import threading
from pathlib import Path

from .errors import StoreError

MAGIC = b"ERASEKEY"
#: 2: the audit secret lives in the header (format 1 kept it in the database; see migration
#: in example_store.py, the only code that opens a format-1 file).
FORMAT = 2
HEADER_SIZE = 4096
KEY_SIZE = 32
ZERO_KEY = bytes(KEY_SIZE)

# magic(8) format(u32) pad(u32) uuid(16) | published version at 32 (u64) | shred_pending at 40 (u64)
_HEAD = struct.Struct("<8sII16s")
_VERSION_AT = 32
_SHRED_AT = 40
_IMAGE_KEY_AT = 64
_AUDIT_KEY_AT = 96
_U64 = struct.Struct("<Q")
# posted selection: version(u64) count(u32) pad(u32) digest(16) | count x (row u64, score f64)
_BOARD_AT = 128
_BOARD_HEAD = struct.Struct("<QII16s")
_BOARD_ENTRY = struct.Struct("<Qd")
#: The most entries a posted selection holds (a larger k is not posted: handles recompute).
BOARD_CAPACITY = (HEADER_SIZE - _BOARD_AT - _BOARD_HEAD.size) // _BOARD_ENTRY.size


class KeyFile:
    """Fixed-slot key storage plus the published change counter of one store."""

    def __init__(self, path: Path, fd: int, store_uuid: bytes, fmt: int = FORMAT):
        self.path = path
        self._fd = fd
        self.store_uuid = store_uuid
        self.format = fmt
        self._header = mmap.mmap(fd, HEADER_SIZE, prot=mmap.PROT_READ)
        self._lock_depth = 0
        self._thread_lock = threading.RLock()

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    def create(cls, path: Path, store_uuid: bytes, audit_secret: bytes) -> "KeyFile":
        """Create a new, empty key file holding the store's audit secret (fails if one exists)."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StoreError(f"cannot create key file {path}: {exc}") from None
        try:
            header = bytearray(HEADER_SIZE)
            _HEAD.pack_into(header, 0, MAGIC, FORMAT, 0, store_uuid)
            header[_AUDIT_KEY_AT : _AUDIT_KEY_AT + KEY_SIZE] = audit_secret
            os.pwrite(fd, bytes(header), 0)
            os.fsync(fd)
        except OSError as exc:
            os.close(fd)
            os.unlink(path)
            raise StoreError(f"cannot write key file {path}: {exc}") from None
        return cls(path, fd, store_uuid)

    @classmethod
    def open(cls, path: Path, store_uuid: bytes, formats: tuple[int, ...] = (FORMAT,)) -> "KeyFile":
        """Open the key file of the store whose uuid is ``store_uuid``; nothing is written.
        ``formats``: the formats accepted (an older one only by the code that migrates it)."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            raise StoreError(
                f"the key file {path} is missing: without it no example of this store can be read "
                "(if it was deleted on purpose, every example in the store has been shredded)"
            ) from None
        except OSError as exc:
            raise StoreError(f"cannot open key file {path}: {exc}") from None
        try:
            head = os.pread(fd, _HEAD.size, 0)
            size = os.fstat(fd).st_size
        except OSError as exc:
            os.close(fd)
            raise StoreError(f"cannot read key file {path}: {exc}") from None
        if len(head) < _HEAD.size or size < HEADER_SIZE:
            os.close(fd)
            raise StoreError(f"{path} is not an ERASE key file (too short)")
        magic, fmt, _, uuid = _HEAD.unpack(head)
        if magic != MAGIC:
            os.close(fd)
            raise StoreError(f"{path} is not an ERASE key file (bad magic)")
        if fmt not in formats:
            os.close(fd)
            raise StoreError(f"the key file {path} has format {fmt}; its database expects format {formats[-1]}")
        if uuid != store_uuid:
            os.close(fd)
            raise StoreError(f"the key file {path} belongs to another store (uuid mismatch)")
        return cls(path, fd, store_uuid, fmt)

    def close(self) -> None:
        with self._thread_lock:
            if self._fd < 0:
                return
            self._header.close()
            os.close(self._fd)
            self._fd = -1

    # ------------------------------------------------------------------ counter
    def published_version(self) -> int:
        """The last version a writer published (a read of the mapped header)."""
        return _U64.unpack_from(self._header, _VERSION_AT)[0]

    def publish(self, version: int) -> None:
        """Publish ``version`` (caller holds the write lock, so versions only grow); a write
        transaction that changed nothing writes nothing."""
        if version > self.published_version():
            os.pwrite(self._fd, _U64.pack(version), _VERSION_AT)

    def shred_pending(self) -> bool:
        """Whether a write is in flight, or was interrupted after raising the flag: raised
        before a transaction writes any key or commits, lowered once it has zeroed the deleted
        rows' keys and published its version. While it is raised, the published version may
        lag the database (readers ask the database instead)."""
        return _U64.unpack_from(self._header, _SHRED_AT)[0] != 0

    def set_shred_pending(self, pending: bool) -> None:
        if self.shred_pending() != pending:  # the header map shows our own writes
            os.pwrite(self._fd, _U64.pack(1 if pending else 0), _SHRED_AT)

    # ------------------------------------------------------------------ the open image's key
    def image_key(self) -> bytes:
        """The key of the store's open image (zero bytes: none is readable)."""
        return bytes(self._header[_IMAGE_KEY_AT : _IMAGE_KEY_AT + KEY_SIZE])

    def set_image_key(self, key: bytes) -> None:
        """Store the image's key (caller holds the write lock; not durable until :meth:`sync`)."""
        os.pwrite(self._fd, key, _IMAGE_KEY_AT)

    def shred_image_key(self) -> None:
        """Zero the image's key in place (with the forgotten rows' keys, before their sync)."""
        if self.image_key() != ZERO_KEY:
            os.pwrite(self._fd, ZERO_KEY, _IMAGE_KEY_AT)

    # ------------------------------------------------------------------ the audit secret
    def audit_secret(self) -> bytes:
        """The key of the audit log's keyed hashes (kept here, not in the database, so a copy
        of the database alone cannot test guesses against the log)."""
        return bytes(self._header[_AUDIT_KEY_AT : _AUDIT_KEY_AT + KEY_SIZE])

    def install_audit_secret(self, secret: bytes) -> None:
        """Migration from format 1: store the secret and mark the file format 2, durably
        (caller holds the write lock)."""
        os.pwrite(self._fd, secret, _AUDIT_KEY_AT)
        os.fsync(self._fd)
        os.pwrite(self._fd, struct.pack("<I", FORMAT), 8)
        os.fsync(self._fd)
        self.format = FORMAT

    # ------------------------------------------------------------------ the posted selection
    def _board_digest(self, version: int, body: bytes) -> bytes:
        return hashlib.blake2b(self.store_uuid + _U64.pack(version) + body, digest_size=16).digest()

    def post_selection(self, version: int, picks) -> bool:
        """Post the fixed selection of ``version``: ``(row, score)`` pairs in order (caller
        holds the write lock). False, with the board cleared, when it does not fit."""
        picks = list(picks)
        if len(picks) > BOARD_CAPACITY:
            self.clear_selection()
            return False
        body = b"".join(_BOARD_ENTRY.pack(int(r), float(s)) for r, s in picks)
        head = _BOARD_HEAD.pack(version, len(picks), 0, self._board_digest(version, body))
        os.pwrite(self._fd, head + body, _BOARD_AT)  # one write; a torn read fails the digest
        return True

    def posted_selection(self, version: int) -> list[tuple[int, float]] | None:
        """The selection posted for ``version``, or None (none, another version, torn or damaged)."""
        head = bytes(self._header[_BOARD_AT : _BOARD_AT + _BOARD_HEAD.size])  # a copy: checked as read
        posted, count, _, digest = _BOARD_HEAD.unpack(head)
        if posted != version or version == 0 or count > BOARD_CAPACITY:
            return None
        at = _BOARD_AT + _BOARD_HEAD.size
        body = bytes(self._header[at : at + count * _BOARD_ENTRY.size])
        if not hmac.compare_digest(digest, self._board_digest(version, body)):
            return None
        return [(int(r), float(s)) for r, s in _BOARD_ENTRY.iter_unpack(body)]

    def clear_selection(self) -> None:
        """Zero the posted selection in place (a deleting transaction that posts none)."""
        if any(self._header[_BOARD_AT : _BOARD_AT + _BOARD_HEAD.size]):
            os.pwrite(self._fd, bytes(HEADER_SIZE - _BOARD_AT), _BOARD_AT)

    # ------------------------------------------------------------------ locking
    def lock(self) -> "_WriteLock":
        """Exclusive writer lock (re-entrant within this object), as a context manager."""
        return _WriteLock(self)

    def try_lock(self) -> bool:
        """Take the writer lock if no writer (thread or process) holds it; never waits.
        True: the caller holds it and must call :meth:`unlock`."""
        if not self._thread_lock.acquire(blocking=False):
            return False
        try:
            if self._lock_depth == 0:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held by another handle (EWOULDBLOCK), or this one is closing
            self._thread_lock.release()
            return False
        self._lock_depth += 1
        return True

    def unlock(self) -> None:
        """Release a lock taken with :meth:`try_lock`."""
        _WriteLock(self).__exit__(None, None, None)

    # ------------------------------------------------------------------ keys
    def n_slots(self) -> int:
        return max(0, (os.fstat(self._fd).st_size - HEADER_SIZE) // KEY_SIZE)

    def read(self, slots) -> list[bytes]:
        """Keys of ``slots`` (zero bytes for a shredded or unwritten slot)."""
        slots = list(slots)
        if not slots:
            return []
        lo, hi = min(slots), max(slots)
        if hi - lo < 4 * len(slots) + 64:  # one read of the span beats many small ones
            buf = os.pread(self._fd, (hi - lo + 1) * KEY_SIZE, HEADER_SIZE + lo * KEY_SIZE)
            out = []
            for s in slots:
                off = (s - lo) * KEY_SIZE
                key = buf[off : off + KEY_SIZE]
                out.append(key if len(key) == KEY_SIZE else ZERO_KEY)
            return out
        out = []
        for s in slots:
            key = os.pread(self._fd, KEY_SIZE, HEADER_SIZE + s * KEY_SIZE)
            out.append(key if len(key) == KEY_SIZE else ZERO_KEY)
        return out

    def read_all(self) -> bytes:
        """Every slot, concatenated (slot s at ``[32 s, 32 s + 32)``)."""
        size = os.fstat(self._fd).st_size - HEADER_SIZE
        return os.pread(self._fd, max(0, size), HEADER_SIZE) if size > 0 else b""

    def write(self, slots, keys) -> None:
        """Store keys in slots (not yet durable: call :meth:`sync`)."""
        for s, key in zip(slots, keys):
            os.pwrite(self._fd, key, HEADER_SIZE + s * KEY_SIZE)

    def shred(self, slots) -> None:
        """Overwrite slots with zeros in place (not yet durable: call :meth:`sync`)."""
        for s in slots:
            os.pwrite(self._fd, ZERO_KEY, HEADER_SIZE + s * KEY_SIZE)

    def truncate(self, n_slots: int) -> None:
        """Drop slots from ``n_slots`` on (after zeroing them, so no key survives in the file)."""
        have = self.n_slots()
        if have > n_slots:
            os.pwrite(self._fd, bytes((have - n_slots) * KEY_SIZE), HEADER_SIZE + n_slots * KEY_SIZE)
            os.fsync(self._fd)
            os.ftruncate(self._fd, HEADER_SIZE + n_slots * KEY_SIZE)

    def sync(self) -> None:
        os.fsync(self._fd)


class _WriteLock:
    def __init__(self, keys: KeyFile):
        self._keys = keys

    def __enter__(self) -> KeyFile:
        k = self._keys
        k._thread_lock.acquire()
        try:
            if k._lock_depth == 0:
                fcntl.flock(k._fd, fcntl.LOCK_EX)
            k._lock_depth += 1
        except BaseException:
            k._thread_lock.release()
            raise
        return k

    def __exit__(self, *exc) -> None:
        k = self._keys
        try:
            k._lock_depth -= 1
            if k._lock_depth == 0 and k._fd >= 0:
                fcntl.flock(k._fd, fcntl.LOCK_UN)
        finally:
            k._thread_lock.release()
