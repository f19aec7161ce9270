"""Deterministic hashing: id keys, seeded random streams and an order-free state digest.

Everything that decides the clustering must be a function of the set of (id, vector)
pairs and the parameters alone. Random choices are therefore keyed on ids through
SplitMix64 rather than drawn from a stateful generator, and the digest of a set of points
is an order-independent multiset hash.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Iterable

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def splitmix64(x: np.ndarray | int) -> np.ndarray:
    """SplitMix64 finaliser, vectorised over uint64 (wrap-around arithmetic)."""
    z = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = z + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        return z ^ (z >> np.uint64(31))


def _splitmix64_inplace(z: np.ndarray, tmp: np.ndarray) -> np.ndarray:
    """:func:`splitmix64` of the uint64 array ``z`` in place (``tmp``: work array of its size):
    no temporary per operation."""
    z += _GOLDEN
    np.right_shift(z, np.uint64(30), out=tmp)
    z ^= tmp
    z *= _MIX1
    np.right_shift(z, np.uint64(27), out=tmp)
    z ^= tmp
    z *= _MIX2
    np.right_shift(z, np.uint64(31), out=tmp)
    z ^= tmp
    return z


def _lanes_into(out: np.ndarray, z: np.ndarray, a: np.ndarray, tmp: np.ndarray) -> None:
    """The two lane terms of the elements ``z`` into ``out`` (rows, 2): ``splitmix64(z ^ 0x1234567)``
    and ``splitmix64(splitmix64(z) ^ 0x7654321)``, in place (``z`` is consumed; ``a``, ``tmp``:
    work arrays of its size). The one definition :meth:`MultisetHash.lanes_each` and
    :meth:`MultisetHash.elements_into` share."""
    np.bitwise_xor(z, np.uint64(0x1234567), out=a)
    out[:, 0] = _splitmix64_inplace(a, tmp)
    _splitmix64_inplace(z, tmp)
    z ^= np.uint64(0x7654321)
    out[:, 1] = _splitmix64_inplace(z, tmp)


def id_hash(identifier: str) -> int:
    """A stable 64-bit key for a string id (independent of PYTHONHASHSEED)."""
    return int.from_bytes(hashlib.blake2b(identifier.encode("utf-8"), digest_size=8).digest(), "little")


def id_hashes(identifiers: Iterable[str]) -> np.ndarray:
    """:func:`id_hash` of many ids (the digests joined and read as little-endian words: no
    Python integer per id)."""
    blake = hashlib.blake2b
    joined = b"".join([blake(i.encode("utf-8"), digest_size=8).digest() for i in identifiers])
    return np.frombuffer(joined, dtype="<u8").astype(np.uint64)


def stream_key(seed: int, purpose: int, index: int) -> np.uint64:
    """Key of one named random stream (e.g. seeding round ``index``)."""
    mixed = splitmix64((int(seed) & 0xFFFFFFFFFFFFFFFF) ^ ((purpose << 48) | (index & 0xFFFFFFFFFFFF)))
    return np.uint64(splitmix64(mixed))


def keyed_uniform(hashes: np.ndarray, key: np.uint64) -> np.ndarray:
    """Uniform draws in (0, 1), one per id hash, for the stream ``key``.

    Each draw depends only on its own id and the key, so removing or adding other ids never
    moves it.
    """
    bits = splitmix64(np.asarray(hashes, dtype=np.uint64) ^ key) >> np.uint64(11)
    return (bits.astype(np.float64) + 0.5) * (1.0 / 9007199254740992.0)


def exponential_variates(hashes: np.ndarray, key: np.uint64) -> np.ndarray:
    """Exp(1) draws keyed on ids: -log(u), computed elementwise so batching cannot change it."""
    return -np.log(keyed_uniform(hashes, key))


_MASK64 = 0xFFFFFFFFFFFFFFFF


def _mix_int(x: int) -> int:
    """SplitMix64 on a Python int (bit-identical to :func:`splitmix64`)."""
    z = (x + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


class MultisetHash:
    """Order-independent hash of a multiset of 64-bit element hashes (two lanes, mod 2^64 sums).

    Adding and removing an element is O(1), so a deletion can update the digest without
    a pass over the data.
    """

    __slots__ = ("lane_a", "lane_b")

    def __init__(self) -> None:
        self.lane_a = 0
        self.lane_b = 0

    @staticmethod
    def lanes_each(element_hashes: np.ndarray) -> np.ndarray:
        """Each element's two lane terms, (n, 2) uint64: what the lanes sum. A caller that
        keeps them per element adds and removes elements without mixing them again."""
        z = np.array(element_hashes, dtype=np.uint64).ravel()  # a copy: consumed below
        out = np.empty((len(z), 2), dtype=np.uint64)
        _lanes_into(out, z, np.empty_like(z), np.empty_like(z))
        return out

    @staticmethod
    def _sums(lanes: np.ndarray) -> tuple[int, int]:
        lanes = np.asarray(lanes, dtype=np.uint64)
        if lanes.ndim == 1:  # one element's row: plain integers beat a numpy reduction
            a, b = lanes.tolist()
            return a, b
        return int(np.sum(lanes[:, 0], dtype=np.uint64)), int(np.sum(lanes[:, 1], dtype=np.uint64))

    def add_lanes(self, lanes: np.ndarray) -> None:
        """Add elements given their lane terms (rows of :meth:`lanes_each`, or one row)."""
        a, b = self._sums(lanes)
        self.lane_a = (self.lane_a + a) & _MASK64
        self.lane_b = (self.lane_b + b) & _MASK64

    def remove_lanes(self, lanes: np.ndarray) -> None:
        """Remove elements given their lane terms (rows of :meth:`lanes_each`, or one row)."""
        a, b = self._sums(lanes)
        self.lane_a = (self.lane_a - a) & _MASK64
        self.lane_b = (self.lane_b - b) & _MASK64

    def add(self, element_hashes: np.ndarray) -> None:
        self.add_lanes(self.lanes_each(element_hashes))

    def remove(self, element_hashes: np.ndarray) -> None:
        self.remove_lanes(self.lanes_each(element_hashes))

    @staticmethod
    def elements_into(out: np.ndarray, row_hash: np.ndarray, forms: np.ndarray, width: int, block: int = 32768) -> None:
        """``out[:, 0]`` = the elements ``splitmix64(row_hash ^ finish_row_hashes(forms, width))``
        and ``out[:, 1:]`` their :meth:`lanes_each`, bit-identical, computed in cache-sized
        blocks with in-place arithmetic: 3-4x faster than the whole-array expressions over a
        million points (each of their ~40 operations allocates and faults in a fresh array)."""
        n = len(row_hash)
        z, a, tmp = (np.empty(min(n, block), dtype=np.uint64) for _ in range(3))
        with np.errstate(over="ignore"):
            for lo in range(0, n, block):
                hi = min(n, lo + block)
                zz, aa, tt = z[: hi - lo], a[: hi - lo], tmp[: hi - lo]
                np.bitwise_xor(forms[lo:hi], np.uint64(width), out=zz)
                _splitmix64_inplace(zz, tt)  # the row hash of the labels
                zz ^= row_hash[lo:hi]
                out[lo:hi, 0] = _splitmix64_inplace(zz, tt)
                _lanes_into(out[lo:hi, 1:], zz, aa, tt)

    def hexdigest(self) -> str:
        return f"{self.lane_a:016x}{self.lane_b:016x}"


@functools.lru_cache(maxsize=64)
def _row_weights(width: int) -> np.ndarray:
    with np.errstate(over="ignore"):
        return splitmix64(np.arange(1, width + 1, dtype=np.uint64) * np.uint64(0x2545F4914F6CDD1D))


def row_hashes(matrix: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each row of an integer-valued matrix (vectorised, exact).

    A random linear form mod 2^64 (:func:`row_forms`) followed by a mixer
    (:func:`finish_row_hashes`): one integer matrix-vector product.
    """
    m = np.asarray(matrix)
    if m.ndim == 1:
        m = m[:, None]
    return finish_row_hashes(row_forms(m), m.shape[1])


def row_forms(matrix: np.ndarray) -> np.ndarray:
    """The linear part of :func:`row_hashes`: per row, sum over columns c of m[:, c] * w_c mod 2^64.

    w_c depends on c alone, so a row's form changes by (new - old) * w_c when its entry in column
    c changes, and by m[:, c] * w_c when column c is appended: a kept form is updated without
    reading the other columns."""
    m = np.asarray(matrix)
    with np.errstate(over="ignore"):
        return m.astype(np.int64).view(np.uint64) @ _row_weights(m.shape[1])


def column_weight(c: int) -> np.uint64:
    """w_c of :func:`row_forms`."""
    return _row_weights(c + 1)[c]


def finish_row_hashes(forms: np.ndarray, width: int) -> np.ndarray:
    """:func:`row_hashes` of rows of ``width`` columns, from their :func:`row_forms`."""
    return splitmix64(np.asarray(forms, dtype=np.uint64) ^ np.uint64(width))


@functools.lru_cache(maxsize=64)
def _row_weight_ints(width: int) -> tuple[int, ...]:
    return tuple(int(w) for w in _row_weights(width))


def row_form_ints(rows: list[list[int]]) -> list[int]:
    """:func:`row_forms` of a few rows of non-negative integers, in plain Python integers
    (bit-identical; for one or a few rows, where numpy's call overhead dominates)."""
    out = []
    for row in rows:
        weights = _row_weight_ints(len(row))
        out.append(sum(v * w for v, w in zip(row, weights)) & _MASK64)
    return out


def row_hash_ints(rows: list[list[int]]) -> list[int]:
    """:func:`row_hashes` of a few rows of non-negative integers, in plain Python integers."""
    return [_mix_int(form ^ len(row)) for form, row in zip(row_form_ints(rows), rows)]
