"""Examples on the way in: checked, normalised and hashed once, for memory and the store alike.

Embeddings are L2-normalised once, here, and kept as float32: everything after (clustering,
similarity, persistence, ``verify``) reads those values, so a reopened or rebuilt index sees
bit-identical input.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from .._validation import ERASEError, check_vectors
from ..filters import attrs_json, check_filter, check_metadata, check_subject
from ..payloads import payload_json


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation to float32 (per row, so batching cannot change a row's bits).
    A norm that overflows or underflows float64 raises: dividing by it would store zeros."""
    with np.errstate(over="ignore", under="ignore"):
        norms = np.sqrt(np.einsum("ij,ij->i", vectors, vectors))
    bad = (norms == 0) | ~np.isfinite(norms)
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        if not np.isfinite(norms[j]):
            raise ERASEError(f"vector {j} is too large: its norm overflows float64 (scale the vectors down)")
        if np.any(vectors[j]):
            raise ERASEError(f"vector {j} is too small: its norm underflows float64 (scale the vectors up)")
        raise ERASEError(f"vector {j} is all zeros: it has no direction to compare")
    return (vectors / norms[:, None]).astype(np.float32)


def real_vectors(vectors, name: str, dim: int | None) -> np.ndarray:
    """:func:`check_vectors`, rejecting complex input first (converting would drop the imaginary part)."""
    dtype = getattr(vectors, "dtype", None)
    if dtype is not None and (getattr(dtype, "kind", None) == "c" or getattr(dtype, "is_complex", False) is True):
        raise ERASEError(f"{name} holds complex numbers: embeddings must be real")
    return check_vectors(vectors, dim=dim, name=name)


def query_vector(query, dim: int | None) -> np.ndarray:
    """One non-zero query vector of width ``dim`` (float64)."""
    if dim is None and np.ndim(query) == 1:
        query = [query]  # a 1-D query needs no known width to be one vector
    q = real_vectors(query, "query_vector", dim)
    if q.shape[0] != 1:
        raise ERASEError(f"query_vector must be one vector; got {q.shape[0]} rows")
    if not np.any(q[0]):
        raise ERASEError("query_vector is all zeros")
    with np.errstate(over="ignore", under="ignore"):
        norm = float(np.linalg.norm(q[0]))
    if not np.isfinite(norm) or norm == 0:
        raise ERASEError(f"query_vector is too {'large' if norm else 'small'}: its norm {'over' if norm else 'under'}flows float64")
    return q[0]


def check_text(value: str, name: str) -> str:
    """``value`` if it encodes as UTF-8 (a lone surrogate can be neither stored nor hashed)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ERASEError(f"{name} is not valid Unicode text (a lone surrogate at position {exc.start})") from None
    return value


def id_list(ids, name: str = "ids") -> list:
    """``ids`` as a list (a single string stays one id); anything not iterable raises ours."""
    if ids is None:
        raise ERASEError(f"{name} are required: a list of string ids")
    if isinstance(ids, str):
        return [ids]
    try:
        return list(ids)
    except TypeError:
        raise ERASEError(f"{name} must be a sequence of string ids; got {type(ids).__name__} {ids!r}") from None


def id_set(among, name: str = "among") -> set:
    """A collection of ids as a set (a single string is refused: it is not a collection of ids)."""
    if isinstance(among, (str, bytes)):
        raise ERASEError(f"{name} must be a collection of ids, not a single string")
    try:
        return set(among)
    except TypeError:
        raise ERASEError(f"{name} must be a collection of string ids; got {among!r}") from None


def checked_filter(where) -> None:
    """:func:`check_filter`, with a value it cannot compare (a set, an object) raising ours."""
    try:
        check_filter(where)
    except (TypeError, RecursionError) as exc:
        raise ERASEError(f"unsupported value in the filter {where!r}: {exc}") from None


def filter_text(where: dict) -> str:
    """The canonical JSON of a filter, as the audit log hashes it (raises ours for a value JSON cannot hold)."""
    from ..storage.audit import canonical_filter

    try:
        text = canonical_filter(where)
    except (TypeError, ValueError, RecursionError) as exc:
        raise ERASEError(f"the filter is not JSON-serialisable: {exc}") from None
    return check_text(text, "the filter")


def example_hash(example_id: str, payload_json: str, vector: np.ndarray, attrs: str = "") -> int:
    """The 64-bit hash of one example (id, payload, stored vector, attributes) the pool digest sums."""
    h = hashlib.blake2b(digest_size=8)
    h.update(example_id.encode())
    h.update(b"\0")
    h.update(payload_json.encode())
    h.update(b"\0")
    h.update(np.ascontiguousarray(vector, dtype=np.float32).tobytes())
    if attrs:  # examples without subject or metadata hash as they always did
        h.update(b"\0attrs\0")
        h.update(attrs.encode())
    return int.from_bytes(h.digest(), "little")


def as_payload_list(payloads) -> list:
    if isinstance(payloads, (str, bytes)) or payloads is None:
        raise ERASEError(f"payloads must be a sequence (one payload per vector); got {type(payloads).__name__}")
    try:
        return list(payloads)
    except TypeError:
        raise ERASEError(f"payloads must be a sequence (one payload per vector); got {type(payloads).__name__}") from None


@dataclass
class Incoming:
    """Examples about to be added, validated and encoded once for memory and the store."""

    ids: list[str]
    payload_jsons: list[str]
    unit: np.ndarray
    hashes: list[int]
    attrs: list[str]

    @classmethod
    def of(cls, ids: list[str], X: np.ndarray, payloads: list, subjects, metadata) -> "Incoming":
        n = X.shape[0]
        if len(payloads) != n:
            raise ERASEError(f"got {len(payloads)} payloads for {n} vectors")
        subjects = [None] * n if subjects is None else list(subjects)
        metadata = [None] * n if metadata is None else list(metadata)
        if len(subjects) != n or len(metadata) != n:
            raise ERASEError(f"got {len(subjects)} subjects and {len(metadata)} metadata for {n} vectors")
        attrs = [attrs_json(check_subject(s, f"subjects[{j}]"), check_metadata(m, f"metadata[{j}]"))
                 for j, (s, m) in enumerate(zip(subjects, metadata))]
        payload_jsons = [payload_json(p) for p in payloads]
        unit = normalise(X)
        try:
            hashes = [example_hash(i, pj, row, a) for i, pj, row, a in zip(ids, payload_jsons, unit, attrs)]
        except UnicodeEncodeError:
            for j, (i, pj, a) in enumerate(zip(ids, payload_jsons, attrs)):
                check_text(i, f"ids[{j}]")
                check_text(pj, f"payloads[{j}]")
                check_text(a, f"the subject or metadata of example {j}")
            raise
        return cls(ids, payload_jsons, unit, hashes, attrs)

    @classmethod
    def stored(cls, ids: list[str], unit: np.ndarray, payload_jsons: list[str], attrs: list[str]) -> "Incoming":
        """Examples already encoded once (a copy or a rebuild of a pool): only hashed again."""
        hashes = [example_hash(i, p, row, a) for i, p, row, a in zip(ids, payload_jsons, unit, attrs)]
        return cls(ids, payload_jsons, unit, hashes, attrs)

    def check_width(self, dim: int | None) -> None:
        """Inside the write transaction: the store's width may have been set by another handle."""
        if dim is not None and self.unit.shape[1] != dim:
            raise ERASEError(f"vectors has dimension {self.unit.shape[1]}, expected {dim}")

    def store_rows(self) -> list:
        from ..hashing import id_hash
        from ..storage import NewRow

        return [NewRow(i, pj, row.astype("<f4").tobytes(), id_hash(i), h, a)
                for i, pj, row, h, a in zip(self.ids, self.payload_jsons, self.unit, self.hashes, self.attrs)]
