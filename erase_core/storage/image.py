"""The open image: every row of a store at one version, in one file, so a handle opens fast.

Opening a store the long way decrypts every row under its own key (one AES-GCM call and a
Python tuple per row: about a second per 100k rows on a laptop core) and then refits. The
image holds the same rows as one encrypted file, ``PATH.image``, written by a handle that
did open the long way; the next ``open`` reads it with a few large reads and decrypts, then
replays the change log from the image's version (the rows added since).

Crypto-shredding covers it like the rows: the image is sealed under its own random key,
which lives in the key file's header, never in the image. Any transaction that deletes a row
zeroes that key in the same key-file write and ``fsync`` as the rows' keys, so an image that
holds a forgotten example is noise from the moment its forget returns; the next long open
writes a new one. The key is set only under the writer lock and only while the store is still
at the image's version, so no image that predates a forget can ever become readable again.

A missing, damaged, stale or unreadable image is never an error: the handle opens the long
way. Format (plaintext, little-endian): ``b"ERASEIMG"``, u32 format, u32 header length, a JSON
header (``n``, ``dim``, section sizes), then the sections ``rows`` (i8), ``id_hash`` (u8),
``example_hash`` (u8), ``vectors`` (f4, n x dim), the UTF-8 ids as a JSON list, a JSON
object of the attributes of the rows that have any, and the fitted clustering as the bytes
the clustering serialised itself to (empty for strategies without one; the image does not
read them: :meth:`~erase_core.quantized_kmeans.FittedState.to_bytes` is their format), so an
open installs the fit instead of rerunning it
(:meth:`~erase_core.quantized_kmeans.QuantizedKMeans.fit` with ``state``). An image of an
older format (3 kept the clustering's arrays as two sections of its own) is ignored: the handle
opens the long way and writes a new one. No pickle anywhere.

Payloads are not in the image: they can be large (kilobytes each) and a handle needs only the
few it returns, so it reads those from their rows when first asked (:class:`~erase_core.
payload_texts.PayloadTexts`). The image stays the size of the vectors whatever the payloads.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .rows import PlainRow

__all__ = ["IMAGE_MIN_ROWS", "ImageData", "image_min_rows", "image_path", "pack_image", "read_image_file", "seal_image", "write_image_file"]

#: Stores with fewer rows open fast enough the long way; no image is written for them
#: (``ERASE_IMAGE_MIN_ROWS`` in the environment overrides it, e.g. for tests).
IMAGE_MIN_ROWS = 5_000
_MAGIC = b"ERASEIMG"
_FORMAT = 4
_SECTIONS = 7
_FILE_MAGIC = b"ERASE-IMAGE-1\n\x00\x00"
_PREFIX = struct.Struct("<8sII")
_FILE_HEAD = struct.Struct("<16sQQ")  # magic, version, chunk count
_LEN = struct.Struct("<Q")
_TAG = 16  # bytes of a GCM tag
#: Plaintext bytes per AES-GCM message (one nonce each, under one key used for this image only).
_CHUNK = (1 << 31) - (1 << 20)  # AES-GCM in `cryptography` takes at most 2**31 - 1 bytes per message


def image_min_rows() -> int:
    """The row count from which a long open writes an image."""
    text = os.environ.get("ERASE_IMAGE_MIN_ROWS", "").strip()
    try:
        return int(text) if text else IMAGE_MIN_ROWS
    except ValueError:
        return IMAGE_MIN_ROWS


def image_path(store_path: Path) -> Path:
    return store_path.with_name(store_path.name + ".image")


@dataclass
class ImageData:
    """The rows of a store at ``version`` without their payloads, as arrays (row order)."""

    version: int
    dim: int
    rows: np.ndarray
    id_hash: np.ndarray
    example_hash: np.ndarray
    vectors: np.ndarray
    ids: list[str]
    attrs: dict[str, str]
    #: The clustering's serialised state, as given to :func:`pack_image` (None: no clustering).
    model: memoryview | None = None

    def __len__(self) -> int:
        return len(self.ids)


def pack_image(rows: Sequence[PlainRow], dim: int, model: Any = None) -> bytes:
    """The plaintext image of ``rows`` (decrypted rows, in row order; payloads left out) and of
    the clustering fitted on them in that order: ``model`` is its serialised state, bytes or
    an object that gives them (``bytes(model)``, e.g. a ``FittedState``); None for no clustering."""
    n = len(rows)
    model_bytes = b"" if model is None else bytes(model)
    sections = [
        np.fromiter((r.row for r in rows), dtype="<i8", count=n).tobytes(),
        np.fromiter((r.id_hash for r in rows), dtype="<u8", count=n).tobytes(),
        np.fromiter((r.example_hash for r in rows), dtype="<u8", count=n).tobytes(),
        b"".join(r.vector for r in rows),
        json.dumps([r.id for r in rows], ensure_ascii=False).encode("utf-8"),
        json.dumps({r.id: r.attrs_json for r in rows if r.attrs_json}, ensure_ascii=False).encode("utf-8"),
        model_bytes,
    ]
    if len(sections[3]) != 4 * n * dim:
        raise ValueError("image rows do not all have the store's dimension")
    header = json.dumps({"n": n, "dim": dim, "sizes": [len(s) for s in sections]}).encode("utf-8")
    header += b" " * (-len(header) % 8)  # the arrays that follow start 8-byte aligned
    return b"".join([_PREFIX.pack(_MAGIC, _FORMAT, len(header)), header, *sections])


def _aad(store_uuid: bytes, version: int, chunk: int, n_chunks: int) -> bytes:
    return b"erase-image" + store_uuid + struct.pack("<QQQ", version, chunk, n_chunks)


def _nonce(chunk: int) -> bytes:
    return chunk.to_bytes(12, "little")


def seal_image(plain: bytes, key: bytes, store_uuid: bytes, version: int) -> list[bytes]:
    """The image file's bytes, as pieces to write in order."""
    n_chunks = max(1, -(-len(plain) // _CHUNK))
    aead = AESGCM(key)
    view = memoryview(plain)
    out = [_FILE_HEAD.pack(_FILE_MAGIC, version, n_chunks)]
    for c in range(n_chunks):
        sealed = aead.encrypt(_nonce(c), view[c * _CHUNK : (c + 1) * _CHUNK], _aad(store_uuid, version, c, n_chunks))
        out += [_LEN.pack(len(sealed)), sealed]
    return out


def read_image_file(path: Path, key: bytes, store_uuid: bytes) -> ImageData | None:
    """Read, authenticate and parse an image; None when it is absent, damaged, from another
    key or store, or malformed (the caller then opens the long way)."""
    try:
        with open(path, "rb") as fh:
            blob = fh.read()
    except OSError:
        return None
    return open_image(blob, key, store_uuid)


def open_image(blob: bytes, key: bytes, store_uuid: bytes) -> ImageData | None:
    """Authenticate and parse an image's bytes (a file's, or a database value's); None when
    damaged, from another key or store, or malformed."""
    try:
        magic, version, n_chunks = _FILE_HEAD.unpack_from(blob, 0)
        if magic != _FILE_MAGIC or not 1 <= n_chunks <= len(blob):
            return None
        aead, at, chunks = AESGCM(key), _FILE_HEAD.size, []
        for c in range(n_chunks):
            (size,) = _LEN.unpack_from(blob, at)
            at += _LEN.size
            if size < _TAG or at + size > len(blob):
                return None
            chunks.append((at, size))
            at += size
        if at != len(blob):
            return None
        # decrypted straight into one writable array: the index keeps its vectors as a view of it
        plain = np.empty(sum(size - _TAG for _, size in chunks), dtype=np.uint8)
        out, view, off = plain.data, memoryview(blob), 0
        for c, (at, size) in enumerate(chunks):
            data, aad = view[at : at + size], _aad(store_uuid, version, c, n_chunks)
            if hasattr(aead, "decrypt_into"):  # recent cryptography releases; older ones decrypt then copy
                aead.decrypt_into(_nonce(c), data, aad, out[off : off + size - _TAG])
            else:
                out[off : off + size - _TAG] = aead.decrypt(_nonce(c), data, aad)
            off += size - _TAG
    except (InvalidTag, ValueError, struct.error, OverflowError):
        return None
    del blob, view
    try:
        return _parse(out, version)
    except (ValueError, KeyError, TypeError, struct.error):
        return None


def _parse(plain: memoryview, version: int) -> ImageData | None:
    magic, fmt, header_len = _PREFIX.unpack_from(plain, 0)
    if magic != _MAGIC or fmt != _FORMAT:
        return None
    at = _PREFIX.size
    header = json.loads(bytes(plain[at : at + header_len]))
    at += header_len
    n, dim, sizes = int(header["n"]), int(header["dim"]), [int(s) for s in header["sizes"]]
    if len(sizes) != _SECTIONS or at + sum(sizes) != len(plain) or n < 0 or dim < 1:
        return None
    cuts = np.cumsum([at] + sizes).tolist()
    part = [memoryview(plain)[cuts[i] : cuts[i + 1]] for i in range(_SECTIONS)]
    if sizes[:4] != [8 * n, 8 * n, 8 * n, 4 * n * dim]:
        return None
    ids = json.loads(bytes(part[4]))
    attrs = json.loads(bytes(part[5]))
    if not isinstance(ids, list) or len(ids) != n or not isinstance(attrs, dict):
        return None
    return ImageData(
        version=version, dim=dim,
        rows=np.frombuffer(part[0], dtype="<i8").astype(np.int64),
        id_hash=np.frombuffer(part[1], dtype="<u8").astype(np.uint64),
        example_hash=np.frombuffer(part[2], dtype="<u8").astype(np.uint64),
        vectors=np.frombuffer(part[3], dtype="<f4").reshape(n, dim),  # writable view of the decrypted array
        ids=ids, attrs=attrs, model=part[6] if sizes[6] else None,
    )


def write_image_file(path: Path, pieces: list[bytes]) -> Path:
    """Write the pieces to a fresh temporary file beside ``path`` and fsync it; returns it
    (the caller renames it into place under the writer lock, or removes it)."""
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}-{os.urandom(4).hex()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        for piece in pieces:
            view = memoryview(piece)
            while view:
                view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    return tmp
