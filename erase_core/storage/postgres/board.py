"""The posted selection of a PostgreSQL store: the ``erase`` set (row numbers and scores) the
writer of a version computed, so that replicas catching up need not redo its clustering update.

It is kept in ``erase_state.board``, sealed (AES-256-GCM, random nonce, bound to the store and
the version) under the *board key*, row -2 of ``erase_keys``. Every post and every deleting
transaction writes a new board key (a deleting transaction that posts nothing leaves no board),
so an old board, which may name a forgotten row and its score, is under a key that the shred
step purges with the replaced bucket keys.
"""

from __future__ import annotations

import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

#: The row of ``erase_keys`` that holds the board's key.
BOARD_BUCKET = -2
_HEAD = struct.Struct("<QI")
_ENTRY = struct.Struct("<qd")


def _aad(store_uuid: bytes, version: int) -> bytes:
    return store_uuid + b"board" + struct.pack("<Q", version)


def seal_board(key: bytes, store_uuid: bytes, version: int, picks) -> bytes:
    plain = _HEAD.pack(version, len(picks)) + b"".join(_ENTRY.pack(int(r), float(s)) for r, s in picks)
    nonce = os.urandom(12)
    return nonce + AESGCM(key).encrypt(nonce, plain, _aad(store_uuid, version))


def open_board(key: bytes, store_uuid: bytes, version: int, sealed: bytes) -> list[tuple[int, float]] | None:
    """The entries of a board posted for ``version``; None when it does not open (another
    version, a replaced key, damage): the reader then updates its clustering itself."""
    try:
        plain = AESGCM(key).decrypt(sealed[:12], sealed[12:], _aad(store_uuid, version))
    except (InvalidTag, ValueError):
        return None
    posted_version, count = _HEAD.unpack_from(plain)
    if posted_version != version or len(plain) != _HEAD.size + count * _ENTRY.size:
        return None
    return [_ENTRY.unpack_from(plain, _HEAD.size + i * _ENTRY.size) for i in range(count)]
