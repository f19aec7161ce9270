"""One example row, sealed under its own key (AES-256-GCM, from the ``cryptography`` package).

Plaintext layout: ``<QQII`` header (id hash, example hash, id length, payload length), the
float32 vector, the UTF-8 id, the UTF-8 payload JSON. The associated data binds the
ciphertext to its store and row number, so a row cannot be moved or swapped unnoticed, and
the GCM tag is the row's checksum: any change to the stored bytes (or a wrong or zeroed key)
fails to decrypt.

Each key seals exactly one message, so the nonce is fixed; re-sealing a row always uses a new key.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import CorruptStoreError

_HEADER = struct.Struct("<QQII")
_NONCE = bytes(12)
_ROW = struct.Struct("<q")


def new_key() -> bytes:
    return os.urandom(32)


@dataclass(frozen=True)
class PlainRow:
    """A decrypted row. ``vector`` is raw little-endian float32 bytes."""

    row: int
    id: str
    payload_json: str
    vector: bytes
    id_hash: int
    example_hash: int


def seal(store_uuid: bytes, row: int, key: bytes, *, example_id: str, payload_json: str, vector: bytes,
         id_hash: int, example_hash: int) -> bytes:
    ident = example_id.encode("utf-8")
    payload = payload_json.encode("utf-8")
    plain = b"".join((_HEADER.pack(id_hash, example_hash, len(ident), len(payload)), vector, ident, payload))
    return AESGCM(key).encrypt(_NONCE, plain, store_uuid + _ROW.pack(row))


def open_sealed(store_uuid: bytes, row: int, key: bytes, blob: bytes, vector_bytes: int) -> PlainRow:
    """Decrypt and parse one row; :class:`CorruptStoreError` if it does not authenticate."""
    try:
        plain = AESGCM(key).decrypt(_NONCE, blob, store_uuid + _ROW.pack(row))
    except InvalidTag:
        raise CorruptStoreError(f"row {row} does not authenticate (damaged, edited, or its key is gone)") from None
    id_hash, example_hash, n_id, n_payload = _HEADER.unpack_from(plain)
    start = _HEADER.size
    if len(plain) != start + vector_bytes + n_id + n_payload:
        raise CorruptStoreError(f"row {row} has a malformed layout")
    v_end = start + vector_bytes
    return PlainRow(
        row=row,
        id=plain[v_end : v_end + n_id].decode("utf-8"),
        payload_json=plain[v_end + n_id :].decode("utf-8"),
        vector=plain[start:v_end],
        id_hash=id_hash,
        example_hash=example_hash,
    )
