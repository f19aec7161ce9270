"""ExampleIndex: a pool of few-shot examples whose selection can be exactly unlearned.

Each example is a string id, a JSON-serialisable payload and an embedding. Embeddings are
L2-normalised once, on the way in, and stored as float32: everything after (clustering,
similarity, persistence, ``verify``) reads those stored values, so a reopened or rebuilt
index sees bit-identical input. The ``erase`` strategy's clustering is a
:class:`~erase_core.quantized_kmeans.QuantizedKMeans`; it exists once the pool holds at
least ``k`` examples.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ._validation import ERASEError, check_ids, check_known_ids, check_positive_int, check_vectors
from .hashing import MultisetHash
from .quantized_kmeans import DEFAULT_EPSILON, QuantizedKMeans
from .selection import STRATEGIES, SelectedExample, fill_representatives, top_k_by_cosine

FORMAT_VERSION = 1


@dataclass(frozen=True)
class ForgetReceipt:
    """What ``forget`` did. ``recompute_from``: None (statistics only), -1 (seeding rerun) or
    the Lloyd iteration recomputed from. ``selected_changed``: whether the erase set moved."""

    ids: tuple[str, ...]
    n_remaining: int
    selected_changed: bool
    recomputed: bool
    recompute_from: int | None
    digest_before: str
    digest_after: str
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def _normalise(vectors: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation to float32 (per row, so batching cannot change a row's bits)."""
    norms = np.sqrt(np.einsum("ij,ij->i", vectors, vectors))
    if (norms == 0).any():
        raise ERASEError(f"vector {int(np.flatnonzero(norms == 0)[0])} is all zeros: it has no direction to compare")
    return (vectors / norms[:, None]).astype(np.float32)


def _payload_json(payload: Any) -> str:
    try:
        return json.dumps(payload, sort_keys=True, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ERASEError(f"payload is not JSON-serialisable: {exc}") from None


def _example_hash(example_id: str, payload_json: str, vector: np.ndarray) -> int:
    h = hashlib.blake2b(digest_size=8)
    h.update(example_id.encode())
    h.update(b"\0")
    h.update(payload_json.encode())
    h.update(b"\0")
    h.update(np.ascontiguousarray(vector, dtype=np.float32).tobytes())
    return int.from_bytes(h.digest(), "little")


class ExampleIndex:
    """Few-shot example pool with exact unlearning.

    Parameters
    ----------
    k : number of examples ``select`` returns (and clusters for the ``erase`` strategy).
    strategy : ``"erase"`` (fixed set: the example nearest each quantized centroid) or
        ``"similarity"`` (exact top-k by cosine to the query).
    epsilon, n_iter, seed, projection_dim : quantized k-means parameters
        (see :class:`~erase_core.quantized_kmeans.QuantizedKMeans`).
    path : optional SQLite file; every mutation is written there transactionally and
        forgotten rows are erased from disk. Reopen with :meth:`ExampleIndex.open`.
    """

    def __init__(
        self,
        k: int = 4,
        *,
        strategy: str = "erase",
        epsilon: float | None = None,
        n_iter: int = 10,
        seed: int = 0,
        projection_dim: int | None = None,
        path: str | os.PathLike | None = None,
    ):
        self.k = check_positive_int(k, "k")
        if strategy not in STRATEGIES:
            raise ERASEError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        self.strategy = strategy
        self.epsilon = DEFAULT_EPSILON if epsilon is None else float(epsilon)
        self.n_iter = check_positive_int(n_iter, "n_iter")
        self.seed = int(seed)
        self.projection_dim = projection_dim
        QuantizedKMeans(self.k, epsilon=self.epsilon, n_iter=self.n_iter, seed=self.seed, projection_dim=projection_dim)
        self._lock = threading.RLock()
        self._dim: int | None = None
        self._vectors = np.zeros((0, 0), dtype=np.float32)
        self._ids: list[str] = []
        self._slot_of: dict[str, int] = {}
        self._payloads: dict[str, Any] = {}
        self._example_hashes: dict[str, int] = {}
        self._pool_hash = MultisetHash()
        self._model: QuantizedKMeans | None = None
        self._digest: str | None = None  # cached until the next mutation
        self._store = None
        if path is not None:
            from .store import SQLiteExampleStore

            store = SQLiteExampleStore(path)
            if store.read_config() is not None or len(store):
                store.close()
                raise ERASEError(f"{path} already holds an example store: reopen it with ExampleIndex.open(path)")
            store.write_config(self.config())
            self._store = store

    # ------------------------------------------------------------------ construction
    def config(self) -> dict:
        """The parameters that define the index (persisted with it)."""
        return {
            "format_version": FORMAT_VERSION, "k": self.k, "strategy": self.strategy, "epsilon": self.epsilon,
            "n_iter": self.n_iter, "seed": self.seed, "projection_dim": self.projection_dim, "dim": self._dim,
        }

    @classmethod
    def open(cls, path: str | os.PathLike) -> "ExampleIndex":
        """Reopen a persisted index; no re-embedding, and the digest is identical."""
        from .store import SQLiteExampleStore

        if not Path(path).exists():
            raise ERASEError(f"no example store at {path}")
        store = SQLiteExampleStore(path)
        try:
            config = store.read_config()
            if not config or config.get("format_version") != FORMAT_VERSION:
                raise ERASEError(f"{path} is not an ERASE example index (missing or unknown config)")
            index = cls(
                config["k"], strategy=config["strategy"], epsilon=config["epsilon"], n_iter=config["n_iter"],
                seed=config["seed"], projection_dim=config["projection_dim"],
            )
            ids, payload_jsons, vectors = store.load()
        except Exception:
            store.close()
            raise
        if ids:
            index._load_unit_vectors(vectors, [json.loads(p) for p in payload_jsons], ids, payload_jsons)
        index._dim = config["dim"] if index._dim is None else index._dim
        index._store = store
        return index

    def _load_unit_vectors(self, unit: np.ndarray, payloads: list, ids: list[str], payload_jsons: list[str]) -> None:
        """Append already-normalised rows to memory and update the clustering."""
        if self._vectors.shape[1] != unit.shape[1]:
            self._dim = unit.shape[1]
            self._vectors = np.zeros((max(16, len(ids)), self._dim), dtype=np.float32)
        n0 = len(self._ids)
        need = n0 + len(ids)
        if need > self._vectors.shape[0]:
            grown = np.zeros((max(need, 2 * self._vectors.shape[0]), self._dim), dtype=np.float32)
            grown[:n0] = self._vectors[:n0]
            self._vectors = grown
        self._vectors[n0:need] = unit
        hashes = [_example_hash(i, pj, row) for i, pj, row in zip(ids, payload_jsons, unit)]
        for offset, (i, p, h) in enumerate(zip(ids, payloads, hashes)):
            self._slot_of[i] = n0 + offset
            self._payloads[i] = p
            self._example_hashes[i] = h
        self._pool_hash.add(np.array(hashes, dtype=np.uint64))
        self._ids.extend(ids)
        self._digest = None
        self._update_model_after_add(unit, ids)

    def _update_model_after_add(self, unit: np.ndarray, ids: list[str]):
        if self.strategy != "erase":
            return None  # only the erase strategy selects through the clustering
        if self._model is not None:
            return self._model.insert(unit, ids)
        if len(self._ids) >= self.k:
            self._model = self._new_model().fit(self._vectors[: len(self._ids)], list(self._ids))
        return None

    def _new_model(self) -> QuantizedKMeans:
        return QuantizedKMeans(self.k, epsilon=self.epsilon, n_iter=self.n_iter, seed=self.seed, projection_dim=self.projection_dim)

    # ------------------------------------------------------------------ mutations
    def add(self, vectors, payloads: Sequence[Any], ids: Sequence[str] | None = None) -> list[str]:
        """Add examples; returns their ids (generated when not given). Atomic: on any error
        nothing is added."""
        with self._lock:
            X = check_vectors(vectors, dim=self._dim, name="vectors")
            payloads = list(payloads)
            if len(payloads) != X.shape[0]:
                raise ERASEError(f"got {len(payloads)} payloads for {X.shape[0]} vectors")
            if ids is None:
                ids = [uuid.uuid4().hex for _ in payloads]
            ids = check_ids(ids, X.shape[0], existing=self._slot_of)
            payload_jsons = [_payload_json(p) for p in payloads]
            unit = _normalise(X)
            if self._dim is None and self._store is not None:
                self._dim = X.shape[1]
                self._store.write_config(self.config())
            if self._store is not None:
                self._store.add(ids, payload_jsons, unit)
            self._load_unit_vectors(unit, [json.loads(p) for p in payload_jsons], ids, payload_jsons)
            return ids

    def forget(self, ids: Iterable[str], *, missing: str = "raise") -> ForgetReceipt:
        """Remove examples exactly: afterwards the index equals one built without them.

        Unknown or repeated ids raise :class:`UnknownIdError`/`DuplicateIdError` and change
        nothing, unless ``missing="ignore"``.
        """
        start = time.perf_counter()
        with self._lock:
            ids = check_known_ids(ids, self._slot_of, missing=missing)
            before = self.digest()
            selected_before = self._erase_ids() if self._model is not None else None
            if not ids:
                return ForgetReceipt((), len(self), False, False, None, before, before, time.perf_counter() - start)
            if self._store is not None:
                self._store.delete(ids)
            recompute_from = None
            if self._model is not None:
                if len(self._ids) - len(ids) >= self.k:
                    recompute_from = self._model.remove(ids).recompute_from
                else:
                    self._model = None
            self._drop_rows(ids)
            self._digest = None
            selected_after = self._erase_ids() if self._model is not None else None
            return ForgetReceipt(
                ids=tuple(ids), n_remaining=len(self._ids), selected_changed=selected_before != selected_after,
                recomputed=recompute_from is not None, recompute_from=recompute_from,
                digest_before=before, digest_after=self.digest(), seconds=time.perf_counter() - start,
            )

    def _drop_rows(self, ids: list[str]) -> None:
        for i in sorted(ids, key=self._slot_of.__getitem__, reverse=True):
            s = self._slot_of.pop(i)
            last = len(self._ids) - 1
            if s != last:
                self._vectors[s] = self._vectors[last]
                self._ids[s] = self._ids[last]
                self._slot_of[self._ids[s]] = s
            self._ids.pop()
            self._vectors[last] = 0.0
            del self._payloads[i]
            self._pool_hash.remove(np.array([self._example_hashes.pop(i)], dtype=np.uint64))

    # ------------------------------------------------------------------ queries
    def select(self, query_vector=None, k: int | None = None) -> list[SelectedExample]:
        """Select ``k`` examples (default: the index's k).

        ``erase``: the same set for every query, in cluster order; ``score`` is the cosine
        similarity to the query when one is given, else to the example's cluster centroid.
        ``similarity``: exact top-k by cosine to ``query_vector`` (required), ties by id.
        """
        k = self.k if k is None else check_positive_int(k, "k")
        with self._lock:
            n = len(self._ids)
            if n == 0:
                raise ERASEError("the example pool is empty: add examples before selecting")
            if k > n:
                raise ERASEError(f"k={k} is larger than the pool of {n} examples")
            q = None
            if query_vector is not None:
                q = check_vectors(query_vector, dim=self._dim, name="query_vector")[0]
                if not np.any(q):
                    raise ERASEError("query_vector is all zeros")
            if self.strategy == "similarity":
                if q is None:
                    raise ERASEError("strategy 'similarity' needs a query_vector")
                ranked = top_k_by_cosine(self._vectors[:n], self._ids, q, k)
                return [SelectedExample(self._ids[r], self._payloads[self._ids[r]], s) for r, s in ranked]
            if k > self.k:
                raise ERASEError(f"strategy 'erase' selects at most the index's k={self.k} examples; got k={k}")
            chosen = self._erase_ids()[:k]
            if q is not None:
                qn = q / np.linalg.norm(q)
                scores = [float(self._vectors[self._slot_of[i]].astype(np.float64) @ qn) for i in chosen]
            else:
                scores = self._centroid_similarity(chosen)
            return [SelectedExample(i, self._payloads[i], s) for i, s in zip(chosen, scores)]

    def _erase_ids(self) -> list[str]:
        model = self._model
        if model is None:
            raise ERASEError(
                f"strategy 'erase' needs at least k={self.k} examples to cluster; the pool has {len(self._ids)}"
            )
        reps = model.representative_ids_
        if all(r is not None for r in reps):
            return list(reps)
        ids = list(self._ids)
        return fill_representatives(reps, model.coordinates(ids), ids, model.centroids_, self.k)

    def _centroid_similarity(self, chosen: list[str]) -> list[float]:
        model = self._model
        labels = model.predict(np.stack([self._vectors[self._slot_of[i]] for i in chosen]))
        pts = model.coordinates(chosen)
        cents = model.centroids_[labels]
        num = np.einsum("ij,ij->i", pts, cents)
        den = np.linalg.norm(pts, axis=1) * np.linalg.norm(cents, axis=1)
        return [float(x) for x in np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)]

    def get(self, example_id: str) -> Any:
        with self._lock:
            if example_id not in self._payloads:
                from ._validation import UnknownIdError

                raise UnknownIdError(f"unknown id {example_id!r}")
            return self._payloads[example_id]

    def vector(self, example_id: str) -> np.ndarray:
        """The stored (unit, float32) embedding of an example."""
        with self._lock:
            return self._vectors[self._slot_of[example_id]].copy()

    @property
    def ids(self) -> list[str]:
        """Ids in canonical (sorted) order."""
        with self._lock:
            return sorted(self._ids)

    @property
    def lock(self):
        """The index's re-entrant lock: hold it to make a compound read (size, then select) atomic."""
        return self._lock

    @property
    def dim(self) -> int | None:
        return self._dim

    @property
    def model(self) -> QuantizedKMeans | None:
        """The clustering behind the ``erase`` strategy (None while the pool is smaller than k,
        and always None for ``similarity``, which does not cluster)."""
        return self._model

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, example_id) -> bool:
        return example_id in self._slot_of

    # ------------------------------------------------------------------ integrity
    def digest(self) -> str:
        """SHA-256 of the parameters, the multiset of (id, payload, vector) and the clustering."""
        with self._lock:
            if self._digest is not None:
                return self._digest
            h = hashlib.sha256()
            params = {key: v for key, v in self.config().items() if key not in ("format_version", "dim")}
            h.update(json.dumps(params, sort_keys=True).encode())
            h.update(f"{len(self._ids)}:{self._pool_hash.hexdigest()}".encode())
            h.update((self._model.digest() if self._model is not None else "no-model").encode())
            self._digest = h.hexdigest()
            return self._digest

    def fingerprint(self) -> str:
        """Hash of the ordered ``erase`` selection: changes exactly when the selected set does."""
        with self._lock:
            chosen = self._erase_ids() if self._model is not None else sorted(self._ids)
            body = json.dumps([[i, self._example_hashes[i]] for i in chosen]).encode()
            return hashlib.sha256(body).hexdigest()[:32]

    @property
    def path(self) -> Path | None:
        """The SQLite file this index writes through to (None when in memory)."""
        return None if self._store is None else self._store.path

    def save(self, path: str | os.PathLike) -> None:
        """Write a byte-exact copy of this index to a new SQLite file (one transaction).

        ``ExampleIndex.open(path)`` then gives the identical digest. The copy is independent:
        later forgets on this index do not reach it, so prefer ``path=`` for stores that must
        follow deletions.
        """
        from .store import SQLiteExampleStore

        with self._lock:
            if Path(path).exists():
                raise ERASEError(f"{path} already exists: save() writes a new file")
            order = sorted(self._ids)
            with SQLiteExampleStore(path) as store:
                store.write_config(self.config())
                if order:
                    store.add(
                        order, [_payload_json(self._payloads[i]) for i in order],
                        np.stack([self._vectors[self._slot_of[i]] for i in order]),
                    )

    def rebuilt(self) -> "ExampleIndex":
        """A fresh in-memory index built from scratch on the current examples, same parameters."""
        with self._lock:
            fresh = ExampleIndex(
                self.k, strategy=self.strategy, epsilon=self.epsilon, n_iter=self.n_iter, seed=self.seed,
                projection_dim=self.projection_dim,
            )
            if self._ids:
                order = sorted(self._ids)
                unit = np.stack([self._vectors[self._slot_of[i]] for i in order])
                pj = [_payload_json(self._payloads[i]) for i in order]
                fresh._load_unit_vectors(unit, [self._payloads[i] for i in order], order, pj)
            return fresh

    def verify(self) -> bool:
        """Rebuild from scratch on the remaining examples with the same seed; compare digests."""
        with self._lock:
            return self.rebuilt().digest() == self.digest()

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    def __enter__(self) -> "ExampleIndex":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ExampleIndex(k={self.k}, strategy={self.strategy!r}, n={len(self)}, dim={self._dim})"
