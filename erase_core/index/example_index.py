"""ExampleIndex: a pool of few-shot examples whose selection can be exactly unlearned.

Each example is a string id, a JSON-serialisable payload and an embedding (normalised once on
the way in, :mod:`.encoding`). The index is the public face of its parts: the :mod:`.memory`
(the :mod:`.pool` of rows and its :mod:`.clustering`), the replica that says where the pool
is kept (a store: :mod:`.replica`, kept caught up with every handle; memory alone or closed:
:mod:`.local`), and the :mod:`.snapshot` that ``select_nowait`` reads without the lock. Every
call runs the same steps whatever the replica. Here: the lock, the order of the steps of each
call, audit entries and copying.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .._validation import (ERASEError, UnknownIdError, check_id, check_ids, check_known_ids,
                           reject_unknown_kwargs)
from ..filters import check_subject, parse_attrs
from ..params import check_k, check_mmr
from ..quantized_kmeans import QuantizedKMeans
from ..selection import SelectedExample, mmr_rank, top_k_by_cosine
from ..storage.audit import ChainCheck, MemoryAuditLog, check_chain, make_entry
from ..storage.audit import matches as audit_matches
from ..storage.errors import RowGoneError
from ..storage.interface import Store
from ..storage.locate import create_store, open_store, store_exists
from .encoding import (Incoming, as_payload_list, check_text, checked_filter, filter_text, id_list, id_set,
                       query_vector, real_vectors)
from .memory import Memory
from .params import FORMAT_VERSION, INDEX_PARAMETERS, Params
from .local import ClosedReplica, MemoryReplica
from .receipt import ForgetReceipt, IndexClosedError
from .replica import StoreReplica

#: Where the pool is kept: a store, or memory alone, or nowhere any more (closed).
Replica = StoreReplica | MemoryReplica | ClosedReplica

__all__ = ["ExampleIndex", "ForgetReceipt", "IndexClosedError", "FORMAT_VERSION", "INDEX_PARAMETERS"]

#: A read that keeps racing forgets this many times gives up (it means thousands of forgets a second).
_ROW_GONE_RETRIES = 20


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
                    self._replica.catch_up_committed()
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
        params = Params.checked(k, strategy, epsilon, n_iter, seed, projection_dim)
        self._params = params
        self.k, self.strategy, self.epsilon = params.k, params.strategy, params.epsilon
        self.n_iter, self.seed, self.projection_dim = params.n_iter, params.seed, params.projection_dim
        self._lock = threading.RLock()
        self._forget_listeners: list = []
        self._memory = Memory(params, self._memory_failed)
        self._replica: Replica = MemoryReplica(self._memory)
        if path is not None:
            self._attach(create_store(path, self.config()))

    def _attach(self, store: Store) -> StoreReplica:
        replica = self._replica = StoreReplica(store, self._memory)
        return replica

    def _memory_failed(self) -> None:
        """A deferred clustering update failed: a store-backed handle reloads on its next use."""
        self._replica.mark_stale()

    def config(self) -> dict:
        """The parameters that define the index (persisted with it)."""
        return self._params.config(self._memory.dim)

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
            with index._lock:
                index._attach(store).load(timings)
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

    # ------------------------------------------------------------------ keeping up
    def _sync(self) -> None:
        """Catch up with every change any handle committed to the store (cheap when none)."""
        self._replica.sync()

    def _seen_version(self) -> int:
        return self._replica.version

    # ------------------------------------------------------------------ mutations
    def add(self, vectors, payloads: Sequence[Any], ids: Sequence[str] | None = None, *,
            subjects: Sequence[str | None] | None = None, metadata: Sequence[dict | None] | None = None) -> list[str]:
        """Add examples; returns their ids (generated when not given). Atomic: on any error
        nothing is added, in memory or in the store.

        ``subjects``: per example, whom it belongs to (for :meth:`forget_subject`), or None.
        ``metadata``: per example, a flat JSON object (for :meth:`forget_where` and filtered
        :meth:`select`), or None. Both are stored sealed like the payload."""
        with self._lock:
            self._sync()
            memory = self._memory
            X = real_vectors(vectors, "vectors", memory.dim)
            payloads = as_payload_list(payloads)
            n = X.shape[0]
            if len(payloads) != n:
                raise ERASEError(f"got {len(payloads)} payloads for {n} vectors")
            ids = [uuid.uuid4().hex for _ in payloads] if ids is None else id_list(ids)
            ids = check_ids(ids, n, existing=memory.pool.slot_of)
            new = Incoming.of(ids, X, payloads, subjects, metadata)
            replica = self._replica
            with replica.writing() as write:
                write.check(new)
                rows = write.add(new)
            replica.after_commit(lambda: memory.add_new(new, rows), write.version)
            replica.post_selection(write.version)
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
            self._sync()
            memory = self._memory
            X = real_vectors(vectors, "vectors", memory.dim)
            ids = check_ids(id_list(ids), X.shape[0])
            new = Incoming.of(ids, X, as_payload_list(payloads), subjects, metadata)
            replica = self._replica
            with replica.writing() as write:
                new.check_width(memory.dim)
                pool = memory.pool
                present = [i for i in ids if i in pool]
                write.delete(present)
                owners = pool.subjects_of(present)
                receipt = memory.forget(present, start)
                if present:
                    write.audit(self._audit_entry(receipt, owners, "upsert", None, None, write.version_after()))
                rows = write.add(new)
            replica.after_commit(lambda: memory.add_new(new, rows), write.version)
            replica.post_selection(write.version)
            return receipt

    def forget(self, ids: Iterable[str], *, missing: str = "raise") -> ForgetReceipt:
        """Remove examples exactly: afterwards the index equals one built without them, and with
        a store, every handle on it stops returning them and their keys are shredded on disk.
        The deletion audit log records it (keyed hashes only, see :meth:`audit`).

        Unknown or repeated ids raise :class:`UnknownIdError`/`DuplicateIdError` and change
        nothing, unless ``missing="ignore"``.
        """
        ids = id_list(ids)
        return self._forget(lambda: check_known_ids(ids, self._memory.pool.slot_of, missing=missing), request="ids")

    def forget_subject(self, subject: str) -> ForgetReceipt:
        """Forget every example of ``subject`` (one transaction, one receipt, one audit entry).
        A subject with no examples gives an empty receipt, and the request is still logged."""
        checked = check_subject(subject)
        if checked is None:
            raise ERASEError("forget_subject needs a subject")
        check_text(checked, "subject")
        return self._forget(lambda: sorted(self._memory.pool.attributes.of_subject(checked)),
                            request="subject", subject=checked)

    def forget_where(self, where: dict, *, among: Iterable[str] | None = None) -> ForgetReceipt:
        """Forget every example whose metadata matches the filter ``where`` (see
        :mod:`erase_core.filters`), exactly, in one transaction. ``among``: only these ids
        (unknown ones are skipped), matched inside the same transaction."""
        checked_filter(where)
        filter_text(where)  # the audit log hashes it: fail before the transaction, not inside
        if among is not None:
            allowed = id_set(among)
            return self._forget(lambda: sorted(self._memory.pool.attributes.matching(where) & allowed),
                                request="where", where=where)
        return self._forget(lambda: sorted(self._memory.pool.attributes.matching(where)), request="where", where=where)

    def ids_where(self, where: dict) -> list[str]:
        """The ids of the examples whose metadata match ``where``, sorted (from the index of
        metadata values; what :meth:`forget_where` would forget)."""
        checked_filter(where)
        with self._lock:
            self._sync()
            return sorted(self._memory.pool.attributes.matching(where))

    @_announcing_forget
    def _forget(self, resolve, *, request: str, subject: str | None = None, where: dict | None = None) -> ForgetReceipt:
        """Resolve the ids against the current pool, forget them, log the request; all or nothing."""
        start = time.perf_counter()
        with self._lock:
            memory = self._memory
            replica = self._replica
            with replica.writing() as write:  # forget what another handle added; see what it forgot
                ids = resolve()
                write.delete(ids)
                owners = memory.pool.subjects_of(ids)
                receipt = memory.forget(ids, start)
                write.audit(self._audit_entry(receipt, owners, request, subject, where, write.version_after()))
                if ids:
                    write.post_selection()
            replica.version = write.version
            return receipt

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
        k = self.k if k is None else check_k(k)
        if filter is None:
            now = self.select_nowait(k, query_vector)
            if now is not None:
                return now
        if self.strategy != "erase":
            if query_vector is None:
                raise ERASEError(f"strategy {self.strategy!r} needs a query_vector")
            return self._ranked(query_vector, k, filter, self.strategy == "mmr", fetch_k, lambda_mult, strict=True)
        if filter is not None:
            checked_filter(filter)
            raise ERASEError("filter= applies to the 'similarity' and 'mmr' strategies; 'erase' selects one fixed set for every query")
        with self._lock:
            self._sync()
            n = len(self._memory)
            if n == 0:
                raise ERASEError("the example pool is empty: add examples before selecting")
            if k > n:
                raise ERASEError(f"k={k} is larger than the pool of {n} examples")
            q = None if query_vector is None else self._query(query_vector)
            if k > self.k:
                raise ERASEError(f"strategy 'erase' selects at most the index's k={self.k} examples; got k={k}")
            return self._memory.erase_snapshot(self._seen_version()).answer(k, q)

    def select_nowait(self, k: int | None = None, query_vector=None) -> list[SelectedExample] | None:
        """``select(query_vector, k)`` of the ``erase`` set without taking the index's lock:
        the set the last ``select`` computed, when nothing changed since (in this handle, or,
        with a store, committed by any handle); else None (call :meth:`select`). A forget
        running in another thread does not hold it up: until that forget returns, the set
        before it is the answer (a select that starts after it returned never sees the
        forgotten example). With a query, scores are cosine similarities to it, as ``select``'s."""
        memory = self._memory
        snapshot = memory.snapshot  # read before the version: a newer commit then always shows
        if snapshot is None or self.strategy != "erase" or not self._replica.current(snapshot.version):
            return None
        k = self.k if k is None else check_k(k)
        if k > len(snapshot.picks):
            return None
        answer = snapshot.answer(k, None if query_vector is None else self._query(query_vector))
        if memory.updating:
            # another thread is updating the clustering, one numpy call at a time, each needing
            # the GIL back: let it have it, or a thread selecting in a loop slows it 10-20x
            os.sched_yield()
        return answer

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
        k = self.k if k is None else check_k(k)
        if among is not None:
            among = id_set(among)
            if not all(isinstance(i, str) for i in among):
                raise ERASEError("among must hold string ids")
        return self._ranked(query_vector, k, filter, mmr, fetch_k, lambda_mult, strict=False, among=among)

    def _ranked(self, query_vector, k: int, where: dict | None, mmr: bool, fetch_k: int, lambda_mult: float, *,
                strict: bool, among: set[str] | None = None) -> list[SelectedExample]:
        if where is not None:
            checked_filter(where)
        if mmr:
            fetch_k, lambda_mult = check_mmr(fetch_k, lambda_mult)
        with self._lock:
            self._sync()
            pool = self._memory.pool
            n = len(pool)
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
                vectors, ids = pool.active, pool.ids
            else:
                if where is not None:
                    allowed = pool.attributes.matching(where)
                    allowed = allowed if among is None else allowed & among
                else:  # among was given
                    allowed = {i for i in among or () if i in pool.slot_of}
                ids = sorted(allowed, key=pool.slot_of.__getitem__)
                if not ids:
                    return []
                vectors = pool.vectors_of(ids)
            k = min(k, len(ids))
            if mmr:
                ranked = mmr_rank(vectors, ids, q, k, fetch_k=fetch_k, lambda_mult=float(lambda_mult))
            else:
                ranked = top_k_by_cosine(vectors, ids, q, k)
            texts = pool.payload_json.get_many([ids[r] for r, _ in ranked])  # one store read, not k
            return [SelectedExample(ids[r], json.loads(pj), s) for (r, s), pj in zip(ranked, texts)]

    def _query(self, query) -> np.ndarray:
        """One non-zero query vector of the index's width (float64)."""
        return query_vector(query, self._memory.dim)

    @_retry_if_row_gone
    def get(self, example_id: str) -> Any:
        """A copy of the example's payload."""
        with self._lock:
            self._sync()
            payloads = self._memory.pool.payload_json
            if check_id(example_id, "example_id") not in payloads:
                raise UnknownIdError(f"unknown id {example_id!r}")
            return json.loads(payloads[example_id])

    def vector(self, example_id: str) -> np.ndarray:
        """The stored (unit, float32) embedding of an example (a copy)."""
        with self._lock:
            self._sync()
            pool = self._memory.pool
            if check_id(example_id, "example_id") not in pool:
                raise UnknownIdError(f"unknown id {example_id!r}")
            return pool.vectors[pool.slot_of[example_id]].copy()

    def attributes(self, example_id: str) -> dict:
        """``{"subject": ..., "metadata": {...}}`` of an example (copies)."""
        with self._lock:
            self._sync()
            pool = self._memory.pool
            if check_id(example_id, "example_id") not in pool:
                raise UnknownIdError(f"unknown id {example_id!r}")
            subject, metadata = parse_attrs(pool.attrs_json.get(example_id, ""))
            return {"subject": subject, "metadata": metadata}

    def ids_of_subject(self, subject: str) -> list[str]:
        """The ids of ``subject``'s examples, sorted (what :meth:`forget_subject` would forget)."""
        with self._lock:
            self._sync()
            return sorted(self._memory.pool.attributes.of_subject(subject))

    @property
    def ids(self) -> list[str]:
        """Ids in canonical (sorted) order."""
        with self._lock:
            self._sync()
            return sorted(self._memory.pool.ids)

    @property
    def lock(self):
        """The index's re-entrant lock: hold it to make a compound read (size, then select) atomic
        within this process (other handles on the store may still change it in between)."""
        return self._lock

    @property
    def dim(self) -> int | None:
        return self._memory.dim

    @property
    def model(self) -> QuantizedKMeans | None:
        """The clustering behind the ``erase`` strategy (None while the pool is smaller than k,
        and always None for ``similarity``, which does not cluster)."""
        with self._lock:
            self._sync()
            return self._memory.clustering.model()

    @property
    def version(self) -> int:
        """The store version this handle has caught up to (0 for an in-memory index)."""
        with self._lock:
            self._sync()
            return self._seen_version()

    def refresh(self) -> bool:
        """Catch up with the store now; True if anything changed. (Every read does this itself.)"""
        with self._lock:
            before = self._seen_version()
            self._sync()
            return self._seen_version() != before

    def __len__(self) -> int:
        memory, replica = self._memory, self._replica
        n = len(memory.pool.ids)
        if replica.current(replica.version) and len(memory.pool.ids) == n:
            return n  # not held up by a forget in another thread
        with self._lock:
            self._sync()
            return len(memory)

    def __contains__(self, example_id) -> bool:
        with self._lock:
            self._sync()
            return example_id in self._memory.pool

    # ------------------------------------------------------------------ forget listeners
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

    # ------------------------------------------------------------------ notes
    def note(self, key: str) -> str | None:
        """An application note kept with the index (``None`` if unset), e.g. which embedding
        model made its vectors, so that a handle opened with another model can warn."""
        with self._lock:
            return self._replica.note(key)

    def set_note(self, key: str, value: str) -> None:
        """Record an application note (written to the store when there is one). Notes describe
        the index; they are not examples and must not hold example content."""
        if not isinstance(key, str) or not key or not isinstance(value, str):
            raise ERASEError("a note has a non-empty string key and a string value")
        check_text(key, "the note's key")
        check_text(value, "the note's value")
        with self._lock:
            self._replica.set_note(key, value)

    # ------------------------------------------------------------------ audit
    def _audit_entry(self, receipt: ForgetReceipt, owners: list[str | None], request: str, subject, where,
                     version: int = 0) -> dict:
        return make_entry(
            self._audit_secret(), request=request, ids=receipt.ids, subjects=owners,
            subject=subject, where=where, digest_before=receipt.digest_before, digest_after=receipt.digest_after,
            recomputed=receipt.recomputed, version=version,
        )

    def _audit_secret(self) -> bytes:
        return self._replica.secret

    def _audit_rows(self) -> list:
        with self._lock:
            return self._replica.audit_rows()

    def audit(self) -> list[dict]:
        """Every entry of the deletion audit log, oldest first (see :mod:`erase_core.storage.audit`)."""
        return [json.loads(text) for _, text, _, _ in self._audit_rows()]

    def check_audit(self) -> ChainCheck:
        """Verify the audit log's hash chain (an edited, reordered or deleted entry fails)."""
        return check_chain(self._audit_rows())

    def forgotten(self, *, example_id: str | None = None, subject: str | None = None, where: dict | None = None) -> list[dict]:
        """The audit entries that forgot ``example_id`` / ``subject`` / the filter ``where`` (empty: never)."""
        with self._lock:
            secret = self._audit_secret()
            return [e for e in self.audit() if audit_matches(secret, e, example_id=example_id, subject=subject, where=where)]

    # ------------------------------------------------------------------ integrity
    def digest(self) -> str:
        """SHA-256 of the parameters, the multiset of (id, payload, vector) and the clustering."""
        with self._lock:
            self._sync()
            return self._memory.digest()

    def fingerprint(self) -> str:
        """Hash of the ordered ``erase`` selection: changes exactly when the selected set does."""
        with self._lock:
            self._sync()
            pool = self._memory.pool
            chosen = self._memory.clustering.selection_or_none()
            if chosen is None:
                chosen = sorted(pool.ids)
            body = json.dumps([[i, pool.example_hashes[i]] for i in chosen]).encode()
            return hashlib.sha256(body).hexdigest()[:32]

    @property
    def path(self) -> Path | None:
        """The store file this index writes through to (None when in memory)."""
        return self._replica.path

    def _encoded(self) -> Incoming:
        """Every example as stored (sorted by id; payloads read), to copy or rebuild the pool."""
        pool = self._memory.pool
        order = sorted(pool.ids)
        vectors, payload_jsons, attrs = pool.encoded(order)
        return Incoming(order, payload_jsons, vectors, [pool.example_hashes[i] for i in order], attrs)

    @_retry_if_row_gone
    def save(self, path: str | os.PathLike) -> None:
        """Write a copy of this index to a new store (one transaction).

        ``ExampleIndex.open(path)`` then gives the identical digest. The copy is independent:
        later forgets on this index do not reach it, so prefer ``path=`` for stores that must
        follow deletions.
        """
        with self._lock:
            self._sync()
            rows = self._encoded()
            store = create_store(path, self.config())
            try:
                if rows.ids:
                    with store.transaction() as txn:
                        txn.add(rows.store_rows(), rows.unit.shape[1])
            finally:
                store.close()

    @_retry_if_row_gone
    def rebuilt(self) -> "ExampleIndex":
        """A fresh in-memory index built from scratch on the current examples, same parameters."""
        with self._lock:
            self._sync()
            rows = self._encoded()
            return self._fresh(Incoming.stored(rows.ids, rows.unit, rows.payload_jsons, rows.attrs))

    def _fresh(self, rows: Incoming) -> "ExampleIndex":
        fresh = ExampleIndex(**self._params.as_dict())
        if rows.ids:
            fresh._memory.add_new(rows)
        return fresh

    def verify(self) -> bool:
        """Rebuild from scratch with the same seed and compare digests.

        In memory: on this handle's examples. With a store: on the rows read back from the
        store (decrypted and authenticated), so it also proves this handle is current."""
        with self._lock:
            self._sync()
            return self._fresh(self._replica.reference()).digest() == self.digest()

    def close(self) -> None:
        """Close the store handle. A closed persisted index refuses every later mutation and
        read (it would otherwise act on memory alone, which no other handle sees)."""
        with self._lock:
            self._replica = self._replica.close()

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
            replica = self._replica
            if not isinstance(replica, MemoryReplica):  # another handle on the same store
                return (ExampleIndex.open, (os.fspath(replica.path),))
            rows = self._encoded()
            state = {
                "params": self._params.as_dict(), "dim": self._memory.dim, "ids": rows.ids,
                "payload_json": rows.payload_jsons, "vectors": rows.unit, "attrs": rows.attrs,
                "audit": (replica.log.secret, replica.audit_rows()), "notes": dict(replica.notes),
                "digest": self._memory.digest(),
            }
            return (_index_from_state, (state,))

    def __repr__(self) -> str:
        return f"ExampleIndex(k={self.k}, strategy={self.strategy!r}, n={len(self._memory)}, dim={self._memory.dim})"


def _index_from_state(state: dict) -> ExampleIndex:
    """Rebuild an in-memory index from :meth:`ExampleIndex.__reduce__`'s state (exact bits)."""
    index = ExampleIndex(**state["params"])
    order = list(state["ids"])
    if order:
        unit = np.ascontiguousarray(state["vectors"], dtype=np.float32)
        index._memory.add_new(Incoming.stored(order, unit, list(state["payload_json"]), list(state["attrs"])))
    elif state["dim"] is not None:
        index._memory.reset(int(state["dim"]))
    replica = index._replica
    assert isinstance(replica, MemoryReplica)
    if state["audit"] is not None:
        secret, rows = state["audit"]
        replica.log = MemoryAuditLog(secret)
        replica.log.rows = [tuple(r) for r in rows]
    replica.notes = dict(state.get("notes") or {})
    if index._memory.digest() != state["digest"]:
        raise ERASEError("the copied index does not reproduce the original's digest")
    return index
