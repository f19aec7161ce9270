"""Residue scans for the tests: the crypto-shredding guarantee over a store's directory.

The scanner itself (32-byte windows of every needle against every file) lives in
:mod:`erase_core.evaluation.residue`, shared with ``benchmarks/bench_residue_peers.py``; this
module adds the assertions the tests make with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from erase_core.evaluation.residue import WINDOW, all_file_bytes, sealed_rows, surviving, vector_windows

if TYPE_CHECKING:
    from erase_core.storage import PlainRow

__all__ = ["WINDOW", "all_file_bytes", "assert_sealed", "decryptable_ids", "plaintext_needles", "sealed_rows",
           "surviving", "vector_windows"]


def decryptable_ids(path: Path) -> set[str]:
    """Ids of the rows of the store database at ``path`` that its key file can still open."""
    return set(sealed_rows(path))


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
