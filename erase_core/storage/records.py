"""Sealed records: small key-value entries an application keeps beside the rows they describe.

A framework's bookkeeping about the examples (LangChain's record manager: each document's
hash and source; LlamaIndex's docstore: document hashes and texts) is itself about the
examples, so it lives in the store under the same rules as a row:

* **Nothing in clear.** A record is found by its *name*, a keyed hash (HMAC-SHA256 under a
  key derived from the store's audit secret, which lives in the key file) of its namespace and
  key; its namespace column is a keyed hash too. The key and value are sealed with AES-256-GCM
  under the record's own random key, kept in a key-file slot like a row's; associated data =
  store uuid ‖ name, so a record cannot be moved to another name or store.
* **Tagged.** A record may carry a tag (a keyed hash too) to read the records of one group
  without decrypting the others.
* **Bound to rows.** A record may be *bound* to a string ``b`` (stored as a keyed hash): it is
  deleted, in the same transaction, with any row whose id or subject is ``b``. So whoever
  forgets the rows (any handle, the CLI, a subject or filter forget) also removes what the
  framework recorded about them, and the two cannot drift apart.
* **Shredded like rows.** Replacing or deleting a record frees its key slot, which is zeroed
  right after the commit; a copy of the ciphertext SQLite keeps (WAL, freed pages) is noise.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import CorruptStoreError

_NONCE = bytes(12)
_LABEL = b"erase-records-v1"


def records_key(audit_secret: bytes) -> bytes:
    """The key of the records' keyed hashes (derived from the store's audit secret)."""
    return hmac.new(audit_secret, _LABEL, hashlib.sha256).digest()


def _mac(key: bytes, tag: bytes, *parts: str) -> bytes:
    mac = hmac.new(key, tag, hashlib.sha256)
    for part in parts:
        raw = part.encode("utf-8")
        mac.update(len(raw).to_bytes(8, "little"))
        mac.update(raw)
    return mac.digest()


def name_hash(key: bytes, namespace: str, record_key: str) -> bytes:
    return _mac(key, b"name", namespace, record_key)


def namespace_hash(key: bytes, namespace: str) -> bytes:
    return _mac(key, b"ns", namespace)


def bind_hash(key: bytes, value: str) -> bytes:
    """The binding of a record to the rows whose id or subject is ``value``."""
    return _mac(key, b"bind", value)


def tag_hash(key: bytes, value: str) -> bytes:
    """A record's tag (a group its owner reads records by, e.g. a document's source)."""
    return _mac(key, b"tag", value)


def seal_record(store_uuid: bytes, name: bytes, slot_key: bytes, record_key: str, value: str) -> bytes:
    plain = json.dumps([record_key, value], ensure_ascii=False).encode("utf-8")
    return AESGCM(slot_key).encrypt(_NONCE, plain, store_uuid + b"record" + name)


def open_record(store_uuid: bytes, name: bytes, slot_key: bytes, blob: bytes) -> tuple[str, str]:
    """``(key, value)`` of a sealed record; :class:`CorruptStoreError` if it does not authenticate."""
    try:
        plain = AESGCM(slot_key).decrypt(_NONCE, blob, store_uuid + b"record" + name)
    except (InvalidTag, ValueError):
        raise CorruptStoreError("a record does not authenticate (damaged, edited, or its key is gone)") from None
    key, value = json.loads(plain)
    return key, value
