"""The clustering of a pool (the ``erase`` strategy): kept in step with the pool, or knowingly behind.

A handle that catches up to a version whose writer posted its ``erase`` selection applies the
pool changes at once but defers the clustering's update (a :class:`ModelLag`) until something
needs the model itself: a select that catches up on a forget that moved a centroid then costs
what a cheap forget does, not the writer's recompute. The model is a function of the pool as a
set, so the deferred update is exactly the writer's.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .._validation import ERASEError
from ..quantized_kmeans import QuantizedKMeans, UpdateReport
from ..selection import fill_representatives
from .params import Params
from .pool import Pool


class ModelLag:
    """Pool changes applied to the rows but not yet to the clustering."""

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


class Clustering:
    """The quantized k-means of a :class:`Pool`, its lag, and the ``erase`` set read from it."""

    def __init__(self, params: Params, pool: Pool, on_failure: Callable[[], None]) -> None:
        self.params = params
        self.pool = pool
        self.fitted: QuantizedKMeans | None = None  # as last updated (see model())
        self.lag: ModelLag | None = None
        self.posted_pick: list[tuple[str, float]] | None = None  # the erase set a writer posted for this version
        self._on_failure = on_failure  # a failed deferred update: memory must be rebuilt

    def model(self) -> QuantizedKMeans | None:
        """The clustering of the current pool (a lagging one is brought up to date first); None
        while the pool is smaller than k, and for strategies that do not cluster."""
        if self.lag is not None:
            self._settle()
        return self.fitted

    def install(self, model: QuantizedKMeans | None) -> None:
        self.fitted = model
        self.lag = None

    def _settle(self) -> None:
        """Apply the changes the clustering lags behind: exactly the update the writer made."""
        lag, model, pool, k = self.lag, self.fitted, self.pool, self.params.k
        if lag is None:
            return
        self.lag = None
        try:
            if len(pool) < k:
                self.fitted = None
            elif model is None or len(model) - len(lag.gone) < k:
                self.fitted = self.params.new_model().fit(pool.active, list(pool.ids))
            else:
                if lag.gone:
                    model.remove(lag.gone)
                if lag.new:
                    ids = list(lag.new)
                    model.insert(pool.vectors[[pool.slot_of[i] for i in ids]], ids)
        except BaseException:
            self._on_failure()
            raise

    def _lagging(self) -> ModelLag:
        if self.lag is None:
            self.lag = ModelLag()
        return self.lag

    def after_add(self, n0: int, ids: list[str], all_id_hashes: np.ndarray | None = None, model_state=None,
                  defer: bool = False) -> None:
        """Bring the clustering up to the pool after rows were appended from slot ``n0``.
        ``model_state``: an open image's fit on exactly these rows (installed, not rerun)."""
        if not self.params.clusters:
            return  # only the erase strategy selects through the clustering
        model = self.fitted if defer else self.model()
        if model is not None:
            if defer:
                self._lagging().add(ids)
            else:
                model.insert(self.pool.vectors[n0 : n0 + len(ids)], ids)
            return
        if len(self.pool) >= self.params.k:
            X, all_ids = self.pool.active, list(self.pool.ids)
            if model_state is not None:
                try:
                    self.install(self.params.new_model().fit(X, all_ids, id_hashes=all_id_hashes, state=model_state))
                    return
                except ValueError:
                    pass  # not this pool's fit: fit afresh
            self.install(self.params.new_model().fit(X, all_ids, id_hashes=all_id_hashes))

    def before_remove(self, ids: list[str], defer: bool = False) -> UpdateReport | None:
        """Take ``ids`` out of the clustering before they leave the pool (``defer``: note
        them for later); returns the model's report (None when nothing was recomputed here)."""
        model = self.fitted if defer else self.model()
        if model is None:
            return None
        if len(self.pool) - len(ids) < self.params.k:
            self.install(None)
        elif defer:
            self._lagging().drop(ids)
        else:
            return model.remove(ids)
        return None

    # ------------------------------------------------------------------ the erase set
    def require(self) -> QuantizedKMeans:
        model = self.model()
        if model is None:
            raise ERASEError(
                f"strategy 'erase' needs at least k={self.params.k} examples to cluster; the pool has {len(self.pool)}"
            )
        return model

    def erase_ids(self) -> list[str]:
        """The ``erase`` set: the example nearest each quantized centroid, in cluster order."""
        model = self.require()
        reps = model.representative_ids_
        chosen = [r for r in reps if r is not None]
        if len(chosen) == len(reps):
            return chosen
        ids = list(self.pool.ids)
        return fill_representatives(reps, model.coordinates(ids), ids, model.centroids_, self.params.k)

    def selection_or_none(self) -> list[str] | None:
        """The ``erase`` set, or None while there is no clustering."""
        return self.erase_ids() if self.model() is not None else None

    def centroid_similarity(self, chosen: list[str]) -> list[float]:
        model = self.require()
        pool = self.pool
        labels = model.predict(np.stack([pool.vectors[pool.slot_of[i]] for i in chosen]))
        pts = model.coordinates(chosen)
        cents = model.centroids_[labels]
        num = np.einsum("ij,ij->i", pts, cents)
        den = np.linalg.norm(pts, axis=1) * np.linalg.norm(cents, axis=1)
        return [float(x) for x in np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)]

    def picks(self) -> list[tuple[str, float]]:
        """The ``erase`` set with each example's similarity to its centroid: as posted by the
        writer of this version, or from this clustering."""
        if self.posted_pick is not None:
            return self.posted_pick
        chosen = self.erase_ids()
        return list(zip(chosen, self.centroid_similarity(chosen)))

    def picks_to_post(self) -> list[tuple[int, float]] | None:
        """The ``erase`` set of the current pool as ``(row, score)`` for other handles (and kept
        for this handle's own next ``select``); None when there is none."""
        if not self.params.clusters or self.model() is None:
            return None
        chosen = self.erase_ids()
        picks = list(zip(chosen, self.centroid_similarity(chosen)))
        self.posted_pick = picks
        return [(self.pool.row_of[i], s) for i, s in picks]

    def adopt_posted(self, posted: list[tuple[int, float]]) -> None:
        """Use the ``erase`` set the writer of this version posted (rows and scores), when it
        fits this pool; else bring the clustering up to date now."""
        id_of_row = self.pool.id_of_row
        ids = [id_of_row[r] for r, _ in posted if r in id_of_row]
        k = self.params.k
        if len(ids) == len(posted) == k and len(set(ids)) == k and self.fitted is not None:
            self.posted_pick = [(i, s) for i, (_, s) in zip(ids, posted)]
        else:
            self.model()
