"""Where the row keys of a PostgreSQL store live: wrapped under bucket keys.

Each row is sealed under its own random key (:mod:`..rows`, as in the SQLite store). That key
is stored *wrapped* (AES-256-GCM, random nonce) under the key of the row's bucket (row numbers
``b * BUCKET_ROWS`` to ``(b + 1) * BUCKET_ROWS - 1``) in ``erase_keywraps``, and the bucket
keys live in one small table, ``erase_keys`` (one row per bucket with rows, 32 bytes each).

Why: PostgreSQL never overwrites in place. A deleted or updated value stays in its dead tuple
until VACUUM, in WAL segments, on standbys and in base backups. So a deleted row key cannot be
destroyed where it sits; instead a forget replaces the key of every bucket it touched and
re-wraps that bucket's surviving rows (at most :data:`BUCKET_ROWS`, whatever the store's
size), so every copy of the forgotten row's wrapped key, wherever PostgreSQL keeps it, is
under a bucket key that no longer exists. Only the tiny key table must then be purged for real:
rewritten (``VACUUM FULL``) and its WAL retired (``pg_switch_wal()`` + ``CHECKPOINT`` with
``wal_recycle = off``): see :mod:`.shred`.
"""

from __future__ import annotations

import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import CorruptStoreError

#: Rows per bucket of a new store (fixed at creation, stored in ``erase_meta``).
BUCKET_ROWS = 128
#: The row of ``erase_keys`` that holds the audit secret (never rotated).
AUDIT_BUCKET = -1
_AAD = struct.Struct("<qi")
_NONCE_BYTES = 12


def new_key() -> bytes:
    return os.urandom(32)


def wrap(bucket_key: bytes, store_uuid: bytes, row: int, bucket: int, row_key: bytes) -> bytes:
    """``row_key`` sealed under ``bucket_key``, bound to its store, row and bucket (60 bytes)."""
    nonce = os.urandom(_NONCE_BYTES)
    return nonce + AESGCM(bucket_key).encrypt(nonce, row_key, store_uuid + _AAD.pack(row, bucket))


class Unwrapper:
    """Unwraps many row keys under a set of bucket keys (one cipher object per bucket)."""

    def __init__(self, store_uuid: bytes, bucket_keys: dict[int, bytes]):
        self._uuid = store_uuid
        self._ciphers = {b: AESGCM(k) for b, k in bucket_keys.items()}

    def __call__(self, row: int, bucket: int, wrapped: bytes) -> bytes:
        cipher = self._ciphers.get(bucket)
        if cipher is None:
            raise CorruptStoreError(f"row {row} names bucket {bucket}, which has no key")
        try:
            return cipher.decrypt(wrapped[:_NONCE_BYTES], wrapped[_NONCE_BYTES:], self._uuid + _AAD.pack(row, bucket))
        except (InvalidTag, ValueError):
            raise CorruptStoreError(f"the key of row {row} does not authenticate (damaged, or its bucket key is gone)") from None
