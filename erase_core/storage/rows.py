"""One example row, sealed under its own key (AES-256-GCM, from the ``cryptography`` package).

Plaintext layout: ``<QQIII`` header (id hash, example hash, id, payload and attributes
lengths), the float32 vector, the UTF-8 id, the UTF-8 payload JSON, the UTF-8 attributes JSON
(subject and metadata; empty when the example has none). The associated data binds the
ciphertext to its store and row number, so a row cannot be moved or swapped unnoticed, and
the GCM tag is the row's checksum: any change to the stored bytes (or a wrong or zeroed key)
fails to decrypt.

Each key seals exactly one message, so the nonce is fixed; re-sealing a row always uses a new key.
"""

from __future__ import annotations

import os
import struct
from typing import NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import CorruptStoreError

_HEADER = struct.Struct("<QQIII")
_NONCE = bytes(12)
_ROW = struct.Struct("<q")


def new_key() -> bytes:
    return os.urandom(32)


class PlainRow(NamedTuple):
    """A decrypted row. ``vector`` is raw little-endian float32 bytes."""

    row: int
    id: str
    payload_json: str
    vector: bytes
    id_hash: int
    example_hash: int
    attrs_json: str = ""


def seal(store_uuid: bytes, row: int, key: bytes, *, example_id: str, payload_json: str, vector: bytes,
         id_hash: int, example_hash: int, attrs_json: str = "") -> bytes:
    ident = example_id.encode("utf-8")
    payload = payload_json.encode("utf-8")
    attrs = attrs_json.encode("utf-8")
    plain = b"".join((_HEADER.pack(id_hash, example_hash, len(ident), len(payload), len(attrs)), vector, ident,
                      payload, attrs))
    return AESGCM(key).encrypt(_NONCE, plain, store_uuid + _ROW.pack(row))


def open_sealed(store_uuid: bytes, row: int, key: bytes, blob: bytes, vector_bytes: int) -> PlainRow:
    """Decrypt and parse one row; :class:`CorruptStoreError` if it does not authenticate."""
    return open_many(store_uuid, [(row, key, blob)], vector_bytes)[0]


def open_many(store_uuid: bytes, sealed, vector_bytes: int) -> list[PlainRow]:
    """Decrypt and parse ``(row, key, blob)`` triples (one tight loop: open reads 10^5 of them)."""
    out: list[PlainRow] = []
    append = out.append
    make = PlainRow._make  # tuple.__new__: no Python-level __new__ per row
    pack_row = _ROW.pack
    unpack = _HEADER.unpack_from
    start = _HEADER.size
    v_end = start + vector_bytes
    for row, key, blob in sealed:
        try:
            plain = AESGCM(key).decrypt(_NONCE, blob, store_uuid + pack_row(row))
        except (InvalidTag, ValueError):
            raise CorruptStoreError(f"row {row} does not authenticate (damaged, edited, or its key is gone)") from None
        id_hash, example_hash, n_id, n_payload, n_attrs = unpack(plain)
        p_end = v_end + n_id + n_payload
        if len(plain) != p_end + n_attrs:
            raise CorruptStoreError(f"row {row} has a malformed layout")
        append(make((row, plain[v_end : v_end + n_id].decode("utf-8"), plain[v_end + n_id : p_end].decode("utf-8"),
                     plain[start:v_end], id_hash, example_hash, plain[p_end:].decode("utf-8") if n_attrs else "")))
    return out
