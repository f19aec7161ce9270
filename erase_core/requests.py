"""The two requests every adapter makes of an index, decided once: a lenient select and a forget.

The LangChain and LlamaIndex classes translate their frameworks' calls into these two
functions; what an empty or small pool returns, how many examples an ``erase`` selection may
hold, when a filter applies and which forget a request means are decided here, on the
index's public API only. Every forget goes through the index's own ``forget``,
``forget_subject`` or ``forget_where``, so it reaches the index's forget listeners
(:meth:`~erase_core.ExampleIndex.add_forget_listener`) whichever class made it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from ._validation import ERASEError, check_vectors
from .filters import check_filter
from .params import check_k, check_mmr
from .selection import SelectedExample

if TYPE_CHECKING:
    from .example_index import ExampleIndex, ForgetReceipt

__all__ = ["check_select_filter", "forget", "select_available"]


def check_select_filter(strategy: str, filter: dict | None) -> dict | None:  # noqa: A002
    """A metadata filter (``None``: none) checked for a selection under ``strategy``: the
    query strategies rank only the matching examples; ``erase`` has one fixed set for every
    query, so a filter there is an error."""
    if filter is None:
        return None
    check_filter(filter)
    if strategy == "erase":
        raise ERASEError(
            "a metadata filter applies to strategies 'similarity' and 'mmr' only: 'erase' selects one fixed set "
            "for every query, so it cannot restrict it per query (use strategy 'similarity', or one store per tenant)"
        )
    return filter


def select_available(index: "ExampleIndex", query_vector: Any = None, k: int | None = None, *,
                     filter: dict | None = None, fetch_k: int = 20,  # noqa: A002
                     lambda_mult: float = 0.5) -> list[SelectedExample]:
    """``index.select`` that returns what exists, as a framework's selector or retriever does.

    * An empty pool gives ``[]`` under every strategy.
    * ``similarity``: the top ``min(k, pool)`` examples by cosine to ``query_vector``
      (required); with ``filter`` only the matching ones, so fewer when fewer match.
    * ``mmr``: the same, picked by maximal marginal relevance among the ``fetch_k`` most similar.
    * ``erase``: the first ``k`` of the fixed cluster-ordered set; ``k`` above the index's ``k``
      is an error (there are only that many clusters), and so is a filter. While the pool is
      smaller than the index's ``k`` there is no clustering: every example is its own cluster,
      so the set is the whole pool in id order (the order ``ExampleIndex.fingerprint`` uses),
      each scored 1.0 (its own centroid), or by cosine to ``query_vector`` when one is given,
      as ``select`` scores.

    ``k`` defaults to the index's. Without a filter the ``erase`` set is answered without
    waiting for a forget running in another thread (``select_nowait``)."""
    k = index.k if k is None else check_k(k)
    fetch_k, lambda_mult = check_mmr(fetch_k, lambda_mult)
    filter = check_select_filter(index.strategy, filter)  # noqa: A001
    erase = index.strategy == "erase"
    if erase:
        if k > index.k:
            raise ERASEError(
                f"strategy 'erase' selects at most the index's k={index.k} examples (one per cluster); got k={k}"
            )
        now = index.select_nowait(k, query_vector)
        if now is not None:
            return now
    with index.lock:  # "look at the pool, then select" is one step
        n = len(index)
        if n == 0:
            return []
        if not erase:
            if query_vector is None:
                raise ERASEError(f"strategy {index.strategy!r} needs a query to rank the examples by")
            return index.search(query_vector, k, filter=filter, mmr=index.strategy == "mmr", fetch_k=fetch_k,
                                lambda_mult=lambda_mult)
        if n < index.k:
            return _whole_pool(index, query_vector, k)
        return index.select(query_vector, k=k)


def _whole_pool(index: "ExampleIndex", query_vector: Any, k: int) -> list[SelectedExample]:
    """The ``erase`` set of a pool smaller than the index's ``k`` (caller holds the lock)."""
    ids = index.ids[:k]
    if query_vector is None:
        return [SelectedExample(i, index.get(i), 1.0) for i in ids]
    q = check_vectors(query_vector, dim=index.dim, name="query_vector")
    if q.shape[0] != 1:
        raise ERASEError(f"query_vector must be one vector; got {q.shape[0]} rows")
    norm = float(np.linalg.norm(q[0]))
    if not np.isfinite(norm) or norm == 0:
        raise ERASEError("query_vector is all zeros or its norm is not finite")
    unit = q[0] / norm
    return [SelectedExample(i, index.get(i), float(index.vector(i).astype(np.float64) @ unit)) for i in ids]


def forget(index: "ExampleIndex", *, ids: str | Iterable[str] | None = None, subject: str | None = None,
           where: dict | None = None, missing: str = "raise") -> "ForgetReceipt":
    """Forget exactly, in one transaction, and return the index's receipt. One request:

    * ``ids`` (one id or several): those examples; unknown or repeated ids raise and nothing
      changes, unless ``missing="ignore"`` (they are skipped).
    * ``subject``: every example of that subject (none: an empty receipt, still logged).
    * ``where``: every example whose metadata match the filter.
    * ``ids`` with ``where``: those of ``ids`` that match (unknown ids skipped), matched inside
      the same transaction.

    The index announces the forget to its listeners (``add_forget_listener``) before this returns."""
    if subject is None and where is None and ids is not None:
        return index.forget(ids, missing=missing)
    if ids is None and where is None and subject is not None:
        return index.forget_subject(subject)
    if ids is None and subject is None and where is not None:
        return index.forget_where(where)
    if subject is None and ids is not None and where is not None:
        return index.forget_where(where, among=[ids] if isinstance(ids, str) else ids)
    given = [name for name, value in (("ids", ids), ("subject", subject), ("where", where)) if value is not None]
    raise ERASEError(
        "give ids to forget, or subject=..., or where=... (exactly one of them; ids with where= forgets "
        f"the ids that match); got {', '.join(given) or 'none'}"
    )
