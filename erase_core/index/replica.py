"""A handle's replica of a store's pool: caught up with every change any handle commits.

Before every read the handle compares the store's published version with its own (cheap) and
replays the change log when they differ, or reloads every row when it is further behind than
the log keeps. Writes catch up inside their transaction, so they validate against the current
pool. When memory ran ahead of a write that did not commit, or a memory update failed, the
replica is *stale* and reloads on its next use. Written against :class:`~erase_core.storage.
interface.Store` only.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

from .._validation import ERASEError
from ..storage.errors import StoreError
from ..storage.interface import Store, Transaction
from .memory import Memory

T = TypeVar("T")


class Replica:
    """The store, the version this handle has caught up to, and the catching up."""

    def __init__(self, store: Store, memory: Memory) -> None:
        self.store = store
        self.memory = memory
        self.version = 0
        self.stale = False  # memory is not the store's pool at `version`: reload on next use
        self.secret = store.audit_secret()  # read now: no query inside a write transaction
        self._ahead = False  # memory changed inside the open transaction

    # ------------------------------------------------------------------ opening
    def load(self, timings: dict | None = None) -> None:
        """Fill memory from the store: from its open image and the changes since (fast), or
        from every row (then write the image for the next open). Either way the result is a
        fresh build on the store's rows."""
        from ..storage import image

        store = self.store
        img = store.read_image()
        if img is not None:
            changes = store.changes_since(img.version)
            if changes is not None:
                start = time.perf_counter()
                self._load_image(img)
                if timings is not None:
                    timings["build_memory_s"] = time.perf_counter() - start
                if changes.version != self.version:
                    self._apply_changes(changes)
                return
        version, dim, rows = store.load()
        self._reload((version, dim, rows))
        if len(rows) >= image.image_min_rows():
            # right after the reload the clustering was fitted on the rows in load order
            model = self.memory.clustering.fitted
            store.write_image(version, dim, rows, model.export_state() if model is not None else None)

    def _load_image(self, img) -> None:
        memory = self.memory
        memory.reset()
        self.stale = True  # until the rows are in
        memory.pool.dim = img.dim
        if len(img):
            rows = img.rows.tolist()
            memory.pool.payload_json.set_deferred(img.ids, rows, self._fetch_payloads)
            attrs = [img.attrs.get(i, "") for i in img.ids] if img.attrs else None
            memory.add(img.ids, None, img.vectors, img.example_hash, rows, img.id_hash, attrs,
                       model_state=img.model, adopt=True)
        self.version = img.version
        self.stale = False

    def _fetch_payloads(self, rows: list[int]) -> dict[int, str]:
        """Payloads left in the store by an image open (read under the index's lock)."""
        return self.store.payloads(rows, self.version)

    # ------------------------------------------------------------------ catching up
    def current(self, version: int) -> bool:
        """Whether memory at ``version`` is what the store holds now (without the lock)."""
        if self.stale:
            return False
        try:
            return self.store.settled_version() == version  # None while a write is in flight
        except (ValueError, OSError):  # closed under us: the locked path says so
            return False

    def sync(self) -> None:
        """Catch up with every change any handle committed to the store (cheap when none)."""
        store = self.store
        if self.stale:
            self._reload(store.load())
            return
        settled = store.settled_version()
        if settled is None and store.finish_interrupted():  # a writer died or failed mid-way
            settled = store.settled_version()
        if settled != self.version:  # None: a write is in flight, ask the database
            self.catch_up_committed()

    def catch_up_committed(self) -> None:
        """Catch up with what is committed: replay the change log, or reload when the handle
        is further behind than the log keeps. Also called without looking at the published
        version when a read found a row that a concurrent forget deleted but has not yet announced."""
        store = self.store
        changes = store.changes_since(self.version)
        if changes is None:
            self._reload(store.load())
        elif changes.version != self.version:
            self._apply_changes(changes)

    def _sync_in(self, txn: Transaction) -> None:
        """Catch up inside a write transaction (nothing can change under it)."""
        if not self.stale:
            changes = txn.changes(self.version)
            if changes is not None:
                if changes.version != self.version:
                    self._apply_changes(changes)
                return
        self._reload(txn.load())

    def _reload(self, loaded) -> None:
        """Rebuild memory from the store's rows (open, or a handle too far behind)."""
        version, dim, rows = loaded
        self.memory.reset(None if dim is None else int(dim))
        self.stale = True  # until the rows are in
        self.version = 0
        if rows:
            self.memory.add_rows(rows)
        self.version = version
        self.stale = False

    def _apply_changes(self, changes) -> None:
        """Replay other handles' changes. When the writer of the new version posted its
        ``erase`` set, the rows are updated now and the clustering later (see :mod:`.clustering`)."""
        memory = self.memory
        self.stale = True  # until the memory update completes
        posted = None
        if memory.params.clusters and memory.clustering.fitted is not None:
            posted = self.store.posted_selection(changes.version)
        defer = posted is not None
        id_of_row = memory.pool.id_of_row
        gone = [id_of_row[r] for r in changes.removed if r in id_of_row]
        if gone:
            memory.remove(gone, defer=defer)
        if changes.added:
            if memory.pool.dim is None:
                memory.pool.dim = len(changes.added[0].vector) // 4
            memory.add_rows(changes.added, defer=defer)
        self.version = changes.version
        if posted is not None:  # deferred
            memory.clustering.adopt_posted(posted)
        self.stale = False

    def mark_stale(self) -> None:
        self.stale = True

    # ------------------------------------------------------------------ writing
    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """A write transaction, caught up inside. Call :meth:`memory_changes` before changing
        memory in it: if it then does not commit, memory is rebuilt from the store on next use.
        The caller moves :attr:`version` to the committed one once memory matches it."""
        self._ahead = False
        try:
            with self.store.transaction() as txn:
                self._sync_in(txn)
                yield txn
        except BaseException:
            if self._ahead:
                self.stale = True  # memory ran ahead of a transaction that did not commit
            raise
        finally:
            self._ahead = False

    def memory_changes(self) -> None:
        self._ahead = True

    def after_commit(self, update: Callable[[], T], version: int) -> T:
        """Mirror a committed write in memory; if that fails the handle reloads from the store."""
        try:
            result = update()
        except BaseException as exc:
            self.stale = True
            raise ERASEError(
                f"the change was committed to {self.store.path}, but updating this handle failed ({exc!r}); "
                "it reloads from the store on its next use"
            ) from exc
        self.version = version
        return result

    def post_selection(self, version: int) -> None:
        """Post the ``erase`` set after a write whose memory update followed its commit (add, upsert)."""
        try:
            picks = self.memory.clustering.picks_to_post()
            if picks is not None:
                self.store.post_selection(version, picks)
        except (OSError, StoreError):
            pass  # only a shortcut for other handles: without it they update their clustering
