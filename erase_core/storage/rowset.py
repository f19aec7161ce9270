"""A keyed digest of the set of rows a store holds, so that a row deleted (or inserted) behind
the library's back, with plain SQL, is caught; each row's own tag cannot show a row that is
no longer there.

Each row number maps to one AES-256 block under a key derived from the store's audit secret
(kept in the key file, never in the database): a keyed pseudo-random function. The digest is
the sum of the blocks of the rows present, lane by lane modulo 2**64. It is stored with the
rows in the database, with the number of rows and an HMAC over both (a *seal*), and updated
in the same transaction as the rows (only the changed rows are hashed). Without the key no one
can compute a row's term or the seal, so a row cannot be taken out of the table and out of the
record consistently; putting back an older copy of the whole database (rows, record and
version together) is a restore, not caught here.

Two checks: a cheap one at every open (the seal, and the row count against SQLite's count
of the table: a deleted or inserted row changes it), and the full one wherever every row is
read anyway (a long open, ``verify()``): the digest of the row numbers present.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Iterable

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

#: The digest of no rows.
EMPTY = "0" * 32


class RowSetMismatch(ValueError):
    """The rows present do not match the sealed record (raised by :func:`check_count`, :func:`check_rows`)."""


def rowset_key(audit_secret: bytes) -> bytes:
    """The digest's key, derived from the store's audit secret (one secret to keep)."""
    return hmac.new(audit_secret, b"erase row-set digest", hashlib.sha256).digest()


def _sum(key: bytes, rows: Iterable[int]) -> np.ndarray:
    numbers = rows if isinstance(rows, np.ndarray) else np.asarray(list(rows), dtype=np.int64)
    if not len(numbers):
        return np.zeros(2, dtype=np.uint64)
    blocks = np.zeros((len(numbers), 2), dtype="<u8")
    blocks[:, 0] = numbers.astype(np.uint64)
    # ECB on purpose: each block is one distinct row number, enciphered on its own (a PRF)
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305
    out = encryptor.update(blocks.tobytes()) + encryptor.finalize()
    with np.errstate(over="ignore"):
        return np.frombuffer(out, dtype="<u8").reshape(-1, 2).sum(axis=0, dtype=np.uint64)


def _parse(digest: str) -> np.ndarray:
    return np.array([int(digest[:16], 16), int(digest[16:], 16)], dtype=np.uint64)


def _format(lanes: np.ndarray) -> str:
    return f"{int(lanes[0]):016x}{int(lanes[1]):016x}"


def of_rows(key: bytes, rows: Iterable[int]) -> str:
    """The digest of exactly these rows."""
    return _format(_sum(key, rows))


def updated(digest: str, key: bytes, added: Iterable[int], removed: Iterable[int]) -> str:
    """``digest`` after adding rows ``added`` and removing rows ``removed``."""
    with np.errstate(over="ignore"):
        return _format(_parse(digest) + _sum(key, added) - _sum(key, removed))


def seal(key: bytes, digest: str, count: int) -> str:
    """The stored record: digest, row count and an HMAC over both."""
    body = f"{digest}.{int(count)}"
    return f"{body}.{hmac.new(key, body.encode(), hashlib.sha256).hexdigest()[:32]}"


def unseal(key: bytes, record: str | None) -> tuple[str, int]:
    """``(digest, count)`` of a record whose HMAC checks; :class:`RowSetMismatch` otherwise."""
    try:
        digest, count, mac = str(record).split(".")
        ok = hmac.compare_digest(mac, hmac.new(key, f"{digest}.{count}".encode(), hashlib.sha256).hexdigest()[:32])
        if ok and len(digest) == 32:
            return digest, int(count)
    except ValueError:
        pass
    raise RowSetMismatch("the row-set record does not authenticate (edited, or from another store)")


def check_count(key: bytes, record: str | None, count: int) -> None:
    """The cheap check: the record authenticates and holds ``count`` rows."""
    if unseal(key, record)[1] != count:
        raise RowSetMismatch("the number of rows does not match the row-set record")


def check_rows(key: bytes, record: str | None, rows) -> None:
    """The full check: the record authenticates and its digest is that of ``rows``."""
    rows = list(rows)
    digest, count = unseal(key, record)
    if count != len(rows) or digest != of_rows(key, rows):
        raise RowSetMismatch("the rows present do not match the row-set record")


def record_after(key: bytes, record: str | None, added, removed) -> str:
    """The record after adding ``added`` and removing ``removed`` row numbers (it must authenticate)."""
    added, removed = list(added), list(removed)
    digest, count = unseal(key, record)
    return seal(key, updated(digest, key, added, removed), count + len(added) - len(removed))
