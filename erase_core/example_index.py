"""ExampleIndex: a pool of few-shot examples whose selection can be exactly unlearned.

Each example is a string id, a JSON-serialisable payload and an embedding. Embeddings are
L2-normalised once, on the way in, and stored as float32: everything after (clustering,
similarity, persistence, ``verify``) reads those stored values, so a reopened or rebuilt
index sees bit-identical input. The ``erase`` strategy's clustering is a
:class:`~erase_core.quantized_kmeans.QuantizedKMeans`; it exists once the pool holds at
least ``k`` examples.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np

from ._validation import (ERASEError, check_id, reject_unknown_kwargs, UnknownIdError, check_ids, check_known_ids, check_positive_int, check_real,
                          check_vectors)
from .filters import AttributeIndex, attrs_json, check_filter, check_metadata, check_subject, parse_attrs
from .hashing import MultisetHash
from .payload_texts import PayloadTexts
from .payloads import payload_json
from .storage.errors import RowGoneError
from .storage.locate import create_store, open_store, store_exists
from .storage.audit import ChainCheck, MemoryAuditLog, check_chain, make_entry
from .storage.audit import matches as audit_matches
from .quantized_kmeans import DEFAULT_EPSILON, QuantizedKMeans
from .selection import STRATEGIES, SelectedExample, fill_representatives, mmr_rank, top_k_by_cosine

if TYPE_CHECKING:
    from .storage.interface import Store

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


def _real_vectors(vectors, name: str, dim: int | None) -> np.ndarray:
    """:func:`check_vectors`, rejecting complex input first (converting would drop the imaginary part)."""
    dtype = getattr(vectors, "dtype", None)
    if dtype is not None and (getattr(dtype, "kind", None) == "c" or getattr(dtype, "is_complex", False) is True):
        raise ERASEError(f"{name} holds complex numbers: embeddings must be real")
    return check_vectors(vectors, dim=dim, name=name)


def _check_text(value: str, name: str) -> str:
    """``value`` if it encodes as UTF-8 (a lone surrogate can be neither stored nor hashed)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ERASEError(f"{name} is not valid Unicode text (a lone surrogate at position {exc.start})") from None
    return value


def _id_list(ids, name: str = "ids") -> list:
    """``ids`` as a list (a single string stays one id); anything not iterable raises ours."""
    if ids is None:
        raise ERASEError(f"{name} are required: a list of string ids")
    if isinstance(ids, str):
        return [ids]
    try:
        return list(ids)
    except TypeError:
        raise ERASEError(f"{name} must be a sequence of string ids; got {type(ids).__name__} {ids!r}") from None


def _checked_filter(where) -> None:
    """:func:`check_filter`, with a value it cannot compare (a set, an object) raising ours."""
    try:
        check_filter(where)
    except (TypeError, RecursionError) as exc:
        raise ERASEError(f"unsupported value in the filter {where!r}: {exc}") from None


def _filter_text(where: dict) -> str:
    """The canonical JSON of a filter, as the audit log hashes it (raises ours for a value JSON cannot hold)."""
    from .storage.audit import canonical_filter

    try:
        text = canonical_filter(where)
    except (TypeError, ValueError, RecursionError) as exc:
        raise ERASEError(f"the filter is not JSON-serialisable: {exc}") from None
    return _check_text(text, "the filter")


def _example_hash(example_id: str, payload_json: str, vector: np.ndarray, attrs: str = "") -> int:
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


@dataclass
class _Incoming:
    """Examples about to be added, validated and encoded once for memory and the store."""

    ids: list[str]
    payload_jsons: list[str]
    unit: np.ndarray
    hashes: list[int]
    attrs: list[str]

    @classmethod
    def of(cls, ids: list[str], X: np.ndarray, payloads: list, subjects, metadata) -> "_Incoming":
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
        unit = _normalise(X)
        try:
            hashes = [_example_hash(i, pj, row, a) for i, pj, row, a in zip(ids, payload_jsons, unit, attrs)]
        except UnicodeEncodeError:
            for j, (i, pj, a) in enumerate(zip(ids, payload_jsons, attrs)):
                _check_text(i, f"ids[{j}]")
                _check_text(pj, f"payloads[{j}]")
                _check_text(a, f"the subject or metadata of example {j}")
            raise
        return cls(ids, payload_jsons, unit, hashes, attrs)

    def check_width(self, dim: int | None) -> None:
        """Inside the write transaction: the store's width may have been set by another handle."""
        if dim is not None and self.unit.shape[1] != dim:
            raise ERASEError(f"vectors has dimension {self.unit.shape[1]}, expected {dim}")

    def store_rows(self) -> list:
        from .hashing import id_hash
        from .storage import NewRow

        return [NewRow(i, pj, row.astype("<f4").tobytes(), id_hash(i), h, a)
                for i, pj, row, h, a in zip(self.ids, self.payload_jsons, self.unit, self.hashes, self.attrs)]

    def add_to(self, index: "ExampleIndex", rows: list[int] | None = None):
        return index._add_in_memory(self.ids, self.payload_jsons, self.unit, self.hashes, rows, attrs=self.attrs)


class IndexClosedError(ERASEError):
    """A persisted index was used after :meth:`ExampleIndex.close`."""


def _as_payload_list(payloads) -> list:
    if isinstance(payloads, (str, bytes)) or payloads is None:
        raise ERASEError(f"payloads must be a sequence (one payload per vector); got {type(payloads).__name__}")
    try:
        return list(payloads)
    except TypeError:
        raise ERASEError(f"payloads must be a sequence (one payload per vector); got {type(payloads).__name__}") from None


_IMMUTABLE = (str, int, float, bool, type(None))


def _fresh_copies(payload_json: str):
    """A function giving a fresh copy of a payload on each call, so editing a returned payload
    changes nothing in the index: the value itself when it is immutable (a string, number,
    bool or None), a shallow copy of a flat dict of such values, else a new decode of the JSON."""
    value = json.loads(payload_json)
    if isinstance(value, _IMMUTABLE):
        return lambda: value
    if isinstance(value, dict) and all(isinstance(v, _IMMUTABLE) for v in value.values()):
        return value.copy
    return functools.partial(json.loads, payload_json)


def _retry_if_row_gone(method):
    """Run a read again after catching up when a concurrent forget deleted a row whose payload
    it was reading (a handle opened from the open image reads payloads on demand)."""

    @functools.wraps(method)
    def reading(self, *args, **kwargs):
        for _ in range(_ROW_GONE_RETRIES):
            try:
                return method(self, *args, **kwargs)
            except RowGoneError:
                with self._lock:
                    self._catch_up_committed()
        return method(self, *args, **kwargs)

    return reading


def _announcing_forget(method):
    """Tell the forget listeners (:meth:`ExampleIndex.add_forget_listener`) the ids a committed
    forget or replacement removed, after the index's lock is released."""

    @functools.wraps(method)
    def announcing(self, *args, **kwargs):
        receipt = method(self, *args, **kwargs)
        if receipt.ids:
            self._announce_forget(receipt)
        return receipt

    return announcing


class _ModelLag:
    """Pool changes a handle has applied to its rows but not yet to its clustering: it caught
    up to a version whose writer posted the ``erase`` selection (see ``_apply_changes``), so
    the clustering's update waits until something needs the model itself."""

    __slots__ = ("gone", "new")

    def __init__(self) -> None:
        self.gone: list[str] = []  # still in the model, no longer in the pool
        self.new: dict[str, None] = {}  # in the pool, not yet in the model (ordered)

    def drop(self, ids: list[str]) -> None:
        for i in ids:
            if i in self.new:
                del self.new[i]
            else:
                self.gone.append(i)

    def add(self, ids: list[str]) -> None:
        self.new.update(dict.fromkeys(ids))


#: A read that keeps racing forgets this many times gives up (it means thousands of forgets a second).
_ROW_GONE_RETRIES = 20


#: The parameters that define a new index (``ExampleIndex(...)``, ``open_or_create``).
INDEX_PARAMETERS = ("k", "strategy", "epsilon", "n_iter", "seed", "projection_dim")


class ExampleIndex:
    """Few-shot example pool with exact unlearning.

    Parameters
    ----------
    k : number of examples ``select`` returns (and clusters for the ``erase`` strategy).
    strategy : ``"erase"`` (fixed set: the example nearest each quantized centroid),
        ``"similarity"`` (exact top-k by cosine to the query) or ``"mmr"`` (maximal marginal
        relevance: similar to the query and diverse). :meth:`search` ranks by query under any strategy.
    epsilon, n_iter, seed, projection_dim : quantized k-means parameters
        (see :class:`~erase_core.quantized_kmeans.QuantizedKMeans`).
    path : optional store file (a new one); every mutation is written there transactionally
        and forgotten rows are crypto-shredded on disk. Reopen with :meth:`ExampleIndex.open`.

    Any number of handles (threads, processes, the ``erase`` CLI) may open one store: each
    handle catches up with the others' adds and forgets before every read, so once ``forget``
    has returned in any handle no ``select``/``get`` that starts afterwards, in any handle,
    returns the example (see ``docs/deployment.md``).
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
        **unknown: Any,
    ):
        reject_unknown_kwargs("ExampleIndex", unknown, INDEX_PARAMETERS + ("path",))
        self.k = check_positive_int(k, "k")
        if strategy not in STRATEGIES:
            raise ERASEError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        self.strategy = strategy
        self.epsilon = DEFAULT_EPSILON if epsilon is None else check_real(epsilon, "epsilon")
        self.n_iter = check_positive_int(n_iter, "n_iter")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ERASEError(f"seed must be an integer, got {seed!r}")
        self.seed = int(seed)
        self.projection_dim = projection_dim
        # Validates every clustering parameter before anything is written anywhere.
        QuantizedKMeans(self.k, epsilon=self.epsilon, n_iter=self.n_iter, seed=self.seed, projection_dim=projection_dim)
        self._lock = threading.RLock()
        self._forget_listeners: list = []
        self._dim: int | None = None
        self._store: Store | None = None
        self._secret: bytes | None = None
        self._memory_log: MemoryAuditLog | None = None
        self._notes: dict[str, str] = {}  # application notes of an in-memory index
        self._closed_path: Path | None = None  # the store a closed index was on
        self._reset_memory()
        if path is not None:
            self._store = create_store(path, self.config())
            self._secret = self._store.audit_secret()

    def _reset_memory(self) -> None:
        self._vectors = np.zeros((0, 0 if self._dim is None else self._dim), dtype=np.float32)
        self._ids: list[str] = []
        self._slot_of: dict[str, int] = {}
        self._payload_json = PayloadTexts()
        self._attrs_json: dict[str, str] = {}  # only examples with a subject or metadata
        self._attributes = AttributeIndex(self._slot_of)
        self._example_hashes: dict[str, int] = {}
        self._pool_hash = MultisetHash()
        self._pool_lanes = np.zeros((0, 2), dtype=np.uint64)  # by slot: each example's lane terms
        self._fitted_model: QuantizedKMeans | None = None  # see _model
        self._model_lag: _ModelLag | None = None
        self._digest: str | None = None  # cached until the next mutation
        self._posted_pick: list[tuple[str, float]] | None = None  # the erase set a writer posted for this version
        # select() of the erase strategy until the next mutation: (version, [(id, payload JSON,
        # score)], their vectors), read without the lock by select_nowait
        self._snapshot: tuple | None = None
        self._updating = False  # a thread is changing memory (select_nowait then yields the GIL)
        # store bookkeeping: row numbers, and the store version this handle has caught up to
        self._row_of: dict[str, int] = {}
        self._id_of_row: dict[int, str] = {}
        self._version = 0
        self._stale = False

    # ------------------------------------------------------------------ construction
    def config(self) -> dict:
        """The parameters that define the index (persisted with it)."""
        return {
            "format_version": FORMAT_VERSION, "k": self.k, "strategy": self.strategy, "epsilon": self.epsilon,
            "n_iter": self.n_iter, "seed": self.seed, "projection_dim": self.projection_dim, "dim": self._dim,
        }

    @classmethod
    def open(cls, path: str | os.PathLike, *, timings: dict | None = None) -> "ExampleIndex":
        """Open a persisted index (any number of handles may have it open at once).

        Nothing is re-embedded and the digest is that of a fresh build on the stored rows. A file
        that is not a store is rejected and left untouched. ``timings``: a dict that receives
        the seconds the open spent building memory (``build_memory_s``, when it opened from the
        store's open image) and the total (``open_s``), for benchmarks."""
        start = time.perf_counter()
        store = open_store(path)
        try:
            config = store.config()
            if not isinstance(config, dict) or config.get("format_version") != FORMAT_VERSION:
                raise ERASEError(f"{path} is not an ERASE example index (missing or unknown config)")
            try:
                index = cls(
                    config["k"], strategy=config["strategy"], epsilon=config["epsilon"], n_iter=config["n_iter"],
                    seed=config["seed"], projection_dim=config["projection_dim"],
                )
            except (KeyError, TypeError) as exc:
                raise ERASEError(f"{path} has an invalid index config: {exc}") from None
            index._store = store
            index._secret = store.audit_secret()
            with index._lock:
                index._load_store(timings)
        except BaseException:
            store.close()
            raise
        if timings is not None:
            timings["open_s"] = time.perf_counter() - start
        return index

    @classmethod
    def open_or_create(cls, path: str | os.PathLike, k: int = 4, **params: Any) -> "ExampleIndex":
        """Open the store at ``path``, or create it with these parameters when there is none (so
        the same code runs on a first and a later start). Parameters given explicitly must match
        the stored ones: a mismatch raises rather than silently opening a different index."""
        reject_unknown_kwargs("ExampleIndex.open_or_create",
                              {key: v for key, v in params.items() if key not in INDEX_PARAMETERS[1:]},
                              ("path",) + INDEX_PARAMETERS)
        if store_exists(path):
            index = cls.open(path)
            wanted = {"k": k, **params}
            config = index.config()
            clash = {key: (v, config.get(key)) for key, v in wanted.items()
                     if key in config and v is not None and config[key] != v}
            if clash:
                index.close()
                detail = ", ".join(f"{key}={v!r} (stored: {stored!r})" for key, (v, stored) in clash.items())
                raise ERASEError(f"{path} holds an index with other parameters: {detail}")
            return index
        return cls(k, path=path, **params)

    def _load_store(self, timings: dict | None = None) -> None:
        """Fill memory from the store: from its open image and the changes since (fast), or
        from every row (then write the image for the next open). Either way the result is a
        fresh build on the store's rows."""
        from .storage import image

        store = self._on_store()
        img = store.read_image()
        if img is not None:
            changes = store.changes_since(img.version)
            if changes is not None:
                start = time.perf_counter()
                self._load_image(img)
                if timings is not None:
                    timings["build_memory_s"] = time.perf_counter() - start
                if changes.version != self._version:
                    self._apply_changes(changes)
                return
        version, dim, rows = store.load()
        self._reload((version, dim, rows))
        if len(rows) >= image.image_min_rows():
            # right after the reload the clustering was fitted on the rows in load order
            model = self._model.export_state() if self._model is not None else None
            store.write_image(version, dim, rows, model)

    def _load_image(self, img) -> None:
        self._reset_memory()
        self._stale = True  # until the rows are in
        self._dim = img.dim
        if len(img):
            rows = img.rows.tolist()
            self._payload_json.set_deferred(img.ids, rows, self._fetch_payloads)
            attrs = [img.attrs.get(i, "") for i in img.ids] if img.attrs else None
            self._add_in_memory(img.ids, None, img.vectors, img.example_hash, rows, img.id_hash, attrs,
                                model_state=img.model, adopt=True)
        self._version = img.version
        self._stale = False

    # ------------------------------------------------------------------ the clustering
    @property
    def _model(self) -> QuantizedKMeans | None:
        """The clustering of the current pool (a lagging one is brought up to date first)."""
        if self._model_lag is not None:
            self._settle_model()
        return self._fitted_model

    @_model.setter
    def _model(self, model: QuantizedKMeans | None) -> None:
        self._fitted_model = model
        self._model_lag = None

    def _on_store(self) -> Store:
        """The store of a store-backed index (for steps that only such an index takes)."""
        if self._store is None:
            raise ERASEError("this step needs the index's store file, and the index has none (in memory, or closed)")
        return self._store

    def _lag(self) -> _ModelLag:
        if self._model_lag is None:
            self._model_lag = _ModelLag()
        return self._model_lag

    def _settle_model(self) -> None:
        """Apply the changes the clustering lags behind: exactly the update the writer made
        (the model is a function of the pool as a set, whatever the order of the updates)."""
        lag, model = self._model_lag, self._fitted_model
        if lag is None:
            return
        self._model_lag = None
        try:
            n = len(self._ids)
            if n < self.k:
                self._fitted_model = None
            elif model is None or len(model) - len(lag.gone) < self.k:
                self._fitted_model = self._new_model().fit(self._vectors[:n], list(self._ids))
            else:
                if lag.gone:
                    model.remove(lag.gone)
                if lag.new:
                    ids = list(lag.new)
                    model.insert(self._vectors[[self._slot_of[i] for i in ids]], ids)
        except BaseException:
            self._stale = True  # the next use reloads from the store
            raise

    def _adopt_posted(self, posted: list[tuple[int, float]]) -> None:
        """Use the ``erase`` set the writer of this version posted (rows and scores)."""
        ids = [self._id_of_row[r] for r, _ in posted if r in self._id_of_row]
        if len(ids) == len(posted) == self.k and len(set(ids)) == self.k and self._fitted_model is not None:
            self._posted_pick = [(i, s) for i, (_, s) in zip(ids, posted)]
        else:
            self._model  # noqa: B018 - not what this pool needs: settle the clustering now

    def _picks_to_post(self) -> list[tuple[int, float]] | None:
        """The ``erase`` set of the current pool as ``(row, score)`` for other handles (and
        kept for this handle's own next ``select``); None when there is none."""
        if self.strategy != "erase" or self._model is None:
            return None
        chosen = self._erase_ids()
        picks = list(zip(chosen, self._centroid_similarity(chosen)))
        self._posted_pick = picks
        return [(self._row_of[i], s) for i, s in picks]

    def _post_after_commit(self, version: int) -> None:
        """Post the ``erase`` set after a write whose memory update followed its commit (add, upsert)."""
        from .storage import StoreError

        try:
            picks = self._picks_to_post()
            if picks is not None:
                self._on_store().post_selection(version, picks)
        except (OSError, StoreError):
            pass  # only a shortcut for other handles: without it they update their clustering

    def _fetch_payloads(self, rows: list[int]) -> dict[int, str]:
        """Payloads left in the store by an image open (read under this handle's lock)."""
        return self._on_store().payloads(rows, self._version)

    # ------------------------------------------------------------------ keeping up with the store
    def _catch_up_committed(self) -> None:
        """Catch up with what is committed: replay the change log, or reload when the handle
        is further behind than the log keeps. Also called without looking at the published
        version when a read found a row that a concurrent forget deleted but has not yet announced."""
        store = self._on_store()
        changes = store.changes_since(self._version)
        if changes is None:
            self._reload(store.load())
        elif changes.version != self._version:
            self._apply_changes(changes)

    def _sync(self) -> None:
        """Catch up with every change any handle committed to the store (cheap when none)."""
        store = self._store
        if store is None:
            if self._closed_path is not None:
                self._require_open()
            return
        if self._stale:
            self._reload(store.load())
            return
        settled = store.settled_version()
        if settled is None and store.finish_interrupted():  # a writer died or failed mid-way
            settled = store.settled_version()
        if settled != self._version:  # None: a write is in flight, ask the database
            self._catch_up_committed()

    def _sync_in(self, txn) -> None:
        """Catch up inside a write transaction (nothing can change under it)."""
        if not self._stale:
            changes = txn.changes(self._version)
            if changes is not None:
                if changes.version != self._version:
                    self._apply_changes(changes)
                return
        self._reload(txn.load())

    def _reload(self, loaded) -> None:
        """Rebuild memory from the store's rows (open, or a handle too far behind)."""
        version, dim, rows = loaded
        self._reset_memory()
        self._stale = True  # until the rows are in
        if dim is not None:
            self._dim = int(dim)
        if rows:
            self._add_rows(rows)
        self._version = version
        self._stale = False

    def _apply_changes(self, changes) -> None:
        """Replay other handles' changes. When the writer of the new version posted its
        ``erase`` set, the rows are updated now and the clustering later (when something needs
        it): a select that catches up on a forget that moved a centroid then costs what a
        cheap forget does, not the writer's recompute."""
        self._stale = True  # until the memory update completes
        posted = None
        if self.strategy == "erase" and self._fitted_model is not None:
            posted = self._on_store().posted_selection(changes.version)
        defer = posted is not None
        gone = [self._id_of_row[r] for r in changes.removed if r in self._id_of_row]
        if gone:
            self._remove_in_memory(gone, defer=defer)
        if changes.added:
            if self._dim is None:
                self._dim = len(changes.added[0].vector) // 4
            self._add_rows(changes.added, defer=defer)
        self._version = changes.version
        if posted is not None:  # deferred
            self._adopt_posted(posted)
        self._stale = False

    def _add_rows(self, rows, *, defer: bool = False) -> None:
        unit = np.frombuffer(b"".join(r.vector for r in rows), dtype="<f4").reshape(len(rows), -1)
        self._add_in_memory(
            [r.id for r in rows], [r.payload_json for r in rows], unit, [r.example_hash for r in rows],
            [r.row for r in rows], np.fromiter((r.id_hash for r in rows), dtype=np.uint64, count=len(rows)),
            [r.attrs_json for r in rows], defer=defer,
        )

    def _add_in_memory(self, ids: list[str], payload_jsons: list[str] | None, unit: np.ndarray, hashes,
                       rows: list[int] | None = None, id_hashes: np.ndarray | None = None,
                       attrs: list[str] | None = None, model_state=None, adopt: bool = False, defer: bool = False):
        """Append already-normalised rows to memory and update the clustering. ``adopt``: an
        empty index may keep ``unit`` itself as its vector array (an open image's decrypted
        array, which nothing else holds) instead of copying it."""
        n0 = len(self._ids)
        adopted = (adopt and n0 == 0 and unit.dtype == np.float32 and unit.flags.c_contiguous
                   and unit.flags.writeable and len(ids) > 0)
        if adopted:
            self._dim = unit.shape[1]
            self._vectors = unit
        elif self._vectors.shape[1] != unit.shape[1]:
            self._dim = unit.shape[1]
            self._vectors = np.zeros((max(16, len(ids)), self._dim), dtype=np.float32)
        need = n0 + len(ids)
        if need > self._vectors.shape[0]:
            grown = np.zeros((max(need, 2 * self._vectors.shape[0]), self._vectors.shape[1]), dtype=np.float32)
            grown[:n0] = self._vectors[:n0]
            self._vectors = grown
        if not adopted:
            self._vectors[n0:need] = unit
        if need > self._pool_lanes.shape[0]:
            lanes = np.zeros((self._vectors.shape[0], 2), dtype=np.uint64)
            lanes[:n0] = self._pool_lanes[:n0]
            self._pool_lanes = lanes
        # bulk dict updates: open adds 10^5 rows at once
        self._slot_of.update(zip(ids, range(n0, need)))
        if payload_jsons is not None:  # None: already in self._payload_json (an open image)
            self._payload_json.update(zip(ids, payload_jsons))
        self._example_hashes.update(zip(ids, hashes.tolist() if isinstance(hashes, np.ndarray) else hashes))
        if rows is not None:
            self._row_of.update(zip(ids, rows))
            self._id_of_row.update(zip(rows, ids))
        if attrs is not None:
            for i, a in zip(ids, attrs):
                if a:
                    self._attrs_json[i] = a
                    self._attributes.add(i, *parse_attrs(a))
        self._pool_lanes[n0:need] = MultisetHash.lanes_each(np.array(hashes, dtype=np.uint64))
        self._pool_hash.add_lanes(self._pool_lanes[n0:need])
        self._ids.extend(ids)
        with self._changing():
            return self._update_model_after_add(self._vectors[n0:need], ids, id_hashes if n0 == 0 else None,
                                                model_state if n0 == 0 else None, defer)

    @contextmanager
    def _changing(self):
        """Around a change of memory: what is derived from the pool is dropped at its end, the
        selection snapshot only then, so a select_nowait in another thread meanwhile answers
        with the pool before the change (and yields the GIL to it)."""
        self._updating = True
        try:
            yield
        finally:
            self._changed()

    def _changed(self) -> None:
        """The end of :meth:`_changing` (called directly on the forget path: no generator)."""
        self._digest = None
        self._posted_pick = None
        self._snapshot = None
        self._updating = False

    def _update_model_after_add(self, unit: np.ndarray, ids: list[str], all_id_hashes: np.ndarray | None = None,
                                model_state=None, defer: bool = False):
        if self.strategy != "erase":
            return None  # only the erase strategy selects through the clustering
        model = self._fitted_model if defer else self._model
        if model is not None:
            if defer:
                self._lag().add(ids)
                return None
            return model.insert(unit, ids)
        if len(self._ids) >= self.k:
            X, all_ids = self._vectors[: len(self._ids)], list(self._ids)
            if model_state is not None:  # an open image's fit on these rows: install, do not rerun
                try:
                    self._model = self._new_model().fit(X, all_ids, id_hashes=all_id_hashes, state=model_state)
                    return None
                except ValueError:
                    pass  # not this pool's fit: fit afresh
            self._model = self._new_model().fit(X, all_ids, id_hashes=all_id_hashes)
        return None

    def _remove_in_memory(self, ids: list[str], *, defer: bool = False):
        """Drop examples from memory and the clustering (``defer``: note them for the
        clustering to settle later); returns the model's report (or None)."""
        report = None
        self._updating = True  # as `with self._changing():`, without a generator per forget
        try:
            model = self._fitted_model if defer else self._model
            if model is not None:
                if len(self._ids) - len(ids) < self.k:
                    self._model = None
                elif defer:
                    self._lag().drop(ids)
                else:
                    report = model.remove(ids)
            self._drop_rows(ids)
        finally:
            self._changed()
        return report

    def _new_model(self) -> QuantizedKMeans:
        return QuantizedKMeans(self.k, epsilon=self.epsilon, n_iter=self.n_iter, seed=self.seed, projection_dim=self.projection_dim)

    # ------------------------------------------------------------------ mutations
    def add(self, vectors, payloads: Sequence[Any], ids: Sequence[str] | None = None, *,
            subjects: Sequence[str | None] | None = None, metadata: Sequence[dict | None] | None = None) -> list[str]:
        """Add examples; returns their ids (generated when not given). Atomic: on any error
        nothing is added, in memory or in the store.

        ``subjects``: per example, whom it belongs to (for :meth:`forget_subject`), or None.
        ``metadata``: per example, a flat JSON object (for :meth:`forget_where` and filtered
        :meth:`select`), or None. Both are stored sealed like the payload."""
        with self._lock:
            self._require_open()
            self._sync()
            X = _real_vectors(vectors, "vectors", self._dim)
            payloads = _as_payload_list(payloads)
            n = X.shape[0]
            if len(payloads) != n:
                raise ERASEError(f"got {len(payloads)} payloads for {n} vectors")
            ids = [uuid.uuid4().hex for _ in payloads] if ids is None else _id_list(ids)
            ids = check_ids(ids, n, existing=self._slot_of)
            new = _Incoming.of(ids, X, payloads, subjects, metadata)
            if self._store is None:
                new.add_to(self)
                return ids
            with self._store.transaction() as txn:
                self._sync_in(txn)  # another handle may have added these ids or set the width
                new.check_width(self._dim)
                check_ids(ids, len(ids), existing=self._slot_of)
                rows = txn.add(new.store_rows(), new.unit.shape[1])
            self._after_commit(lambda: new.add_to(self, rows), txn.version)
            self._post_after_commit(txn.version)
            return ids

    @_announcing_forget
    def upsert(self, vectors, payloads: Sequence[Any], ids: Sequence[str], *,
               subjects: Sequence[str | None] | None = None, metadata: Sequence[dict | None] | None = None) -> ForgetReceipt:
        """Add examples, replacing any with the same id: exactly ``forget`` of the present ids
        followed by ``add`` (the result equals a fresh build on the new pool), in one
        transaction, so no handle ever sees the pool without either version. The replaced
        content is erased like any forgotten example and the audit log records the replacement.
        Returns the receipt of the replaced ids (empty when every id was new)."""
        start = time.perf_counter()
        with self._lock:
            self._require_open()
            self._sync()
            X = _real_vectors(vectors, "vectors", self._dim)
            ids = check_ids(_id_list(ids), X.shape[0])
            new = _Incoming.of(ids, X, _as_payload_list(payloads), subjects, metadata)
            if self._store is None:
                present = [i for i in ids if i in self._slot_of]
                owners = self._subjects_of(present)
                receipt = self._forget_in_memory(present, start)
                new.add_to(self)
                if present:
                    self._memory_audit().append(self._audit_entry(receipt, owners, "upsert", None, None))
                return receipt
            changed = False
            try:
                with self._store.transaction() as txn:
                    self._sync_in(txn)
                    new.check_width(self._dim)
                    present = [i for i in ids if i in self._slot_of]
                    txn.delete([self._row_of[i] for i in present])
                    changed = True
                    owners = self._subjects_of(present)
                    receipt = self._forget_in_memory(present, start)
                    if present:
                        txn.audit(self._audit_entry(receipt, owners, "upsert", None, None, txn.version_after()))
                    rows = txn.add(new.store_rows(), new.unit.shape[1])
            except BaseException:
                if changed:
                    self._stale = True  # memory ran ahead of a transaction that did not commit
                raise
            self._after_commit(lambda: new.add_to(self, rows), txn.version)
            self._post_after_commit(txn.version)
            return receipt

    def _after_commit(self, update, version: int):
        """Mirror a committed write in memory; if that fails the handle reloads from the store."""
        try:
            result = update()
        except BaseException as exc:
            self._stale = True
            raise ERASEError(
                f"the change was committed to {self.path}, but updating this handle failed ({exc!r}); "
                "it reloads from the store on its next use"
            ) from exc
        self._version = version
        return result

    def forget(self, ids: Iterable[str], *, missing: str = "raise") -> ForgetReceipt:
        """Remove examples exactly: afterwards the index equals one built without them, and with
        a store, every handle on it stops returning them and their keys are shredded on disk.
        The deletion audit log records it (keyed hashes only, see :meth:`audit`).

        Unknown or repeated ids raise :class:`UnknownIdError`/`DuplicateIdError` and change
        nothing, unless ``missing="ignore"``.
        """
        ids = _id_list(ids)
        return self._forget(lambda: check_known_ids(ids, self._slot_of, missing=missing), request="ids")

    def forget_subject(self, subject: str) -> ForgetReceipt:
        """Forget every example of ``subject`` (one transaction, one receipt, one audit entry).
        A subject with no examples gives an empty receipt, and the request is still logged."""
        checked = check_subject(subject)
        if checked is None:
            raise ERASEError("forget_subject needs a subject")
        _check_text(checked, "subject")
        return self._forget(lambda: sorted(self._attributes.of_subject(checked)), request="subject", subject=checked)

    def forget_where(self, where: dict, *, among: Iterable[str] | None = None) -> ForgetReceipt:
        """Forget every example whose metadata matches the filter ``where`` (see
        :mod:`erase_core.filters`), exactly, in one transaction. ``among``: only these ids
        (unknown ones are skipped), matched inside the same transaction."""
        _checked_filter(where)
        _filter_text(where)  # the audit log hashes it: fail before the transaction, not inside
        if among is not None:
            if isinstance(among, (str, bytes)):
                raise ERASEError("among must be a collection of ids, not a single string")
            try:
                among = set(among)
            except TypeError:
                raise ERASEError(f"among must be a collection of string ids; got {among!r}") from None
            return self._forget(lambda: sorted(self._attributes.matching(where) & among), request="where", where=where)
        return self._forget(lambda: sorted(self._attributes.matching(where)), request="where", where=where)

    def ids_where(self, where: dict) -> list[str]:
        """The ids of the examples whose metadata match ``where``, sorted (from the index of
        metadata values; what :meth:`forget_where` would forget)."""
        _checked_filter(where)
        with self._lock:
            self._sync()
            return sorted(self._attributes.matching(where))

    @_announcing_forget
    def _forget(self, resolve, *, request: str, subject: str | None = None, where: dict | None = None) -> ForgetReceipt:
        """Resolve the ids against the current pool, forget them, log the request; all or nothing."""
        start = time.perf_counter()
        with self._lock:
            self._require_open()
            if self._store is None:
                ids = resolve()
                owners = self._subjects_of(ids)
                receipt = self._forget_in_memory(ids, start)
                self._memory_audit().append(self._audit_entry(receipt, owners, request, subject, where))
                return receipt
            changed = False
            try:
                with self._store.transaction() as txn:
                    self._sync_in(txn)  # forget what another handle added; see what it forgot
                    ids = resolve()
                    rows = [self._row_of[i] for i in ids]
                    txn.delete(rows)
                    changed = True
                    owners = self._subjects_of(ids)
                    receipt = self._forget_in_memory(ids, start)
                    txn.audit(self._audit_entry(receipt, owners, request, subject, where, txn.version_after()))
                    picks = self._picks_to_post() if ids else None
                    if picks is not None:
                        txn.post_selection(picks)
            except BaseException:
                if changed:
                    self._stale = True  # memory ran ahead of a transaction that did not commit
                raise
            self._version = txn.version
            return receipt

    def _subjects_of(self, ids: list[str]) -> list[str | None]:
        return [self._attributes.subject_of(i) for i in ids]

    def _audit_entry(self, receipt: ForgetReceipt, owners: list[str | None], request: str, subject, where,
                     version: int = 0) -> dict:
        return make_entry(
            self._audit_secret(), request=request, ids=receipt.ids, subjects=owners,
            subject=subject, where=where, digest_before=receipt.digest_before, digest_after=receipt.digest_after,
            recomputed=receipt.recomputed, version=version,
        )

    def _audit_secret(self) -> bytes:
        if self._store is not None:
            if self._secret is None:
                raise ERASEError("the store's audit key was not read when it was opened")
            return self._secret  # read at open: no query inside a write transaction
        return self._memory_audit().secret

    def _memory_audit(self) -> MemoryAuditLog:
        if self._memory_log is None:
            self._memory_log = MemoryAuditLog(os.urandom(32))
        return self._memory_log

    def _forget_in_memory(self, ids: list[str], start: float, before: str | None = None, selected_before=None) -> ForgetReceipt:
        if before is None:
            before = self._current_digest()
            selected_before = self._erase_ids() if self._model is not None else None
        if not ids:
            return ForgetReceipt((), len(self._ids), False, False, None, before, before, time.perf_counter() - start)
        report = self._remove_in_memory(ids)
        recompute_from = None if report is None else report.recompute_from
        if (report is not None and recompute_from is None and not report.representatives_changed
                and selected_before is not None and not any(i in selected_before for i in ids)):
            # same centroids and representatives, and no selected example went (the fill-in of
            # empty clusters ranks the other examples by fixed keys): the same set
            selected_after = selected_before
        else:
            selected_after = self._erase_ids() if self._model is not None else None
        return ForgetReceipt(
            ids=tuple(ids), n_remaining=len(self._ids), selected_changed=selected_before != selected_after,
            recomputed=recompute_from is not None, recompute_from=recompute_from,
            digest_before=before, digest_after=self._current_digest(), seconds=time.perf_counter() - start,
        )

    def _drop_rows(self, ids: list[str]) -> None:
        for i in (ids if len(ids) == 1 else sorted(ids, key=self._slot_of.__getitem__, reverse=True)):
            s = self._slot_of.pop(i)
            last = len(self._ids) - 1
            self._pool_hash.remove_lanes(self._pool_lanes[s])
            if s != last:
                self._vectors[s] = self._vectors[last]
                self._pool_lanes[s] = self._pool_lanes[last]
                self._ids[s] = self._ids[last]
                self._slot_of[self._ids[s]] = s
            self._ids.pop()
            self._vectors[last] = 0.0
            self._pool_lanes[last] = 0
            del self._payload_json[i]
            if self._attrs_json.pop(i, None) is not None:
                self._attributes.remove(i)
            row = self._row_of.pop(i, None)
            if row is not None:
                del self._id_of_row[row]
            del self._example_hashes[i]

    # ------------------------------------------------------------------ queries
    @_retry_if_row_gone
    def select(self, query_vector=None, k: int | None = None, *, filter: dict | None = None,  # noqa: A002
               fetch_k: int = 20, lambda_mult: float = 0.5) -> list[SelectedExample]:
        """Select ``k`` examples (default: the index's k) by the index's strategy.

        ``erase``: the same set for every query, in cluster order; ``score`` is the cosine
        similarity to the query when one is given, else to the example's cluster centroid.
        ``similarity``: exact top-k by cosine to ``query_vector`` (required), ties by id.
        ``mmr``: maximal marginal relevance among the ``fetch_k`` most similar examples
        (``lambda_mult`` 1 is pure similarity, 0 pure diversity); ``score`` is the cosine to the query.
        ``filter`` (query strategies) restricts the pool to examples whose metadata match (fewer
        than ``k`` when fewer match), so a tenant only ever sees its own examples.
        Payloads are fresh copies: editing one changes nothing in the index.
        """
        k = self.k if k is None else check_positive_int(k, "k")
        if filter is None:
            now = self.select_nowait(k, query_vector)
            if now is not None:
                return now
        if self.strategy != "erase":
            if query_vector is None:
                raise ERASEError(f"strategy {self.strategy!r} needs a query_vector")
            return self._ranked(query_vector, k, filter, self.strategy == "mmr", fetch_k, lambda_mult, strict=True)
        if filter is not None:
            _checked_filter(filter)
            raise ERASEError("filter= applies to the 'similarity' and 'mmr' strategies; 'erase' selects one fixed set for every query")
        with self._lock:
            self._sync()
            n = len(self._ids)
            if n == 0:
                raise ERASEError("the example pool is empty: add examples before selecting")
            if k > n:
                raise ERASEError(f"k={k} is larger than the pool of {n} examples")
            q = None if query_vector is None else self._query(query_vector)
            if k > self.k:
                raise ERASEError(f"strategy 'erase' selects at most the index's k={self.k} examples; got k={k}")
            if self._snapshot is None:  # the fixed set changes only on a mutation
                picks = self._erase_picks()
                texts = self._payload_json.get_many([i for i, _ in picks])  # one store read, not k
                cache = [(i, _fresh_copies(pj), s) for (i, s), pj in zip(picks, texts)]
                vectors = self._vectors[[self._slot_of[i] for i, _, _ in cache]]  # a copy
                self._snapshot = (self._version, cache, vectors)
            return self._answer(self._snapshot, k, q)

    @staticmethod
    def _answer(snapshot: tuple, k: int, q: np.ndarray | None) -> list[SelectedExample]:
        """The first ``k`` of a snapshot's ``erase`` set; scores against ``q`` when given."""
        _, cache, vectors = snapshot
        if q is None:
            return [SelectedExample(i, fresh(), s) for i, fresh, s in cache[:k]]
        qn = q / np.linalg.norm(q)
        return [SelectedExample(i, fresh(), float(v.astype(np.float64) @ qn))
                for (i, fresh, _), v in zip(cache[:k], vectors)]

    def select_nowait(self, k: int | None = None, query_vector=None) -> list[SelectedExample] | None:
        """``select(query_vector, k)`` of the ``erase`` set without taking the index's lock:
        the set the last ``select`` computed, when nothing changed since (in this handle, or,
        with a store, committed by any handle); else None (call :meth:`select`). A forget
        running in another thread does not hold it up: until that forget returns, the set
        before it is the answer (a select that starts after it returned never sees the
        forgotten example). With a query, scores are cosine similarities to it, as ``select``'s."""
        snapshot = self._snapshot  # read before the version: a newer commit then always shows
        if snapshot is None or self.strategy != "erase" or not self._current(snapshot[0]):
            return None
        k = self.k if k is None else check_positive_int(k, "k")
        if k > len(snapshot[1]):
            return None
        answer = self._answer(snapshot, k, None if query_vector is None else self._query(query_vector))
        if self._updating:
            # another thread is updating the clustering, one numpy call at a time, each needing
            # the GIL back: let it have it, or a thread selecting in a loop slows it 10-20x
            os.sched_yield()
        return answer

    def _current(self, version: int) -> bool:
        """Whether memory at ``version`` is what the store holds now (without the lock)."""
        store = self._store
        if store is None:
            return self._closed_path is None
        if self._stale:
            return False
        try:
            return store.settled_version() == version  # None while a write is in flight
        except (ValueError, OSError):  # closed under us: the locked path says so
            return False

    @_retry_if_row_gone
    def search(self, query_vector, k: int | None = None, *, filter: dict | None = None, mmr: bool = False,  # noqa: A002
               fetch_k: int = 20, lambda_mult: float = 0.5, among: Iterable[str] | None = None) -> list[SelectedExample]:
        """Query-driven ranking whatever the index's strategy: the vector-store call.

        The ``k`` (default: the index's k) examples most similar to ``query_vector`` (ties by id),
        or with ``mmr=True`` the maximal-marginal-relevance picks among the ``fetch_k`` most
        similar. Unlike :meth:`select` it returns fewer than ``k`` when the pool (or the
        ``filter``) holds fewer, and ``[]`` for an empty pool. ``among``: rank only these ids
        (unknown ones are skipped; e.g. the matches of a caller's own predicate). Exact like
        every read: after a forget it equals the same call on a fresh build."""
        k = self.k if k is None else check_positive_int(k, "k")
        if among is not None:
            if isinstance(among, (str, bytes)):
                raise ERASEError("among must be a collection of ids, not a single string")
            among = set(among)
            if not all(isinstance(i, str) for i in among):
                raise ERASEError("among must hold string ids")
        return self._ranked(query_vector, k, filter, mmr, fetch_k, lambda_mult, strict=False, among=among)

    def _ranked(self, query_vector, k: int, where: dict | None, mmr: bool, fetch_k: int, lambda_mult: float, *,
                strict: bool, among: set[str] | None = None) -> list[SelectedExample]:
        if where is not None:
            _checked_filter(where)
        if mmr:
            fetch_k = check_positive_int(fetch_k, "fetch_k")
            if isinstance(lambda_mult, bool) or not isinstance(lambda_mult, (int, float)) or not 0.0 <= lambda_mult <= 1.0:
                raise ERASEError(f"lambda_mult must be a number in [0, 1]; got {lambda_mult!r}")
        with self._lock:
            self._sync()
            n = len(self._ids)
            if n == 0 and (not strict or where is not None) or among is not None and not among:
                if query_vector is None:
                    raise ERASEError("a query_vector is required")
                self._query(query_vector)  # still validated
                return []
            if strict:
                if n == 0:
                    raise ERASEError("the example pool is empty: add examples before selecting")
                if k > n and where is None:
                    raise ERASEError(f"k={k} is larger than the pool of {n} examples")
            q = self._query(query_vector)
            if where is None and among is None:
                vectors, ids = self._vectors[:n], self._ids
            else:
                if where is not None:
                    allowed = self._attributes.matching(where)
                    allowed = allowed if among is None else allowed & among
                else:  # among was given
                    allowed = {i for i in among or () if i in self._slot_of}
                ids = sorted(allowed, key=self._slot_of.__getitem__)
                if not ids:
                    return []
                vectors = self._vectors[np.array([self._slot_of[i] for i in ids], dtype=np.int64)]
            k = min(k, len(ids))
            if mmr:
                ranked = mmr_rank(vectors, ids, q, k, fetch_k=fetch_k, lambda_mult=float(lambda_mult))
            else:
                ranked = top_k_by_cosine(vectors, ids, q, k)
            texts = self._payload_json.get_many([ids[r] for r, _ in ranked])  # one store read, not k
            return [SelectedExample(ids[r], json.loads(pj), s) for (r, s), pj in zip(ranked, texts)]

    def attributes(self, example_id: str) -> dict:
        """``{"subject": ..., "metadata": {...}}`` of an example (copies)."""
        with self._lock:
            self._sync()
            if check_id(example_id, "example_id") not in self._slot_of:
                raise UnknownIdError(f"unknown id {example_id!r}")
            subject, metadata = parse_attrs(self._attrs_json.get(example_id, ""))
            return {"subject": subject, "metadata": metadata}

    def ids_of_subject(self, subject: str) -> list[str]:
        """The ids of ``subject``'s examples, sorted (what :meth:`forget_subject` would forget)."""
        with self._lock:
            self._sync()
            return sorted(self._attributes.of_subject(subject))

    # ------------------------------------------------------------------ audit
    def audit(self) -> list[dict]:
        """Every entry of the deletion audit log, oldest first (see :mod:`erase_core.storage.audit`)."""
        with self._lock:
            rows = self._store.audit_rows() if self._store is not None else list(self._memory_audit().rows)
        return [json.loads(text) for _, text, _, _ in rows]

    def check_audit(self) -> ChainCheck:
        """Verify the audit log's hash chain (an edited, reordered or deleted entry fails)."""
        with self._lock:
            rows = self._store.audit_rows() if self._store is not None else list(self._memory_audit().rows)
        return check_chain(rows)

    def forgotten(self, *, example_id: str | None = None, subject: str | None = None, where: dict | None = None) -> list[dict]:
        """The audit entries that forgot ``example_id`` / ``subject`` / the filter ``where`` (empty: never)."""
        with self._lock:
            secret = self._audit_secret()
            return [e for e in self.audit() if audit_matches(secret, e, example_id=example_id, subject=subject, where=where)]

    def _query(self, query_vector) -> np.ndarray:
        """One non-zero query vector of the index's width (float64)."""
        if self._dim is None and np.ndim(query_vector) == 1:
            query_vector = [query_vector]  # a 1-D query needs no known width to be one vector
        q = _real_vectors(query_vector, "query_vector", self._dim)
        if q.shape[0] != 1:
            raise ERASEError(f"query_vector must be one vector; got {q.shape[0]} rows")
        if not np.any(q[0]):
            raise ERASEError("query_vector is all zeros")
        with np.errstate(over="ignore", under="ignore"):
            norm = float(np.linalg.norm(q[0]))
        if not np.isfinite(norm) or norm == 0:
            raise ERASEError(f"query_vector is too {'large' if norm else 'small'}: its norm {'over' if norm else 'under'}flows float64")
        return q[0]

    def _payload(self, example_id: str) -> Any:
        return json.loads(self._payload_json[example_id])

    def _erase_picks(self) -> list[tuple[str, float]]:
        """The ``erase`` set with each example's similarity to its centroid: as posted by the
        writer of this version, or from this handle's clustering."""
        if self._posted_pick is not None:
            return self._posted_pick
        chosen = self._erase_ids()
        return list(zip(chosen, self._centroid_similarity(chosen)))

    def _clustering(self) -> QuantizedKMeans:
        model = self._model
        if model is None:
            raise ERASEError(
                f"strategy 'erase' needs at least k={self.k} examples to cluster; the pool has {len(self._ids)}"
            )
        return model

    def _erase_ids(self) -> list[str]:
        model = self._clustering()
        reps = model.representative_ids_
        chosen = [r for r in reps if r is not None]
        if len(chosen) == len(reps):
            return chosen
        ids = list(self._ids)
        return fill_representatives(reps, model.coordinates(ids), ids, model.centroids_, self.k)

    def _centroid_similarity(self, chosen: list[str]) -> list[float]:
        model = self._clustering()
        labels = model.predict(np.stack([self._vectors[self._slot_of[i]] for i in chosen]))
        pts = model.coordinates(chosen)
        cents = model.centroids_[labels]
        num = np.einsum("ij,ij->i", pts, cents)
        den = np.linalg.norm(pts, axis=1) * np.linalg.norm(cents, axis=1)
        return [float(x) for x in np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)]

    @_retry_if_row_gone
    def get(self, example_id: str) -> Any:
        """A copy of the example's payload."""
        with self._lock:
            self._sync()
            if check_id(example_id, "example_id") not in self._payload_json:
                raise UnknownIdError(f"unknown id {example_id!r}")
            return self._payload(example_id)

    def vector(self, example_id: str) -> np.ndarray:
        """The stored (unit, float32) embedding of an example (a copy)."""
        with self._lock:
            self._sync()
            if check_id(example_id, "example_id") not in self._slot_of:
                raise UnknownIdError(f"unknown id {example_id!r}")
            return self._vectors[self._slot_of[example_id]].copy()

    @property
    def ids(self) -> list[str]:
        """Ids in canonical (sorted) order."""
        with self._lock:
            self._sync()
            return sorted(self._ids)

    @property
    def lock(self):
        """The index's re-entrant lock: hold it to make a compound read (size, then select) atomic
        within this process (other handles on the store may still change it in between)."""
        return self._lock

    @property
    def dim(self) -> int | None:
        return self._dim

    @property
    def model(self) -> QuantizedKMeans | None:
        """The clustering behind the ``erase`` strategy (None while the pool is smaller than k,
        and always None for ``similarity``, which does not cluster)."""
        with self._lock:
            self._sync()
            return self._model

    @property
    def version(self) -> int:
        """The store version this handle has caught up to (0 for an in-memory index)."""
        with self._lock:
            self._sync()
            return self._version

    def refresh(self) -> bool:
        """Catch up with the store now; True if anything changed. (Every read does this itself.)"""
        with self._lock:
            before = self._version
            self._sync()
            return self._version != before

    def add_forget_listener(self, callback) -> None:
        """Call ``callback(ids)`` (a tuple of ids) after every committed forget through this
        handle (``forget``, ``forget_subject``, ``forget_where``, and ``upsert`` for the ids it
        replaced), once the index's lock is released, before the forget returns. Caches of
        derived data (LLM response caches) drop what came from those examples here. Forgets by
        other handles on the store are not announced here: compare :attr:`version` to see them."""
        if not callable(callback):
            raise ERASEError(f"a forget listener must be callable, got {callback!r}")
        with self._lock:
            if callback not in self._forget_listeners:
                self._forget_listeners.append(callback)

    def remove_forget_listener(self, callback) -> None:
        """Stop calling ``callback`` (no-op when it was not added)."""
        with self._lock:
            if callback in self._forget_listeners:
                self._forget_listeners.remove(callback)

    def _announce_forget(self, receipt: ForgetReceipt) -> None:
        """Call every forget listener; the forget has committed, so a failing listener does not
        stop the others and is reported afterwards."""
        with self._lock:
            listeners = list(self._forget_listeners)
        failed = None
        for callback in listeners:
            try:
                callback(receipt.ids)
            except Exception as exc:  # noqa: BLE001 - reported below, after the others ran
                failed = failed or exc
        if failed is not None:
            raise ERASEError(
                f"the forget committed ({len(receipt.ids)} example(s) forgotten), but a forget listener failed "
                f"({failed!r})"
            ) from failed

    def __len__(self) -> int:
        n, version = len(self._ids), self._version
        if self._current(version) and len(self._ids) == n:  # not held up by a forget in another thread
            return n
        with self._lock:
            self._sync()
            return len(self._ids)

    def __contains__(self, example_id) -> bool:
        with self._lock:
            self._sync()
            return example_id in self._slot_of

    def note(self, key: str) -> str | None:
        """An application note kept with the index (``None`` if unset), e.g. which embedding
        model made its vectors, so that a handle opened with another model can warn."""
        with self._lock:
            if self._store is not None:
                return self._store.note(key)
            return self._notes.get(key)

    def set_note(self, key: str, value: str) -> None:
        """Record an application note (written to the store when there is one). Notes describe
        the index; they are not examples and must not hold example content."""
        if not isinstance(key, str) or not key or not isinstance(value, str):
            raise ERASEError("a note has a non-empty string key and a string value")
        _check_text(key, "the note's key")
        _check_text(value, "the note's value")
        with self._lock:
            self._require_open()
            if self._store is None:
                self._notes[key] = value
                return
            with self._store.transaction() as txn:
                txn.set_note(key, value)

    # ------------------------------------------------------------------ integrity
    def digest(self) -> str:
        """SHA-256 of the parameters, the multiset of (id, payload, vector) and the clustering."""
        with self._lock:
            self._sync()
            return self._current_digest()

    def _current_digest(self) -> str:
        """The digest of memory as it is (no catching up: internal use between steps)."""
        if self._digest is not None:
            return self._digest
        model = self._model
        pool = f"{len(self._ids)}:{self._pool_hash.hexdigest()}{'no-model' if model is None else model.digest()}"
        self._digest = hashlib.sha256(self._params_text() + pool.encode()).hexdigest()
        return self._digest

    def _params_text(self) -> bytes:
        """The parameters as the digest hashes them (cached: they do not change)."""
        key = (self.k, self.strategy, self.epsilon, self.n_iter, self.seed, self.projection_dim)
        cached = getattr(self, "_params_cache", None)
        if cached is None or cached[0] != key:
            params = {k: v for k, v in self.config().items() if k not in ("format_version", "dim")}
            cached = (key, json.dumps(params, sort_keys=True).encode())
            self._params_cache = cached
        return cached[1]

    def fingerprint(self) -> str:
        """Hash of the ordered ``erase`` selection: changes exactly when the selected set does."""
        with self._lock:
            self._sync()
            chosen = self._erase_ids() if self._model is not None else sorted(self._ids)
            body = json.dumps([[i, self._example_hashes[i]] for i in chosen]).encode()
            return hashlib.sha256(body).hexdigest()[:32]

    @property
    def path(self) -> Path | None:
        """The store file this index writes through to (None when in memory)."""
        return None if self._store is None else self._store.path

    @_retry_if_row_gone
    def save(self, path: str | os.PathLike) -> None:
        """Write a copy of this index to a new store (one transaction).

        ``ExampleIndex.open(path)`` then gives the identical digest. The copy is independent:
        later forgets on this index do not reach it, so prefer ``path=`` for stores that must
        follow deletions.
        """
        from .hashing import id_hash
        from .storage import NewRow

        with self._lock:
            self._sync()
            self._payload_json.load_all()
            store = create_store(path, self.config())
            try:
                order = sorted(self._ids)
                if order:
                    with store.transaction() as txn:
                        txn.add(
                            [
                                NewRow(i, self._payload_json[i], self._vectors[self._slot_of[i]].astype("<f4").tobytes(),
                                       id_hash(i), self._example_hashes[i], self._attrs_json.get(i, ""))
                                for i in order
                            ],
                            self._vectors.shape[1],
                        )
            finally:
                store.close()

    @_retry_if_row_gone
    def rebuilt(self) -> "ExampleIndex":
        """A fresh in-memory index built from scratch on the current examples, same parameters."""
        with self._lock:
            self._sync()
            self._payload_json.load_all()
            return self._fresh(
                sorted(self._ids), lambda order: np.stack([self._vectors[self._slot_of[i]] for i in order]),
                self._payload_json, self._attrs_json,
            )

    def _fresh(self, order: list[str], vectors_of, payload_json: PayloadTexts | dict[str, str],
               attrs: dict[str, str]) -> "ExampleIndex":
        fresh = ExampleIndex(
            self.k, strategy=self.strategy, epsilon=self.epsilon, n_iter=self.n_iter, seed=self.seed,
            projection_dim=self.projection_dim,
        )
        if order:
            unit = vectors_of(order)
            pj = [payload_json[i] for i in order]
            at = [attrs.get(i, "") for i in order]
            hashes = [_example_hash(i, p, row, a) for i, p, row, a in zip(order, pj, unit, at)]
            fresh._add_in_memory(order, pj, unit, hashes, attrs=at)
        return fresh

    def verify(self) -> bool:
        """Rebuild from scratch with the same seed and compare digests.

        In memory: on this handle's examples. With a store: on the rows read back from the
        store (decrypted and authenticated), so it also proves this handle is current."""
        with self._lock:
            self._sync()
            if self._store is None:
                return self.rebuilt().digest() == self.digest()
            _, _, rows = self._store.load()
            by_id = {r.id: r for r in rows}
            fresh = self._fresh(
                sorted(by_id),
                lambda order: np.frombuffer(b"".join(by_id[i].vector for i in order), dtype="<f4").reshape(len(order), -1),
                {i: r.payload_json for i, r in by_id.items()}, {i: r.attrs_json for i, r in by_id.items()},
            )
            return fresh.digest() == self.digest()

    def close(self) -> None:
        """Close the store handle. A closed persisted index refuses every later mutation and
        read (it would otherwise act on memory alone, which no other handle sees)."""
        with self._lock:
            if self._store is not None:
                self._closed_path = self._store.path
                self._store.close()
                self._store = None

    def _require_open(self) -> None:
        """Raise when this index had a store and was closed (a write would reach memory only)."""
        if self._closed_path is not None:
            raise IndexClosedError(
                f"this index on {self._closed_path} is closed: nothing was changed; reopen it with ExampleIndex.open(path)"
            )

    def __enter__(self) -> "ExampleIndex":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ copying and pickling
    def __reduce__(self):
        """Copies and pickles carry state by value or by path, never the handle's internals.

        A persisted index travels as its store path: the copy is another handle on the live
        store, so it follows every later forget. An in-memory index travels as its rows (ids,
        payload JSON, the stored float32 vectors, attributes) and its deletion log; the copy is
        rebuilt from them and must reproduce the digest, or unpickling fails."""
        with self._lock:
            self._sync()
            if self._store is not None:
                return (ExampleIndex.open, (os.fspath(self._store.path),))
            order = sorted(self._ids)
            vectors = (np.stack([self._vectors[self._slot_of[i]] for i in order]) if order
                       else np.zeros((0, self._dim or 0), dtype=np.float32))
            log = None if self._memory_log is None else (self._memory_log.secret, list(self._memory_log.rows))
            state = {
                "params": {key: v for key, v in self.config().items() if key not in ("format_version", "dim")},
                "dim": self._dim, "ids": order, "payload_json": [self._payload_json[i] for i in order],
                "vectors": vectors, "attrs": [self._attrs_json.get(i, "") for i in order],
                "audit": log, "notes": dict(self._notes), "digest": self._current_digest(),
            }
            return (_index_from_state, (state,))

    def __repr__(self) -> str:
        return f"ExampleIndex(k={self.k}, strategy={self.strategy!r}, n={len(self._ids)}, dim={self._dim})"


def _index_from_state(state: dict) -> ExampleIndex:
    """Rebuild an in-memory index from :meth:`ExampleIndex.__reduce__`'s state (exact bits)."""
    params = dict(state["params"])
    index = ExampleIndex(params.pop("k"), **params)
    order = list(state["ids"])
    if order:
        unit = np.ascontiguousarray(state["vectors"], dtype=np.float32)
        pj, at = list(state["payload_json"]), list(state["attrs"])
        hashes = [_example_hash(i, p, row, a) for i, p, row, a in zip(order, pj, unit, at)]
        index._add_in_memory(order, pj, unit, hashes, attrs=at)
    elif state["dim"] is not None:
        index._dim = int(state["dim"])
        index._reset_memory()
    if state["audit"] is not None:
        secret, rows = state["audit"]
        index._memory_log = MemoryAuditLog(secret)
        index._memory_log.rows = [tuple(r) for r in rows]
    index._notes = dict(state.get("notes") or {})
    if index._current_digest() != state["digest"]:
        raise ERASEError("the copied index does not reproduce the original's digest")
    return index

