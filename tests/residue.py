"""Residue scans: does any 32-byte window of a secret survive in any file?

SQLite splits large rows across pages, so a forgotten row can survive as pieces; scanning for
whole payloads or vectors would miss those. Every 32-byte window of every needle is compared
with every 32-byte window of every file, by a vectorised rolling hash confirmed byte for byte.
Needles shorter than the window are searched whole.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

WINDOW = 32


def _window_hashes(data: bytes, width: int) -> np.ndarray:
    """A 64-bit hash of every ``width``-byte window of ``data`` (``width`` a multiple of 8).

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


_MULTIPLIERS = [np.uint64(m) for m in (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB, 0xD6E8FEB86659FD93)]


def all_file_bytes(directory: Path) -> dict[str, bytes]:
    """Every regular file under ``directory`` (recursively), by relative name."""
    directory = Path(directory)
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def surviving(files: dict[str, bytes] | bytes, needles: list[bytes], width: int = WINDOW) -> list[tuple[str, int, int]]:
    """``(file, needle index, offset in needle)`` of each window of a needle found in a file."""
    if isinstance(files, (bytes, bytearray)):
        files = {"<bytes>": bytes(files)}
    found: list[tuple[str, int, int]] = []
    long_windows: dict[int, list[tuple[int, int, bytes]]] = {}
    for k, needle in enumerate(needles):
        if len(needle) < width:
            for name, data in files.items():
                if needle and needle in data:
                    found.append((name, k, 0))
            continue
        for off, h in enumerate(_window_hashes(needle, width).tolist()):
            long_windows.setdefault(h, []).append((k, off, needle[off : off + width]))
    if not long_windows:
        return found
    keys = np.sort(np.fromiter(long_windows.keys(), dtype=np.uint64, count=len(long_windows)))
    for name, data in files.items():
        hashes = _window_hashes(data, width)
        at = np.minimum(np.searchsorted(keys, hashes), len(keys) - 1)
        for pos in np.flatnonzero(keys[at] == hashes).tolist():
            piece = data[pos : pos + width]
            for k, off, window in long_windows[int(hashes[pos])]:
                if window == piece:
                    found.append((name, k, off))
    return found


def decryptable_ids(path: Path) -> set[str]:
    """Ids of the rows of the store database at ``path`` that its key file can still open."""
    import sqlite3

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
    raw = keys_path(Path(path)).read_bytes()[HEADER_SIZE:]
    out = set()
    for row, slot, blob in records:
        key = raw[slot * KEY_SIZE : (slot + 1) * KEY_SIZE]
        try:
            out.add(open_sealed(store_uuid, row, key, blob, 4 * dim).id)
        except CorruptStoreError:
            pass
    return out
