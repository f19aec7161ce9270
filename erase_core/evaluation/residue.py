"""Residue scans: does any 32-byte window of a secret survive in any file?

Used by the tests (the crypto-shredding guarantee after every kind of forget) and by
``benchmarks/bench_residue_peers.py`` (the same question asked of other vector stores).
SQLite splits large rows across pages and other stores write in chunks, so a deleted row can
survive as pieces; scanning for whole payloads or vectors would miss those. Every 32-byte window
of every needle is compared with every 32-byte window of every file, by a vectorised rolling
hash confirmed byte for byte. Needles shorter than the window are searched whole.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:
    from erase_core.storage import PlainRow

__all__ = ["WINDOW", "all_file_bytes", "sealed_rows", "surviving", "vector_windows"]

#: The window width: a 32-byte run is far too long to occur by chance (and is the size of a key).
WINDOW = 32

_MULTIPLIERS = [np.uint64(m) for m in (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB, 0xD6E8FEB86659FD93)]


def _window_hashes(data: bytes, width: int) -> np.ndarray:
    """A 64-bit hash of every ``width``-byte window of ``data`` (``width`` a multiple of 8, at most 32).

    Each window is read as ``width / 8`` unaligned little-endian words (a strided view at every
    byte offset), and the words are mixed with odd multipliers."""
    n = len(data) - width + 1
    if n <= 0:
        return np.zeros(0, dtype=np.uint64)
    words = np.ndarray(shape=(len(data) - 7,), dtype="<u8", buffer=data, offset=0, strides=(1,))
    h = np.zeros(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(0, width, 8):
            h ^= words[j : j + n] * _MULTIPLIERS[j // 8]
            h = (h << np.uint64(17)) | (h >> np.uint64(47))
    return h


def all_file_bytes(directory: str | Path) -> dict[str, bytes]:
    """Every regular file under ``directory`` (recursively), by name relative to it."""
    directory = Path(directory)
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def surviving(files: Mapping[str, bytes] | bytes, needles: Sequence[bytes], width: int = WINDOW,
              step: int = 1) -> list[tuple[str, int, int]]:
    """``(file, needle index, offset in needle)`` of each window of a needle found in a file
    (``files`` as :func:`all_file_bytes` returns them, or one byte string).

    ``step`` > 1 looks only for the windows starting at every ``step``-th offset of each needle
    (offset 0 included): a needle that survives whole is still found, and so is any surviving
    run of ``width + step - 1`` of its bytes, for a ``step``-th of the memory (for scans of
    thousands of long needles, such as every vector of a store in several encodings)."""
    if width % 8 or not 8 <= width <= 8 * len(_MULTIPLIERS):
        raise ValueError(f"width must be 8, 16, 24 or 32; got {width!r}")
    if isinstance(step, bool) or not isinstance(step, int) or step < 1:
        raise ValueError(f"step must be a positive integer; got {step!r}")
    if isinstance(files, (bytes, bytearray)):
        files = {"<bytes>": bytes(files)}
    found: list[tuple[str, int, int]] = []
    hashes_, needle_of, offset_of = [], [], []
    for k, needle in enumerate(needles):
        if len(needle) < width:
            for name, data in files.items():
                if needle and needle in data:
                    found.append((name, k, 0))
            continue
        h = _window_hashes(bytes(needle), width)[::step]
        hashes_.append(h)
        needle_of.append(np.full(len(h), k, dtype=np.int64))
        offset_of.append(np.arange(0, len(h) * step, step, dtype=np.int64))
    if not hashes_:
        return found
    # every window of every needle, sorted by hash: a file's windows are looked up by binary search
    all_hashes = np.concatenate(hashes_)
    order = np.argsort(all_hashes, kind="stable")
    keys, ks, offs = all_hashes[order], np.concatenate(needle_of)[order], np.concatenate(offset_of)[order]
    for name, data in files.items():
        hashes = _window_hashes(data, width)
        lo = np.searchsorted(keys, hashes, side="left")
        hi = np.searchsorted(keys, hashes, side="right")
        for pos in np.flatnonzero(hi > lo).tolist():
            piece = data[pos : pos + width]
            for j in range(int(lo[pos]), int(hi[pos])):
                k, off = int(ks[j]), int(offs[j])
                if needles[k][off : off + width] == piece:
                    found.append((name, k, off))
    return found


def vector_windows(vector: bytes, width: int = WINDOW, item: int = 4) -> list[bytes]:
    """Needles for :func:`surviving` covering exactly the ``width``-byte windows of a vector
    (components of ``item`` bytes: 4 for float32, 2 for float16, 8 for float64) that hold at
    least one whole non-zero component (overlapping such windows are merged into one needle, so
    every window of every needle is one of them).

    A sparse embedding is mostly zero bytes, and a window of zeros is no secret (every file has
    runs of them), so searching the whole vector would report those everywhere. Every non-zero
    component lies whole in at least one of these windows, so a surviving run of ``width`` or
    more bytes of the vector that carries any component is still found. A dense vector gives
    one needle: the whole vector."""
    dtype = {2: "<u2", 4: "<u4", 8: "<u8"}[item]
    components = np.frombuffer(vector, dtype=dtype)
    if len(vector) < width:
        return [bytes(vector)] if components.any() else []
    offsets = np.arange(len(vector) - width + 1)
    nonzero = np.concatenate(([0], np.cumsum(components != 0)))
    # the components lying whole inside the window at each offset: [ceil(off / item), (off + width) // item)
    keep = ((nonzero[(offsets + width) // item] - nonzero[-(-offsets // item)]) > 0).tolist()
    out: list[bytes] = []
    run_start: int | None = None
    for off, k in enumerate(keep + [False]):
        if k and run_start is None:
            run_start = off
        elif not k and run_start is not None:
            out.append(bytes(vector[run_start : off - 1 + width]))
            run_start = None
    return out


def sealed_rows(path: str | Path, key_file: str | Path | None = None) -> dict[str, tuple[bytes, PlainRow]]:
    """``id -> (key, decrypted row)`` of every row of the store database at ``path`` that a key
    file (``key_file``, by default the store's own ``PATH.keys``) can still open.

    Read-only: the database is opened with ``mode=ro`` and the key file is read as bytes, so this
    may run while the store is open, or on a copy of the database taken earlier (give the copy's
    ``path`` and the live store's ``key_file`` to see which old rows the current keys still open).
    The keys it returns are the positive control of a residue scan: 32-byte secrets that are on
    disk, in the key file, so a scan that finds nothing else has shown it could find something.
    """
    from erase_core.storage import CorruptStoreError, keys_path
    from erase_core.storage.keyfile import HEADER_SIZE, KEY_SIZE
    from erase_core.storage.rows import open_sealed

    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        store_uuid = bytes.fromhex(con.execute("SELECT value FROM meta WHERE key = 'uuid'").fetchone()[0])
        dim = con.execute("SELECT dim FROM state").fetchone()[0]
        records = con.execute("SELECT row, key_slot, blob FROM examples").fetchall()
    finally:
        con.close()
    raw = Path(key_file if key_file is not None else keys_path(Path(path))).read_bytes()[HEADER_SIZE:]
    out: dict[str, tuple[bytes, PlainRow]] = {}
    for row, slot, blob in records:
        key = raw[slot * KEY_SIZE : (slot + 1) * KEY_SIZE]
        try:
            plain = open_sealed(store_uuid, row, key, blob, 4 * (dim or 0))
        except CorruptStoreError:
            continue
        if plain.id in out:
            raise CorruptStoreError(f"two rows open as id {plain.id!r}")
        out[plain.id] = (key, plain)
    return out
