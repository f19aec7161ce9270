"""Residue scans: does any 32-byte window of a secret survive in any file?

SQLite splits large rows across pages, so a forgotten row can survive as pieces; scanning for
whole payloads or vectors would miss those. Every 32-byte window of every needle is compared
with every 32-byte window of every file, by a vectorised rolling hash confirmed byte for byte.
Needles shorter than the window are searched whole.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from erase_core.storage import PlainRow

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
    return set(sealed_rows(path))


def sealed_rows(path: Path, key_file: Path | None = None) -> dict[str, tuple[bytes, "PlainRow"]]:
    """``id -> (key, decrypted row)`` of every row of the store database at ``path`` that a key
    file (``key_file``, by default the store's own ``PATH.keys``) can still open.

    Read-only: the database is opened with ``mode=ro`` and the key file is read as bytes, so this
    may run while the store is open, or on a copy of the database taken earlier (give the copy's
    ``path`` and the live store's ``key_file`` to see which old rows the current keys still open).
    """
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
    raw = Path(key_file if key_file is not None else keys_path(Path(path))).read_bytes()[HEADER_SIZE:]
    out: dict[str, tuple[bytes, PlainRow]] = {}
    for row, slot, blob in records:
        key = raw[slot * KEY_SIZE : (slot + 1) * KEY_SIZE]
        try:
            plain = open_sealed(store_uuid, row, key, blob, 4 * (dim or 0))
        except CorruptStoreError:
            continue
        assert plain.id not in out, f"two rows open as id {plain.id!r}"
        out[plain.id] = (key, plain)
    return out


def vector_windows(vector: bytes, width: int = WINDOW) -> list[bytes]:
    """Needles for :func:`surviving` covering exactly the ``width``-byte windows of a float32
    vector that hold at least one whole non-zero component (overlapping such windows are merged
    into one needle, so every window of every needle is one of them).

    A sparse embedding is mostly zero bytes, and a window of zeros is no secret (every file has
    runs of them), so searching the whole vector would report those everywhere. Every non-zero
    component lies whole in at least one of these windows, so a surviving run of ``width`` or
    more bytes of the vector that carries any component is still found. A dense vector gives
    one needle: the whole vector."""
    components = np.frombuffer(vector, dtype="<u4")
    if len(vector) < width:
        return [bytes(vector)] if components.any() else []
    offsets = np.arange(len(vector) - width + 1)
    nonzero = np.concatenate(([0], np.cumsum(components != 0)))
    # the components lying whole inside the window at each offset: [ceil(off / 4), (off + width) // 4)
    keep = ((nonzero[(offsets + width) // 4] - nonzero[-(-offsets // 4)]) > 0).tolist()
    out, run_start = [], None
    for off, k in enumerate(keep + [False]):
        if k and run_start is None:
            run_start = off
        elif not k and run_start is not None:
            out.append(bytes(vector[run_start : off - 1 + width]))
            run_start = None
    return out


def plaintext_needles(plain: "PlainRow", *extra: bytes | str) -> list[bytes]:
    """What one example holds in clear, as needles for :func:`surviving`: its id, its payload
    JSON, its vector (as :func:`vector_windows`), and any ``extra`` strings (node text,
    metadata values...)."""
    out = [plain.id.encode("utf-8"), plain.payload_json.encode("utf-8"), *vector_windows(plain.vector)]
    out += [e.encode("utf-8") if isinstance(e, str) else bytes(e) for e in extra]
    return [n for n in out if n]


def assert_sealed(directory: Path, store_path: Path, needles, live_keys=(), shredded_keys=()) -> None:
    """The crypto-shredding guarantee over every file under ``directory`` (the store at
    ``store_path``, its key file, SQLite's side files and anything else there):

    * no 32-byte window (or, if shorter, the whole) of any needle (the plaintext of examples,
      kept or forgotten: a flat list of byte strings, or lists of them) is found in any file;
    * no key of ``shredded_keys`` is found in any file;
    * every key of ``live_keys`` is found, in the key file and only there: the positive
      control, showing that the same scan does find 32-byte secrets that are on disk.
    """
    from erase_core.storage import keys_path

    files = all_file_bytes(directory)
    store_name = str(Path(store_path).relative_to(directory))
    key_name = str(keys_path(Path(store_path)).relative_to(directory))
    assert store_name in files and key_name in files, sorted(files)
    flat = [n for item in needles for n in ([item] if isinstance(item, (bytes, bytearray)) else item)]
    assert flat, "no needles: the scan would pass vacuously"
    leaks = surviving(files, flat)
    assert not leaks, f"plaintext found on disk (file, needle, offset): {leaks[:5]}"
    shredded = list(shredded_keys)
    assert all(len(k) == 32 and any(k) for k in shredded), "a shredded key to look for must be a real key"
    found = surviving(files, shredded)
    assert not found, f"a shredded key survives (file, key, offset): {found[:5]}"
    live = list(live_keys)
    where: dict[int, set] = {}
    for name, k, _ in surviving(files, live):
        where.setdefault(k, set()).add(name)
    missing = [k for k in range(len(live)) if where.get(k) != {key_name}]
    assert not missing, f"live keys not found (only) in {key_name}: {[(k, where.get(k)) for k in missing[:5]]}"
