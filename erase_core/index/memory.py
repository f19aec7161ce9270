"""What a handle holds in memory: the pool and its clustering, changed together, and what is
derived from them (the digest, the ``erase`` snapshot) dropped on every change.

Every change goes through :meth:`Memory.add` or :meth:`Memory.remove`; nothing here knows
whether there is a store (the replica and the index decide when memory changes).
"""

from __future__ import annotations

import hashlib
import time
from contextlib import contextmanager
from typing import Callable, Sequence

import numpy as np

from ..quantized_kmeans import UpdateReport
from ..storage.rows import PlainRow
from .clustering import Clustering
from .encoding import Incoming
from .params import Params
from .pool import Pool
from .receipt import ForgetReceipt
from .snapshot import Snapshot


class Memory:
    """The pool, its clustering, and the caches derived from them."""

    def __init__(self, params: Params, on_failure: Callable[[], None], dim: int | None = None) -> None:
        self.params = params
        self._on_failure = on_failure
        self.pool = Pool(dim)
        self.clustering = Clustering(params, self.pool, on_failure)
        self._digest: str | None = None  # cached until the next change
        self._params_text = params.digest_text()
        # select() of the erase strategy until the next change, read without the lock by select_nowait
        self.snapshot: Snapshot | None = None
        self.updating = False  # a thread is changing memory (select_nowait then yields the GIL)

    def reset(self, dim: int | None = None) -> None:
        """Empty memory (keeping the vector width unless ``dim`` is given)."""
        self.pool = Pool(self.pool.dim if dim is None else dim)
        self.clustering = Clustering(self.params, self.pool, self._on_failure)
        self.changed()

    @property
    def dim(self) -> int | None:
        return self.pool.dim

    def __len__(self) -> int:
        return len(self.pool)

    # ------------------------------------------------------------------ changes
    def add(self, ids: list[str], payload_jsons: list[str] | None, unit: np.ndarray, hashes,
            rows: list[int] | None = None, id_hashes: np.ndarray | None = None, attrs: list[str] | None = None,
            *, model_state=None, adopt: bool = False, defer: bool = False) -> None:
        """Append already-normalised rows and update the clustering (``defer``: later, see
        :mod:`.clustering`; ``id_hashes``/``model_state``: an open image's, for a first fill)."""
        n0 = self.pool.append(ids, payload_jsons, unit, hashes, rows, attrs, adopt=adopt)
        with self._changing():
            self.clustering.after_add(n0, ids, id_hashes if n0 == 0 else None, model_state if n0 == 0 else None, defer)

    def add_new(self, new: Incoming, rows: list[int] | None = None) -> None:
        self.add(new.ids, new.payload_jsons, new.unit, new.hashes, rows, attrs=new.attrs)

    def add_rows(self, rows: Sequence[PlainRow], *, defer: bool = False) -> None:
        """Append rows read from a store."""
        unit = np.frombuffer(b"".join(r.vector for r in rows), dtype="<f4").reshape(len(rows), -1)
        self.add(
            [r.id for r in rows], [r.payload_json for r in rows], unit, [r.example_hash for r in rows],
            [r.row for r in rows], np.fromiter((r.id_hash for r in rows), dtype=np.uint64, count=len(rows)),
            [r.attrs_json for r in rows], defer=defer,
        )

    def remove(self, ids: list[str], *, defer: bool = False) -> UpdateReport | None:
        """Drop examples from the clustering and the pool; returns the model's report (or None)."""
        self.updating = True  # as `with self._changing():`, without a generator per forget
        try:
            report = self.clustering.before_remove(ids, defer)
            self.pool.drop(ids)
        finally:
            self.changed()
        return report

    @contextmanager
    def _changing(self):
        """Around a change: what is derived from the pool is dropped at its end, the snapshot
        only then, so a select_nowait in another thread meanwhile answers with the pool before
        the change (and yields the GIL to it)."""
        self.updating = True
        try:
            yield
        finally:
            self.changed()

    def changed(self) -> None:
        self._digest = None
        self.clustering.posted_pick = None
        self.snapshot = None
        self.updating = False

    def forget(self, ids: list[str], start: float) -> ForgetReceipt:
        """Remove ``ids`` (known, distinct) and say what it did."""
        before = self.digest()
        selected_before: list[str] | None = self.clustering.selection_or_none()
        if not ids:
            return ForgetReceipt((), len(self.pool), False, False, None, before, before, time.perf_counter() - start)
        report = self.remove(ids)
        recompute_from = None if report is None else report.recompute_from
        if (report is not None and recompute_from is None and not report.representatives_changed
                and selected_before is not None and not any(i in selected_before for i in ids)):
            # same centroids and representatives, and no selected example went (the fill-in of
            # empty clusters ranks the other examples by fixed keys): the same set
            selected_after: list[str] | None = selected_before
        else:
            selected_after = self.clustering.selection_or_none()
        return ForgetReceipt(
            ids=tuple(ids), n_remaining=len(self.pool), selected_changed=selected_before != selected_after,
            recomputed=recompute_from is not None, recompute_from=recompute_from,
            digest_before=before, digest_after=self.digest(), seconds=time.perf_counter() - start,
        )

    # ------------------------------------------------------------------ derived
    def digest(self) -> str:
        """SHA-256 of the parameters, the multiset of examples and the clustering (cached)."""
        if self._digest is None:
            model = self.clustering.model()
            pool = self.pool.digest_text() + ("no-model" if model is None else model.digest())
            self._digest = hashlib.sha256(self._params_text + pool.encode()).hexdigest()
        return self._digest

    def erase_snapshot(self, version: int) -> Snapshot:
        """The ``erase`` set of the pool at ``version``: the kept snapshot, or a new one."""
        if self.snapshot is None:
            picks = self.clustering.picks()
            texts = self.pool.payload_json.get_many([i for i, _ in picks])  # one store read, not k
            self.snapshot = Snapshot.of(version, picks, texts, self.pool.vectors_of([i for i, _ in picks]))
        return self.snapshot
