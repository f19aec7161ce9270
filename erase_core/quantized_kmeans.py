"""Quantized k-means with exact, usually cheap, deletion and insertion (Ginart et al., 2019).

Lloyd iterations whose centroids are rounded to a grid of spacing ``epsilon`` with a random
(data-independent) phase. For each iteration the sufficient statistics (per-cluster integer
sums and counts) and every point's label are kept. Removing a point subtracts it from the
statistics of the clusters it belonged to, iteration by iteration; as long as no quantized
centroid moves, nothing else can change and the update stops there. Only when a centroid
moves (or the point seeded the initialisation) is the model recomputed, from the first
iteration that changed. Insertion is the mirror image.

All arithmetic is exact (see :mod:`erase_core.fixed_point`), seeding is keyed on ids (see
:mod:`erase_core.seeding`), and ties break by cluster index then id, so the complete state is a
function of the set of (id, vector) pairs and the parameters alone: after any sequence of
``fit``/``insert``/``remove`` it is bit-for-bit what ``fit`` on the remaining data gives.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import struct
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from json.encoder import encode_basestring_ascii as _json_str  # json.dumps of a str (ensure_ascii)

from ._validation import ERASEError, check_ids, check_known_ids, check_vectors
from .fixed_point import FixedPointSpace
from .params import (DEFAULT_EPSILON, DEFAULT_PROJECTION_DIM, MAX_CLUSTERS, MAX_ITER, MAX_PROJECTION_DIM, MIN_SCALE,
                     check_params, parameter_limits)
from .hashing import (MultisetHash, _mix_int, column_weight, id_hashes, row_form_ints, row_forms,
                      row_hashes, splitmix64)
from .score_table import ScoreTable, scores
from .seeding import RaceKey, Seeding, insertion_changes_seeding, seed_plusplus

#: Rows per block so that a block's float64 temporaries stay near 4 MB (fresh multi-100 MB
#: temporaries cost more in page faults than in arithmetic).
_BLOCK_BYTES = 1 << 22


_THREADPOOLS: Any = None
_THREADPOOLS_MODULES = 0


def _one_blas_thread():
    """A context in which BLAS runs one thread: the products of a fit or a recompute are
    skinny (n x d' times d' x k) and memory-bound, so a second thread gains little on a quiet
    machine, while on a loaded one (threads spinning at barriers for a core another process
    holds) it made a recompute take seconds. Local to the library's hot path: the caller's own
    BLAS settings are restored on exit. A no-op without threadpoolctl."""
    global _THREADPOOLS, _THREADPOOLS_MODULES
    # BLAS libraries loaded after the controller was built (torch, faiss imported later) would
    # escape it: rebuild it whenever modules were imported since (a new library comes with one).
    if _THREADPOOLS is None or (_THREADPOOLS and _THREADPOOLS_MODULES != len(sys.modules)):
        try:
            from threadpoolctl import ThreadpoolController

            _THREADPOOLS = ThreadpoolController()
        except Exception:  # pragma: no cover - threadpoolctl is a dependency
            _THREADPOOLS = False
        _THREADPOOLS_MODULES = len(sys.modules)
    if not _THREADPOOLS:
        return contextlib.nullcontext()
    return _THREADPOOLS.limit(limits=1, user_api="blas")


def _block_rows(width: int) -> int:
    return max(256, _BLOCK_BYTES // (8 * max(1, width)))


#: Defaults and limits of the parameters: declared with their rules in :mod:`erase_core.params`.
__all__ = ["DEFAULT_EPSILON", "DEFAULT_PROJECTION_DIM", "FittedState", "MAX_CLUSTERS", "MAX_ITER", "MAX_PROJECTION_DIM",
           "MIN_SCALE", "QuantizedKMeans", "STATE_FORMAT", "UpdateReport", "parameter_limits"]


#: Version of :meth:`FittedState.to_bytes`' layout (stored inside a store's open image,
#: which keeps those bytes without reading them).
STATE_FORMAT = 1
_STATE_MAGIC = b"QKMSTATE"
_STATE_PREFIX = struct.Struct("<8sII")  # magic, format, header length (the header is padded to 8 bytes)


@dataclass
class FittedState:
    """A fit's seeding and per-iteration records (see :meth:`QuantizedKMeans.export_state`):
    ``labels`` is n x (used columns) in the fit's row order. Plain JSON and arrays: no pickle.

    :meth:`to_bytes` / :meth:`from_bytes` are its one serialised form (the clustering owns its
    format): ``b"QKMSTATE"``, u32 :data:`STATE_FORMAT`, u32 header length, a JSON header
    (parameters, seeding, shapes), then centroids f8, sums i8, counts i8 and labels i2,
    little-endian."""

    params: dict
    n_rec: int
    converged: bool
    seeds: list
    keys: list
    centroids: np.ndarray
    sums: np.ndarray
    counts: np.ndarray
    labels: np.ndarray

    def to_bytes(self) -> bytes:
        n, cols = self.labels.shape
        k, m = self.centroids.shape[1], self.centroids.shape[2]
        header = json.dumps({"params": self.params, "n_rec": int(self.n_rec), "converged": bool(self.converged),
                             "seeds": list(self.seeds), "keys": [list(key) for key in self.keys],
                             "n": int(n), "label_cols": int(cols), "k": int(k), "m": int(m)},
                            ensure_ascii=False).encode("utf-8")
        header += b" " * (-len(header) % 8)  # the arrays that follow start 8-byte aligned
        return b"".join([_STATE_PREFIX.pack(_STATE_MAGIC, STATE_FORMAT, len(header)), header,
                         np.ascontiguousarray(self.centroids, dtype="<f8").tobytes(),
                         np.ascontiguousarray(self.sums, dtype="<i8").tobytes(),
                         np.ascontiguousarray(self.counts, dtype="<i8").tobytes(),
                         np.ascontiguousarray(self.labels, dtype="<i2").tobytes()])

    __bytes__ = to_bytes

    @classmethod
    def from_bytes(cls, data) -> "FittedState":
        """The state :meth:`to_bytes` wrote (``data``: any bytes-like object; the arrays are
        read-only views of it, not copies). Anything else raises :class:`ValueError`."""
        view = memoryview(data).cast("B")
        try:
            magic, fmt, header_len = _STATE_PREFIX.unpack_from(view, 0)
            if magic != _STATE_MAGIC or fmt != STATE_FORMAT:
                raise ValueError(f"not a clustering state of format {STATE_FORMAT}")
            at = _STATE_PREFIX.size
            head = json.loads(bytes(view[at : at + header_len]))
            at += header_len
            n, cols, k, m, n_rec = (int(head[key]) for key in ("n", "label_cols", "k", "m", "n_rec"))
            sizes = [8 * (n_rec + 1) * k * m, 8 * n_rec * k * m, 8 * n_rec * k, 2 * n * cols]
            if min(n, cols, k, m, n_rec) < 0 or at + sum(sizes) != len(view):
                raise ValueError("clustering state of the wrong size")
            cuts = np.cumsum([at] + sizes).tolist()
            piece = [view[cuts[i] : cuts[i + 1]] for i in range(4)]
            return cls(
                params=head["params"], n_rec=n_rec, converged=bool(head["converged"]), seeds=list(head["seeds"]),
                keys=[tuple(key) for key in head["keys"]],
                centroids=np.frombuffer(piece[0], dtype="<f8").reshape(n_rec + 1, k, m),
                sums=np.frombuffer(piece[1], dtype="<i8").reshape(n_rec, k, m),
                counts=np.frombuffer(piece[2], dtype="<i8").reshape(n_rec, k),
                labels=np.frombuffer(piece[3], dtype="<i2").reshape(n, cols),
            )
        except (KeyError, TypeError, struct.error, json.JSONDecodeError) as exc:
            raise ValueError(f"malformed clustering state: {exc!r}") from None


@dataclass(frozen=True)
class UpdateReport:
    """What one ``insert``/``remove`` did.

    ``recompute_from`` is None when only statistics were updated, -1 when the seeding had to
    be rerun (a full refit), or the Lloyd iteration from which the model was recomputed.
    ``rejoined``: see the field.
    """

    n_points: int
    recompute_from: int | None
    representatives_changed: bool
    #: A recompute that stopped where the new run rejoined the previous one (the same
    #: centroids from some iteration on), rather than running to its end. How the update was
    #: computed, not what it did: left out of equality (a full recompute equals it).
    rejoined: bool = field(default=False, compare=False)

    @property
    def recomputed(self) -> bool:
        return self.recompute_from is not None


class QuantizedKMeans:
    """k-means with quantized centroids, exact deletion and insertion.

    Parameters
    ----------
    n_clusters : number of clusters k.
    epsilon : grid spacing of the quantized centroids, in the units of the input vectors
        (after the optional projection, in its norm-preserving units). Larger is more stable
        under deletion and coarser. Default :data:`DEFAULT_EPSILON` (for unit vectors).
    n_iter : maximum number of Lloyd iterations (stops earlier once centroids repeat).
    seed : seed of the k-means++ race, the grid phase and the projection.
    scale : fixed-point resolution: integer units per 1.0 of input.
    projection_dim : cluster in a seeded random ±1 projection to this many dimensions.
        None (default): :data:`DEFAULT_PROJECTION_DIM` when the input has more dimensions than
        that, else no projection; 0: never project.

    Out-of-range parameters raise :class:`ERASEError` here, not at fit time: n_clusters in
    [1, MAX_CLUSTERS], n_iter in [1, MAX_ITER], projection_dim at most MAX_PROJECTION_DIM,
    scale at least MIN_SCALE, and scale and epsilon small enough that any vectors of norm <= 1
    and up to :data:`~erase_core.fixed_point.MAX_GUARANTEED_DIM` dimensions are clustered in
    exact arithmetic (see :func:`parameter_limits`; with the defaults, epsilon < 256).

    Fitted attributes: ``centroids_`` (k, d'), ``ids_`` (sorted), ``labels_`` (aligned with
    ``ids_``), ``n_iter_``, ``seed_ids_``, ``representative_ids_``.
    """

    # set by fitting (and kept up to date by every update)
    _points_hash: MultisetHash  # multiset hash of the points with their labels
    _rep_slot: np.ndarray  # per cluster: the slot of its representative, -1 for none
    _digest_parts: tuple[str, str] | None  # cached parts of digest(), None: recompute
    _rejoined: bool  # whether the last recompute stopped where it rejoined the previous run

    def __init__(
        self,
        n_clusters: int,
        *,
        epsilon: float | None = None,
        n_iter: int = 10,
        seed: int = 0,
        scale: float = 4096.0,
        projection_dim: int | None = None,
    ):
        p = check_params("QuantizedKMeans", dict(n_clusters=n_clusters, n_iter=n_iter, epsilon=epsilon, seed=seed,
                                                 scale=scale, projection_dim=projection_dim))
        self.n_clusters, self.n_iter, self.epsilon = p["n_clusters"], p["n_iter"], p["epsilon"]
        self.seed, self.scale, self.projection_dim = p["seed"], p["scale"], p["projection_dim"]
        self._fitted = False

    # ------------------------------------------------------------------ public API
    def fit(self, X, ids=None, *, id_hashes: np.ndarray | None = None,
            state: "FittedState | bytes | memoryview | None" = None) -> "QuantizedKMeans":
        """Cluster the rows of ``X`` (ids default to "0".."n-1"). A float32 ``X`` is read as is
        (no float64 copy of the whole input). ``id_hashes``: the ids' :func:`~.hashing.id_hashes`
        when the caller already has them (a store keeps them); otherwise computed here.

        ``state``: what :meth:`export_state` gave for a fit on these same rows in this order
        (e.g. read back from a store's authenticated open image): the seeding and the Lloyd
        iterations are then installed instead of rerun; the coordinates, hashes and
        representatives are still derived from ``X``. A state that does not fit these rows
        and parameters raises :class:`ValueError` (the caller fits instead). It may also be
        given serialised, as :meth:`to_state` (:meth:`FittedState.to_bytes`) wrote it."""
        if state is not None and not isinstance(state, FittedState):
            state = FittedState.from_bytes(state)
        with _one_blas_thread():
            return self._fit(X, ids, id_hashes, state)

    def export_state(self) -> "FittedState":
        """The seeding and per-iteration records of this fit, rows in slot order (see ``fit``)."""
        self._check_fitted()
        ncols = self._ncols()
        return FittedState(
            params=self._state_params(), n_rec=self._n_rec, converged=self._converged,
            seeds=list(self._seeding.ids), keys=[(k.klass, float(k.value).hex(), k.id) for k in self._seeding.keys],
            centroids=self._C[: self._n_rec + 1].copy(), sums=self._S[: self._n_rec].copy(),
            counts=self._N[: self._n_rec].copy(), labels=self._labels[: self._n, :ncols].copy(),
        )

    def to_state(self) -> bytes:
        """:meth:`export_state` serialised (:meth:`FittedState.to_bytes`): what ``fit(X, ids,
        state=...)`` installs on the same rows in the same order instead of refitting."""
        return self.export_state().to_bytes()

    def _state_params(self) -> dict:
        return {"k": self.n_clusters, "n_iter": self.n_iter, "seed": self.seed, "epsilon": float(self.epsilon).hex(),
                "scale": float(self.scale).hex(), "projection_dim": self.projection_dim_, "dim": self._space.dim}

    def _install(self, state: "FittedState") -> None:
        """Install an exported state in place of seeding and Lloyd (after ``_append_rows``)."""
        k, m, T, n = self.n_clusters, self._coords.shape[1], self.n_iter, self._n
        if state.params != self._state_params():
            raise ValueError("fitted state of other parameters")
        n_rec, ncols = int(state.n_rec), state.labels.shape[1] if state.labels.ndim == 2 else -1
        want_cols = n_rec if state.converged else T + 1
        if not (1 <= n_rec <= T and ncols == want_cols and state.labels.shape[0] == n
                and state.centroids.shape == (n_rec + 1, k, m) and state.sums.shape == (n_rec, k, m)
                and state.counts.shape == (n_rec, k) and len(state.seeds) == k == len(state.keys)):
            raise ValueError("fitted state of another shape")
        labels = state.labels.astype(np.int16)
        if labels.size and (labels.min() < 0 or labels.max() >= k):
            raise ValueError("fitted state with labels out of range")
        for t in range(n_rec):  # the counts must be the labels' (one cheap pass per iteration)
            if not np.array_equal(np.bincount(labels[:, t], minlength=k), state.counts[t]):
                raise ValueError("fitted state whose counts disagree with its labels")
        if any(i not in self._slot_of for i in state.seeds):
            raise ValueError("fitted state seeded on unknown ids")
        self._seeding = Seeding(list(state.seeds), [RaceKey(int(c), float.fromhex(v), i) for c, v, i in state.keys])
        self._new_records()
        self._C[: n_rec + 1] = state.centroids
        self._S[:n_rec] = state.sums
        self._N[:n_rec] = state.counts
        self._labels[:n, :ncols] = labels
        self._n_rec, self._converged = n_rec, bool(state.converged)
        self._finish()

    def _fit(self, X, ids, id_hashes, state=None) -> "QuantizedKMeans":
        X = check_vectors(X, keep_float32=True)
        if ids is None:
            ids = [str(i) for i in range(X.shape[0])]
        ids = check_ids(ids, X.shape[0])
        if id_hashes is not None:
            id_hashes = np.asarray(id_hashes, dtype=np.uint64)
            if id_hashes.shape != (len(ids),):
                raise ERASEError(f"id_hashes must have shape ({len(ids)},); got {id_hashes.shape}")
        if X.shape[0] < self.n_clusters:
            raise ERASEError(f"n_clusters={self.n_clusters} is larger than the {X.shape[0]} points")
        self.projection_dim_ = self._resolve_projection(X.shape[1])
        space = FixedPointSpace(X.shape[1], scale=self.scale, projection_dim=self.projection_dim_, seed=self.seed)
        eps = space.epsilon_units(self.epsilon)
        self._alloc(len(ids), space.out_dim)
        coords = space.transform(X, out=self._coords[: len(ids)])  # in place: no second n x d' copy
        self._space = space
        self._eps = eps
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, 0x9A5E])
        self._phase = rng.integers(0, self._eps, size=(self.n_clusters, space.out_dim)).astype(np.int64)
        self._append_rows(coords, ids, id_hashes)
        if state is None:
            self._refit()
        else:
            self._install(state)
        self._fitted = True
        return self

    def remove(self, ids) -> UpdateReport:
        """Forget the points ``ids`` exactly. Unknown or repeated ids raise and change nothing."""
        self._check_fitted()
        if type(ids) in (list, tuple) and len(ids) == 1:
            report = self._remove_one(ids[0])
            if report is not None:
                return report
        ids = check_known_ids(ids, self._slot_of)
        if not ids:
            return UpdateReport(0, None, False)
        if self._n - len(ids) < self.n_clusters:
            raise ERASEError(
                f"removing {len(ids)} of {self._n} points would leave fewer than n_clusters={self.n_clusters}"
            )
        slots = np.array([self._slot_of[i] for i in ids], dtype=np.int64)
        coords = self._coords[slots].copy()
        labels = self._labels[slots].copy()
        reps_before = self._rep_ids()
        if not self._seed_ids.isdisjoint(ids):
            self._delete_slots(slots)
            self._refit()
            return UpdateReport(len(ids), -1, reps_before != self._rep_ids())
        changed = self._apply_delta(coords, labels, sign=-1)
        self._points_hash.remove_lanes(self._elem[slots, 1:])
        removed_reps = set(ids) & set(reps_before)
        self._delete_slots(slots)
        if changed is not None:
            self._resume_after(*changed)
            return UpdateReport(len(ids), changed[0] + 1, reps_before != self._rep_ids(), self._rejoined)
        if removed_reps:
            row_of = {i: r for r, i in enumerate(ids)}
            for j in {int(labels[row_of[rep], self._final_col]) for rep in removed_reps}:
                self._choose_representative(j)
        return UpdateReport(len(ids), None, bool(removed_reps))

    def _remove_one(self, i) -> UpdateReport | None:
        """Forget one known point when no centroid moves: the common case, in a handful of
        array operations (see :meth:`_refresh_bounds`). None, with nothing changed, when it
        does not apply (unknown id, a seed, too few points left, or a centroid would move):
        the general path then decides, and raises or recomputes."""
        slot = self._slot_of.get(i) if isinstance(i, str) else None
        if slot is None or self._n - 1 < self.n_clusters or i in self._seed_ids:
            return None
        T, m = self._n_rec, self._coords.shape[1]
        pairs = self._pair_base[:T] + self._labels[slot, :T]
        step = self._step
        np.multiply(self._coords[slot], self._step_coef, out=self._step3, casting="unsafe")
        rec = self._R.take(pairs, axis=0)
        rec -= step
        bounds = rec[:, m : 3 * m]
        if bounds.min() < 0:
            return None  # a centroid moves: nothing was written
        bounds += self._E.take(pairs, axis=0)
        self._R[pairs] = rec
        self._points_hash.remove_lanes(self._elem[slot, 1:])
        j = int(self._labels[slot, self._final_col])
        was_rep = int(self._rep_slot[j]) == slot
        self._delete_slot(slot)
        if was_rep:
            self._choose_representative(j)
        return UpdateReport(1, None, was_rep)

    def insert(self, X, ids) -> UpdateReport:
        """Add points exactly as if they had been part of ``fit``. Duplicate ids raise."""
        self._check_fitted()
        X = check_vectors(X, dim=self._space.dim)
        ids = check_ids(ids, X.shape[0], existing=self._slot_of)
        coords = self._space.transform(X)
        reps_before = self._rep_ids()
        hashes = id_hashes(ids)
        seed_coords = self._coords[[self._slot_of[i] for i in self._seeding.ids]]
        if insertion_changes_seeding(self._seeding, seed_coords, coords, ids, hashes, self.seed):
            self._append_rows(coords, ids, hashes)
            self._refit()
            return UpdateReport(len(ids), -1, reps_before != self._rep_ids())
        labels = np.zeros((len(ids), self._labels.shape[1]), dtype=self._labels.dtype)
        ncols = self._ncols()
        labels[:, :ncols], scores = self._assign_all_iterations(coords, ncols)
        changed = self._apply_delta(coords, labels, sign=+1)
        start = self._n
        self._append_rows(coords, ids, hashes)
        self._labels[start : self._n] = labels
        new_slots = np.arange(start, self._n)
        self._label_form[new_slots] = row_forms(labels[:, :ncols])
        if self._table is not None:
            self._table.set_rows(start, self._n, coords, scores)
        if changed is not None:
            self._resume_after(*changed, fresh=new_slots)
            return UpdateReport(len(ids), changed[0] + 1, reps_before != self._rep_ids(), self._rejoined)
        self._set_elements(new_slots, forms_current=True)
        self._points_hash.add_lanes(self._elem[new_slots, 1:])
        for s in new_slots:
            self._offer_representative(int(s))
        return UpdateReport(len(ids), None, reps_before != self._rep_ids())

    def predict(self, X) -> np.ndarray:
        """Index of the nearest final centroid for each row of ``X``."""
        self._check_fitted()
        return self._assign(self._space.transform(check_vectors(X, dim=self._space.dim)), self._final_centroids())

    def digest(self) -> str:
        """SHA-256 of the canonical state. Equal iff the models are equal.

        The state is the parameters, the seeding, every iteration's centroids, and the multiset
        of (id, vector, per-iteration labels); the per-iteration statistics are a function of
        the last. The centroid part is cached between recomputes, so this is O(k) after a
        cheap removal.
        """
        self._check_fitted()
        parts = self._digest_parts  # dropped when a representative or a recompute changes it
        if parts is None:
            parts = self._digest_parts = self._digest_text(self._rep_ids())
        text = f"{parts[0]}{self._n}{parts[1]}{self._points_hash.hexdigest()}"
        return hashlib.sha256(text.encode()).hexdigest()

    def _digest_text(self, reps: list[str | None]) -> tuple[str, str]:
        """What :meth:`digest` hashes, around the point count: the JSON of the parameter dict
        with sorted keys (equal to ``json.dumps(..., sort_keys=True)``), then the centroid
        digest. It changes only in a recompute (:meth:`_finish`) or when a representative
        changes (every assignment of ``_rep_slot`` but a slot move drops the cache)."""
        eps, proj, scale = (json.dumps(v) for v in (self.epsilon, self.projection_dim_, self.scale))
        reps_json = ", ".join("null" if r is None else _json_str(r) for r in reps)
        head = (
            f'{{"converged": {"true" if self._converged else "false"}, "dim": {self._space.dim}, '
            f'"eps": {eps}, "k": {self.n_clusters}, "n": '
        )
        tail = (
            f', "n_iter": {self.n_iter}, "n_rec": {self._n_rec}, "projection_dim": {proj}, '
            f'"reps": [{reps_json}], "scale": {scale}, "seed": {self.seed}, '
            f'"seeds": {json.dumps(self._seeding.ids)}}}{self._centroid_digest}'
        )
        return head, tail

    def canonical_state(self) -> dict:
        """Every piece of state, in canonical (id-sorted) order, for bit-for-bit comparisons."""
        self._check_fitted()
        order = [self._slot_of[i] for i in sorted(self._ids[: self._n])]
        return {
            "ids": [self._ids[s] for s in order],
            "coords": self._coords[order].copy(),
            "labels": self._labels[order].copy(),
            "centroids": self._C[: self._n_rec + 1].copy(),
            "sums": self._S[: self._n_rec].copy(),
            "counts": self._N[: self._n_rec].copy(),
            "seeds": list(self._seeding.ids),
            "seed_keys": [(k.klass, k.value, k.id) for k in self._seeding.keys],
            "representatives": self._rep_ids(),
            "representative_d2": self._rep_dist.copy(),
            "n_rec": self._n_rec,
            "converged": self._converged,
        }

    def inertia(self) -> float:
        """k-means objective (sum of squared distances to the final centroids), input units."""
        self._check_fitted()
        c = self._final_centroids()
        total = 0.0
        step = _block_rows(self._coords.shape[1])
        for lo in range(0, self._n, step):
            pts = self._coords[lo : min(self._n, lo + step)]
            lab = self._labels[lo : min(self._n, lo + step), self._final_col]
            diff = pts - c[lab]
            total += float(np.einsum("ij,ij->", diff, diff))
        return total / self._space.unit**2

    def __len__(self) -> int:
        return self._n if self._fitted else 0

    def __contains__(self, item) -> bool:
        return self._fitted and item in self._slot_of

    # fitted attributes ------------------------------------------------------
    @property
    def centroids_(self) -> np.ndarray:
        self._check_fitted()
        return self._space.to_float(self._final_centroids())

    @property
    def ids_(self) -> np.ndarray:
        self._check_fitted()
        return np.array(sorted(self._ids[: self._n]), dtype=object)

    @property
    def labels_(self) -> np.ndarray:
        self._check_fitted()
        order = [self._slot_of[i] for i in self.ids_]
        return self._labels[order, self._final_col].astype(np.int64)

    @property
    def n_iter_(self) -> int:
        self._check_fitted()
        return self._n_rec

    @property
    def seed_ids_(self) -> list[str]:
        self._check_fitted()
        return list(self._seeding.ids)

    @property
    def representative_ids_(self) -> list[str | None]:
        """Per cluster, the id of the member nearest its quantized centroid (None if empty)."""
        self._check_fitted()
        return self._rep_ids()

    def cluster_sizes(self) -> np.ndarray:
        self._check_fitted()
        return np.bincount(self._labels[: self._n, self._final_col], minlength=self.n_clusters)

    def coordinates(self, ids) -> np.ndarray:
        """Clustering-space coordinates (input units) of known ids."""
        self._check_fitted()
        return self._space.to_float(self._coords[[self._slot_of[i] for i in ids]])

    def _resolve_projection(self, dim: int) -> int | None:
        """The projection actually used for input dimension ``dim`` (None: none)."""
        if self.projection_dim is None:
            return DEFAULT_PROJECTION_DIM if dim > DEFAULT_PROJECTION_DIM else None
        return int(self.projection_dim) or None

    # ------------------------------------------------------------------ storage
    def _alloc(self, capacity: int, dim: int) -> None:
        cap = max(16, capacity)
        self._coords = np.zeros((cap, dim), dtype=np.float64)
        # n_clusters <= MAX_CLUSTERS < 2^15; column-major: a recompute reads and writes whole
        # iterations (one contiguous pass each), a forget moves one point's few entries
        self._labels = np.zeros((cap, self.n_iter + 1), dtype=np.int16, order="F")
        self._set_point_hashes(np.zeros((cap, 6), dtype=np.uint64))
        self._ids: list[str] = []
        self._slot_of: dict[str, int] = {}
        self._n = 0
        self._table: ScoreTable | None = None  # built at the first recompute (see _table_ready)

    def _set_point_hashes(self, table: np.ndarray) -> None:
        """Per point, in one row (one swap when a point is deleted): its id hash, the hash of
        its id and coordinates, its multiset-hash element (with its labels), that element's two
        lane terms (:meth:`~.hashing.MultisetHash.lanes_each`) and the linear form of its labels
        (:func:`~.hashing.row_forms`: updated by the labels that change, not recomputed)."""
        self._point_hashes = table
        self._hashes = table[:, 0]
        self._row_hash = table[:, 1]
        self._elem = table[:, 2:5]
        self._label_form = table[:, 5]

    def _append_rows(self, coords: np.ndarray, ids: list[str], hashes: np.ndarray | None = None) -> None:
        need = self._n + len(ids)
        if need > self._coords.shape[0]:
            cap = max(need, 2 * self._coords.shape[0])
            for name in ("_coords", "_labels", "_point_hashes"):
                old = getattr(self, name)
                new = np.zeros((cap,) + old.shape[1:], dtype=old.dtype, order="F" if old.ndim > 1 and old.flags.f_contiguous else "C")
                new[: self._n] = old[: self._n]
                setattr(self, name, new)
            self._set_point_hashes(self._point_hashes)
            if self._table is not None:
                self._table.grow(cap, self._n)
        lo = self._n
        if not (coords.base is self._coords and coords.__array_interface__["data"][0]
                == self._coords[lo:need].__array_interface__["data"][0]):  # fit transforms in place
            self._coords[lo:need] = coords
        self._hashes[lo:need] = id_hashes(ids) if hashes is None else hashes
        step = _block_rows(self._coords.shape[1])
        for b in range(lo, need, step):  # blocks: no full-size integer copy of the coordinates
            e = min(need, b + step)
            self._row_hash[b:e] = splitmix64(row_hashes(self._coords[b:e]) ^ self._hashes[b:e])
        self._labels[lo:need] = 0
        self._elem[lo:need] = 0  # set by _finish or insert, once the labels are known
        self._label_form[lo:need] = 0
        for offset, i in enumerate(ids):
            self._slot_of[i] = lo + offset
        self._ids.extend(ids)
        self._n = need

    def _delete_slot(self, s: int) -> None:
        """Swap-remove one row; a representative there is left unset (-1), one at the last
        slot follows its row."""
        last = self._n - 1
        ids = self._ids
        del self._slot_of[ids[s]]
        reps = self._rep_slot.tolist()
        if s in reps:
            self._rep_slot[reps.index(s)] = -1
            self._digest_parts = None
        if s != last:
            for arr in (self._coords, self._labels, self._point_hashes):
                arr[s] = arr[last]
            moved = ids[s] = ids[last]
            self._slot_of[moved] = s
            if last in reps:
                self._rep_slot[reps.index(last)] = s
        for arr in (self._coords, self._labels, self._point_hashes):
            arr[last] = 0  # no copy of a forgotten point lingers in spare capacity
        if self._table is not None:
            self._table.swap_remove(s, last)
        ids.pop()
        self._n = last

    def _delete_slots(self, slots: np.ndarray) -> None:
        """Swap-remove rows, highest slot first: O(|slots| * d), no pass over the data. A
        representative among them is left unset (-1) for the caller to choose again."""
        for s in sorted(np.asarray(slots).tolist(), reverse=True):
            self._delete_slot(s)

    # ------------------------------------------------------------------ Lloyd
    def _assign(self, coords: np.ndarray, centroids: np.ndarray) -> np.ndarray:
        """Nearest centroid per row, exact integer distances, ties to the lowest index."""
        out = np.empty(coords.shape[0], dtype=np.int64)
        step = _block_rows(max(coords.shape[1], centroids.shape[0]))
        for lo in range(0, coords.shape[0], step):
            out[lo : lo + step] = np.argmin(scores(coords[lo : lo + step], centroids), axis=1)
        return out

    def _statistics(self, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-cluster integer sums and counts of all points under ``labels``."""
        return self._cluster_sums(self._coords[: self._n], labels)

    def _cluster_sums(self, coords: np.ndarray, labels: np.ndarray, left: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Per-cluster integer sums and counts of ``coords`` under ``labels``; with ``left``, the
        change when those points move from clusters ``left`` to ``labels`` (left != labels).
        Blocked one-hot (or signed one-hot) products: exact, as integer partial sums stay below
        2^53. Runs under one BLAS thread (see :func:`_one_blas_thread`); a weighted ``bincount``
        gives the same integers but was 1.2-3x slower on a quiet machine."""
        k, n, m = self.n_clusters, coords.shape[0], coords.shape[1]
        sums = np.zeros((k, m), dtype=np.float64)
        step = _block_rows(max(m, k))
        for lo in range(0, n, step):
            hi = min(n, lo + step)
            cols = np.arange(hi - lo)
            onehot = np.zeros((k, hi - lo), dtype=np.float64)
            onehot[labels[lo:hi], cols] = 1.0
            if left is not None:
                onehot[left[lo:hi], cols] = -1.0
            sums += onehot @ coords[lo:hi]
        counts = np.bincount(labels[:n], minlength=k).astype(np.int64)
        if left is not None:
            counts -= np.bincount(left, minlength=k)
        return sums.astype(np.int64), counts

    def _quantize(self, sums: np.ndarray, counts: np.ndarray, previous: np.ndarray, rows=slice(None)) -> np.ndarray:
        """eps * round((mean - phase) / eps) + phase, in exact integer arithmetic; empty -> previous.

        ``rows`` selects the clusters whose statistics are given (default: all)."""
        eps = self._eps
        phase = self._phase[rows]
        n = np.maximum(counts, 1)[:, None]
        num = 2 * (sums - phase * n) + eps * n
        q = np.floor_divide(num, 2 * eps * n)
        out = (q * eps + phase).astype(np.float64)
        empty = counts == 0
        out[empty] = previous[empty]
        return out

    def _refit(self) -> None:
        """Full fit on the stored points: seeding, then Lloyd from iteration 0."""
        with _one_blas_thread():
            self._refit_now()

    def _refit_now(self) -> None:
        self._table = None  # new seeds, new trajectory: rebuilt at the next recompute
        ids = self._ids[: self._n]
        self._seeding, rows = seed_plusplus(self._coords[: self._n], ids, self._hashes[: self._n], self.n_clusters, self.seed)
        self._new_records()
        self._C[0] = self._coords[rows]
        self._lloyd_from(0)

    def _new_records(self) -> None:
        """Empty per-iteration records: quantized centroids, integer sums and counts.

        Sums, counts and the removal bounds of one (iteration, cluster) pair share a row of
        ``_R`` ([sums | upper | lower | count], int64), so a single-point removal reads and
        writes each touched pair's whole record in one gather and one scatter
        (see :meth:`_remove_one`); ``_S`` and ``_N`` are views of it."""
        k, m, T = self.n_clusters, self._coords.shape[1], self.n_iter
        self._C = np.zeros((T + 1, k, m), dtype=np.float64)
        self._R = np.zeros((T * k, 3 * m + 1), dtype=np.int64)
        blocks = self._R.reshape(T, k, 3 * m + 1)
        self._S = blocks[:, :, :m]
        self._N = blocks[:, :, 3 * m]
        self._E = np.zeros((T * k, 2 * m), dtype=np.int64)  # per pair: [2c - eps | -(2c + eps)]
        self._pair_base = np.arange(T, dtype=np.int64) * k
        self._step = np.zeros(3 * m + 1, dtype=np.int64)  # a removed point's [x | 2x | -2x | 1]
        self._step[3 * m] = 1
        self._step3 = self._step[: 3 * m].reshape(3, m)
        self._step_coef = np.array([[1.0], [2.0], [-2.0]])

    def _refresh_bounds(self, pairs=None) -> None:
        """The removal bounds of (iteration, cluster) ``pairs`` (flat indices t * k + j; all
        recorded ones when None), from their sums, counts and next centroid.

        Removing x from a pair (sums S, count n, next centroid c) leaves c unchanged iff, per
        coordinate, 2S - (n-1)(2c + eps) < 2x <= 2S - (n-1)(2c - eps): the same inequality as
        :meth:`_quantize`'s floor, solved for x (exact integers; for n = 1 it never holds, so
        emptying a cluster takes the general path). ``_R`` keeps upper = 2S - (n-1)(2c - eps)
        and lower = -(2S - (n-1)(2c + eps)) - 1, so the test is [2x | -2x] <= [upper | lower]."""
        k, m = self.n_clusters, self._coords.shape[1]
        if pairs is None:
            pairs = np.arange(self._n_rec * k)
        pairs = np.asarray(pairs, dtype=np.int64)
        tt, jj = pairs // k, pairs % k
        c2 = 2 * self._C[tt + 1, jj].astype(np.int64)
        rec = self._R[pairs]
        S2, n1 = 2 * rec[:, :m], rec[:, 3 * m : 3 * m + 1] - 1
        rec[:, m : 2 * m] = S2 - n1 * (c2 - self._eps)
        rec[:, 2 * m : 3 * m] = -(S2 - n1 * (c2 + self._eps)) - 1
        self._R[pairs] = rec
        self._E[pairs, :m] = c2 - self._eps
        self._E[pairs, m:] = -(c2 + self._eps)

    def _lloyd_from(self, t0: int) -> None:
        """Run iterations t0.. given valid centroids up to t0 and records before t0."""
        for t in range(t0, self.n_iter):
            labels = self._assign(self._coords[: self._n], self._C[t])
            self._labels[: self._n, t] = labels
            self._S[t], self._N[t] = self._statistics(labels)
            if self._close_iteration(t):
                self._finish()
                return
        self._labels[: self._n, self.n_iter] = self._assign(self._coords[: self._n], self._C[self.n_iter])
        self._finish()

    def _close_iteration(self, t: int) -> bool:
        """Compute C_{t+1} from the statistics of iteration t; True when it repeats C_t."""
        self._C[t + 1] = self._quantize(self._S[t], self._N[t], self._C[t])
        self._converged = bool(np.array_equal(self._C[t + 1], self._C[t]))
        self._n_rec = t + 1
        return self._converged

    def _resume_after(self, t: int, last: int, fresh: np.ndarray | None = None) -> None:
        """Statistics of iteration t are current but C_{t+1} may have changed: recompute from
        there. ``last``: the last iteration whose next centroids the update itself changed
        (:meth:`_apply_delta`). ``fresh``: slots of just inserted points (labelled, no
        multiset-hash element yet)."""
        with _one_blas_thread():
            if self._table_ready():
                self._resume_with_table(t, last, fresh)
            else:
                self._resume_now(t)

    def _resume_now(self, t: int) -> None:
        if self._close_iteration(t):
            self._finish()
        elif t + 1 < self.n_iter:
            self._lloyd_from(t + 1)
        else:
            self._labels[: self._n, self.n_iter] = self._assign(self._coords[: self._n], self._C[self.n_iter])
            self._finish()

    def _table_ready(self) -> bool:
        """Whether a :class:`~.score_table.ScoreTable` is kept, building it when it is allowed
        (it is built at the first recompute, not in ``fit``: a model that is never recomputed
        never pays its memory)."""
        if self._table is not None:
            return True
        n, coords = self._n, self._coords
        if not ScoreTable.allowed(self.n_iter + 1, self.n_clusters, coords.shape[1]):
            return False
        table = ScoreTable(self.n_iter + 1, coords.shape[0], self.n_clusters, coords[:n])
        step = _block_rows(max(coords.shape[1], self.n_clusters))
        for c in range(self._ncols()):  # column c holds the scores against C[c]
            table.set_column(c, n, coords, self._C[c], step)
        self._table = table
        return True

    def _resume_with_table(self, t: int, last: int, fresh: np.ndarray | None) -> None:
        """:meth:`_resume_now`, exactly, touching only what moves: each later iteration's scores
        are the previous run's scores of that iteration updated for the centroids that moved
        (:meth:`~.score_table.ScoreTable.relabel`, which also takes their argmin), and its
        statistics the previous run's plus the points whose label changed.

        The previous run's iteration ``c`` is the reference for the new iteration ``c``; past the
        previous run's convergence its repeated last iteration is. Its labels, statistics and
        (via the table) scores are those of the current points: removals and insertions updated
        them in every iteration before calling this.

        When a new iteration's centroids equal the previous run's and the update changed no later
        iteration's next centroids directly (past ``last``), the run has rejoined the previous
        one: that iteration's labels, statistics and every later iteration are the previous
        run's, so the recompute stops there (most recomputes move one centroid coordinate for an
        iteration or two and rejoin)."""
        n, T, table = self._n, self.n_iter, self._table
        if table is None:  # _table_ready() builds it before a recompute resumes from it
            raise RuntimeError("a recompute resumed without its score table")
        coords = self._coords[:n]
        old_C, old_S, old_N = self._C.copy(), self._S.copy(), self._N.copy()
        old_final, old_n_rec, old_converged = self._final_col, self._n_rec, self._converged
        changed = np.zeros(n, dtype=bool)
        minima = np.empty(n, dtype=np.int64)  # each point's score for its label in the column last relabelled
        kept = None  # the previous run's last column, once this run overwrites it and goes on
        own = None  # each point's score for its label in the last column computed, if it is the final one
        col = t + 1
        done = self._close_iteration(t)
        while not done:
            r = min(col, old_final)
            idle = np.array_equal(self._C[col], old_C[r])  # no centroid moved against the reference
            if idle and col == r and col > last:  # rejoined the previous run
                self._n_rec, self._converged = old_n_rec, old_converged
                self._finish(changed=changed, old_ncols=old_final + 1, fresh=fresh, rejoined=True)
                return
            if kept is not None and col > old_final:
                ref_labels, ref_scores = kept
            else:
                ref_labels, ref_scores = self._labels[:n, r], table.values[r, :, :n]
                if col == old_final < T:
                    kept = ref_labels.copy(), ref_scores.copy()
            column = table.values[col, :, :n]
            source = None if col == r else ref_scores
            if idle:  # the reference's scores, labels and statistics hold as they are
                if source is not None:
                    column[...] = source
                labels, movers, own = ref_labels, np.empty(0, dtype=np.int64), None
            else:
                labels = table.relabel(column, coords, old_C[r], self._C[col], source, best=minima)
                movers = np.flatnonzero(labels != ref_labels)
                own = minima
            changed[movers] = True
            if col <= old_final and len(movers):  # the label forms follow the changed labels
                step = labels.take(movers).astype(np.int64) - ref_labels.take(movers)
                with np.errstate(over="ignore"):
                    self._label_form[movers] += step.view(np.uint64) * column_weight(col)
            if col < T:  # before the labels are written: the reference may be this very column
                S, N = self._moved_statistics(col, labels, (old_S[r], old_N[r], ref_labels, movers))
            if col != r or not idle:
                self._labels[:n, col] = labels
            if col == T:
                break
            self._S[col], self._N[col] = S, N
            done = self._close_iteration(col)
            col += 1
        self._finish(changed=changed, old_ncols=old_final + 1, fresh=fresh, own=own)

    def _moved_statistics(self, col: int, labels: np.ndarray, reference: tuple) -> tuple[np.ndarray, np.ndarray]:
        """Sums and counts of iteration ``col`` under ``labels``: a reference's plus the points
        whose label differs from it. ``reference`` is the previous run's (sums, counts, labels,
        movers); the new run's iteration ``col - 1`` (already written) is used instead when
        fewer labels differ from it, as in the late iterations of a converging run."""
        S, N, ref_labels, movers = reference
        n = len(labels)
        if 64 * len(movers) > n:  # worth a second comparison
            prev = self._labels[:n, col - 1]
            since = np.flatnonzero(labels != prev)
            if len(since) < len(movers):
                S, N, ref_labels, movers = self._S[col - 1], self._N[col - 1], prev, since
        S, N = S.copy(), N.copy()
        if len(movers):
            dS, dN = self._cluster_sums(np.take(self._coords[:n], movers, axis=0), labels.take(movers),
                                        ref_labels.take(movers))
            S += dS
            N += dN
        return S, N

    def _finish(self, changed: np.ndarray | None = None, old_ncols: int = -1, fresh: np.ndarray | None = None,
                own: np.ndarray | None = None, rejoined: bool = False) -> None:
        """Refresh derived state after a (partial) recompute: unused records, hashes, representatives.

        Records of iterations past the new ``n_rec`` may still hold statistics of forgotten
        points; they are zeroed, so every array is exactly what a fresh fit leaves.
        ``changed`` (with ``old_ncols``, ``fresh``; from :meth:`_resume_with_table`): the slots
        whose labels changed; when the number of label columns is unchanged only their
        multiset-hash elements (and those of the ``fresh`` slots) are recomputed. ``own``: each
        point's score for its final label, when the recompute computed the final column.
        ``rejoined``: the final column and centroids are the previous run's, so representatives
        are chosen again only where one was forgotten or a ``fresh`` point may be nearer."""
        self._rejoined = rejoined
        self._final_col = self._n_rec - 1 if self._converged else self.n_iter
        ncols = self._ncols()
        if changed is not None and ncols != old_ncols:  # columns added or dropped: forms follow
            n = self._n
            with np.errstate(over="ignore"):
                for c in range(old_ncols, ncols):
                    self._label_form[:n] += self._labels[:n, c].astype(np.uint64) * column_weight(c)
                for c in range(ncols, old_ncols):
                    self._label_form[:n] -= self._labels[:n, c].astype(np.uint64) * column_weight(c)
        self._labels[: self._n, ncols:] = 0
        if self._table is not None:  # columns past the previous run's were never written
            self._table.values[ncols : max(ncols, old_ncols), :, : self._n] = 0
        self._R[self._n_rec * self.n_clusters :] = 0  # sums, counts and bounds
        self._E[self._n_rec * self.n_clusters :] = 0
        self._C[self._n_rec + 1 :] = 0
        if changed is not None and ncols == old_ncols:
            stale = np.flatnonzero(changed)  # fresh slots' lane terms are still 0: removing them is a no-op
            if len(stale):
                self._points_hash.remove_lanes(self._elem[stale, 1:])
            slots = stale if fresh is None else np.union1d(stale, fresh)
            if len(slots):
                self._set_elements(slots, forms_current=True)
                self._points_hash.add_lanes(self._elem[slots, 1:])
        else:
            self._set_elements(slice(0, self._n), forms_current=changed is not None)
            self._points_hash = MultisetHash()
            self._points_hash.add_lanes(self._elem[: self._n, 1:])
        self._refresh_bounds()
        self._digest_parts = None
        self._seed_ids = frozenset(self._seeding.ids)  # the seeding changes only in a refit, which ends here
        centroid_hash = hashlib.sha256()
        centroid_hash.update(self._C[: self._n_rec + 1].tobytes())
        self._centroid_digest = centroid_hash.hexdigest()
        if rejoined and (fresh is None or len(fresh) <= 64):
            for j in np.flatnonzero(self._rep_slot < 0).tolist():
                self._choose_representative(j)
            for s in [] if fresh is None else fresh.tolist():
                self._offer_representative(s)
        else:
            self._choose_all_representatives(own)

    def _ncols(self) -> int:
        return self._final_col + 1

    def _final_centroids(self) -> np.ndarray:
        # Converged: C[n_rec] repeats C[n_rec - 1]; otherwise n_rec == n_iter.
        return self._C[self._n_rec]

    def _assign_all_iterations(self, coords: np.ndarray, ncols: int) -> tuple[np.ndarray, np.ndarray]:
        """Labels of a few new points against the centroids of every recorded iteration at once,
        and their scores (rows, ncols, k) for the :class:`~.score_table.ScoreTable`."""
        C = self._C[:ncols]  # (R, k, m)
        d2 = scores(coords, C.reshape(-1, C.shape[2])).reshape(len(coords), ncols, -1)
        return np.argmin(d2, axis=2), d2

    def _apply_delta(self, coords: np.ndarray, labels: np.ndarray, *, sign: int) -> tuple[int, int] | None:
        """Add (sign=+1) or subtract (-1) points from every iteration's statistics.

        All iterations are checked at once: for each touched (iteration t, cluster j) the
        centroid C_{t+1}[j] is re-quantized from the updated statistics. Returns the first and
        the last iteration whose next centroids change, or None when nothing changes. Statistics are
        applied to every recorded iteration either way: a recompute from the first change then
        updates later iterations' statistics by the points whose labels move
        (:meth:`_resume_with_table`), or recomputes them.
        """
        T = self._n_rec
        ints = coords.astype(np.int64)
        dN: int | np.ndarray  # one point: its sign; several: per touched (iteration, cluster) pair
        if len(ints) == 1:
            tt = np.arange(T)
            jj = labels[0, :T].astype(np.int64)
            dS = sign * ints  # broadcasts over the T pairs
            dN = sign
        else:
            key = (np.arange(T)[None, :] * self.n_clusters + labels[:, :T].astype(np.int64)).reshape(-1)
            pairs, inverse = np.unique(key, return_inverse=True)
            dS = np.zeros((len(pairs), ints.shape[1]), dtype=np.int64)
            np.add.at(dS, inverse, sign * np.repeat(ints, T, axis=0))
            dN = sign * np.bincount(inverse, minlength=len(pairs))
            tt, jj = pairs // self.n_clusters, pairs % self.n_clusters
        new_S = self._S[tt, jj] + dS
        new_N = self._N[tt, jj] + dN
        new_C = self._quantize(new_S, new_N, self._C[tt, jj], jj)
        changed = (new_C != self._C[tt + 1, jj]).any(axis=1)
        moved = tt[changed]
        span = (int(moved.min()), int(moved.max())) if len(moved) else None
        self._S[tt, jj] = new_S
        self._N[tt, jj] = new_N
        if span is None:  # else a recompute follows and refreshes every bound
            self._refresh_bounds(tt * self.n_clusters + jj)
        return span

    # ------------------------------------------------------------------ digest & representatives
    def _set_elements(self, slots: np.ndarray | slice, forms_current: bool = False) -> None:
        """Record the multiset-hash elements (id, vector, labels) of ``slots`` (indices, or a
        slice: no gather of every row when all are recomputed) and their lane terms.

        An element is ``splitmix64(row_hash ^ row_hashes(labels))``, the labels' row hash taken
        from their linear form; ``forms_current``: the kept forms are up to date (a recompute
        through the score table updates them), else they are computed from the labels."""
        ncols = self._ncols()
        if not isinstance(slots, slice) and len(slots) <= 8:  # a few points: plain integers are faster
            slots = np.asarray(slots, dtype=np.int64)
            if forms_current:
                forms = self._label_form[slots].tolist()
            else:
                forms = row_form_ints(self._labels[slots, :ncols].tolist())
                self._label_form[slots] = np.array(forms, dtype=np.uint64)
            elem = np.array([_mix_int(r ^ _mix_int(f ^ ncols)) for r, f in zip(self._row_hash[slots].tolist(), forms)],
                            dtype=np.uint64)
            self._elem[slots, 0] = elem
            self._elem[slots, 1:] = MultisetHash.lanes_each(elem)
            return
        if not forms_current:
            self._label_form[slots] = row_forms(self._labels[slots, :ncols])
        if isinstance(slots, slice):  # written in place
            MultisetHash.elements_into(self._elem[slots], self._row_hash[slots], self._label_form[slots], ncols)
        else:
            out = np.empty((len(slots), 3), dtype=np.uint64)
            MultisetHash.elements_into(out, self._row_hash[slots], self._label_form[slots], ncols)
            self._elem[slots] = out

    def _choose_all_representatives(self, own: np.ndarray | None = None) -> None:
        """Per cluster, the member nearest the final centroid (ties: smallest id). One pass.
        ``own``: each point's score for its final label, when the caller has it (a work array:
        it is overwritten)."""
        k, n = self.n_clusters, self._n
        labels = self._labels[:n, self._final_col].astype(np.int64)
        if self._table is not None:  # ||x - c||^2 = ||x||^2 + score: the same integers
            if own is None:
                own = np.take_along_axis(self._table.values[self._final_col, :, :n], labels[None, :], axis=0)[0]
            own += self._table.norms[:n]
            d2 = own.astype(np.float64)
        else:
            centroids = self._final_centroids()
            d2 = np.empty(n)
            step = _block_rows(self._coords.shape[1])
            for lo in range(0, n, step):
                hi = min(n, lo + step)
                diff = self._coords[lo:hi] - centroids[labels[lo:hi]]
                d2[lo:hi] = np.einsum("ij,ij->i", diff, diff)
        best = np.full(k, np.inf)
        np.minimum.at(best, labels, d2)
        self._digest_parts = None
        self._rep_slot = np.full(k, -1, dtype=np.int64)
        self._rep_dist = best
        for s in np.flatnonzero(d2 == best[labels]):
            j = labels[s]
            current = self._rep_slot[j]
            if current < 0 or self._ids[s] < self._ids[current]:
                self._rep_slot[j] = s

    def _choose_representative(self, j: int) -> None:
        self._digest_parts = None
        members = np.flatnonzero(self._labels[: self._n, self._final_col] == j)
        if len(members) == 0:
            self._rep_slot[j], self._rep_dist[j] = -1, np.inf
            return
        diff = self._coords[members] - self._final_centroids()[j]
        d2 = np.einsum("ij,ij->i", diff, diff)
        tied = members[d2 == d2.min()]
        best = min(tied, key=lambda s: self._ids[s])
        self._rep_slot[j], self._rep_dist[j] = best, d2.min()

    def _offer_representative(self, slot: int) -> None:
        j = int(self._labels[slot, self._final_col])
        diff = self._coords[slot] - self._final_centroids()[j]
        d2 = float(diff @ diff)
        current = self._rep_slot[j]
        if current < 0 or d2 < self._rep_dist[j] or (d2 == self._rep_dist[j] and self._ids[slot] < self._ids[current]):
            self._rep_slot[j], self._rep_dist[j] = slot, d2
            self._digest_parts = None

    def _rep_ids(self) -> list[str | None]:
        ids = self._ids
        return [ids[s] if s >= 0 else None for s in self._rep_slot.tolist()]

    def _check_fitted(self) -> None:
        if not self._fitted:
            raise ERASEError("this QuantizedKMeans is not fitted yet: call fit(X, ids) first")
