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

import numpy as np

from .._validation import ERASEError, check_ids
from ..storage.errors import StoreError
from ..storage.interface import Store, Transaction
from .encoding import Incoming
from .local import ClosedReplica
from .memory import Memory

T = TypeVar("T")


class StoreReplica:
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
    def writing(self) -> Iterator["StoreWrite"]:
        """A write transaction, caught up inside. If memory changed in it (after
        :meth:`StoreWrite.delete`) and it does not commit, memory is rebuilt from the store on
        next use. The caller moves :attr:`version` to the committed one once memory matches it."""
        self._ahead = False
        try:
            with self.store.transaction() as txn:
                self._sync_in(txn)
                write = StoreWrite(self, txn)
                yield write
        except BaseException:
            if self._ahead:
                self.stale = True  # memory ran ahead of a transaction that did not commit
            raise
        finally:
            self._ahead = False
        write.version = txn.version

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

    # ------------------------------------------------------------------ what else the store keeps
    @property
    def path(self):
        return self.store.path

    def note(self, key: str) -> str | None:
        return self.store.note(key)

    def set_note(self, key: str, value: str) -> None:
        with self.store.transaction() as txn:
            txn.set_note(key, value)

    def audit_rows(self) -> list:
        return self.store.audit_rows()

    def reference(self) -> Incoming:
        """The examples as the store holds them (read back, decrypted and authenticated): what
        ``verify`` rebuilds from, so it also proves this handle is current."""
        _, dim, stored = self.store.load()
        by_id = {r.id: r for r in stored}
        order = sorted(by_id)
        unit = np.frombuffer(b"".join(by_id[i].vector for i in order), dtype="<f4").reshape(len(order), dim or 0)
        return Incoming.stored(order, unit, [by_id[i].payload_json for i in order], [by_id[i].attrs_json for i in order])

    def close(self) -> ClosedReplica:
        """Close the store handle; the index then refuses every read and write."""
        self.store.close()
        return ClosedReplica(self.store.path)


class StoreWrite:
    """The steps of one write in a store transaction (see :class:`~.local.MemoryWrite`)."""

    __slots__ = ("_replica", "_txn", "version")

    def __init__(self, replica: StoreReplica, txn: Transaction) -> None:
        self._replica = replica
        self._txn = txn
        self.version = txn.version  # the committed version, once committed

    def check(self, new: Incoming) -> None:
        """Inside the transaction: another handle may have added these ids or set the width."""
        memory = self._replica.memory
        new.check_width(memory.dim)
        check_ids(new.ids, len(new.ids), existing=memory.pool.slot_of)

    def delete(self, ids: list[str]) -> None:
        """Delete the rows of ``ids``; memory may change from here on."""
        row_of = self._replica.memory.pool.row_of
        self._txn.delete([row_of[i] for i in ids])
        self._replica._ahead = True

    def add(self, new: Incoming) -> list[int]:
        return self._txn.add(new.store_rows(), new.unit.shape[1])

    def audit(self, entry: dict) -> None:
        self._txn.audit(entry)

    def version_after(self) -> int:
        return self._txn.version_after()

    def post_selection(self) -> None:
        """Post the ``erase`` set of the pool this write leaves, for the other handles."""
        picks = self._replica.memory.clustering.picks_to_post()
        if picks is not None:
            self._txn.post_selection(picks)
