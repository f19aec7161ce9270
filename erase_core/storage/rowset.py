"""A keyed digest of the set of rows a store holds, so that a row deleted (or inserted) behind
the library's back, with plain SQL, is caught; each row's own tag cannot show a row that is
no longer there.

Each row number maps to one AES-256 block under a key derived from the store's audit secret
(kept in the key file, never in the database): a keyed pseudo-random function. The digest is
the sum of the blocks of the rows present, lane by lane modulo 2**64, stored with the rows in
the database and updated in the same transaction as they are (only the changed rows are
hashed). Checking it is one AES pass over the row numbers. Without the key no one can compute
a row's term, so a row cannot be taken out of the table and out of the digest consistently;
putting back an older copy of the whole database (rows, digest and version together) is a
restore, not caught here.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Iterable

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

#: The digest of no rows.
EMPTY = "0" * 32


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
