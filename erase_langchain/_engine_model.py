"""The pydantic fields and validation shared by the selector and the retriever: the engine's
parameters, building (or reopening) the engine from them, and forgetting (by id, by subject,
by metadata filter). Forgets reach a watching :class:`~erase_langchain.ForgettingCache` through
the engine's forget listeners; selections through :mod:`erase_langchain._handouts`."""

from __future__ import annotations

import os
from typing import Any, Literal, Sequence

from langchain_core.embeddings import Embeddings
from langchain_core.runnables.config import run_in_executor
from pydantic import BaseModel, ConfigDict, PrivateAttr, field_validator, model_validator

from erase_core import ERASEError, ExampleIndex, ForgetReceipt, SelectedExample
from erase_core import forget as forget_in
from erase_core.params import check_k, check_mmr

from . import _handouts
from ._common import as_id_list, as_subject, build_or_open_index, check_embedding_identity, check_matches


class EngineModel(BaseModel):
    """Fields that describe the ERASE engine behind a LangChain object."""

    embeddings: Embeddings
    """Any LangChain embedding model."""

    k: int = 4
    """Examples per prompt / documents per query (for ``erase`` also the number of clusters of a new index)."""

    strategy: Literal["erase", "similarity", "mmr"] = "erase"
    """``erase``: fixed set, one item per cluster. ``similarity``: exact top-k per input.
    ``mmr``: maximal marginal relevance per input (similar and diverse; ``fetch_k``, ``lambda_mult``)."""

    fetch_k: int = 20
    """``mmr``: how many of the most similar items the diverse ``k`` are picked from."""

    lambda_mult: float = 0.5
    """``mmr``: 1 is pure similarity, 0 pure diversity (LangChain's default 0.5)."""

    persist_path: str | None = None
    """SQLite file holding the items and their embeddings (``None``: in memory)."""

    epsilon: float | None = None
    """Quantization grid step of the k-means centroids (``None``: the engine's default)."""

    n_iter: int = 10
    """Lloyd iterations of the quantized k-means."""

    seed: int = 0
    """Seed of the k-means++ races and grid phases (part of the index's identity)."""

    projection_dim: int | None = None
    """Random projection for the clustering (``None``: the engine's default, 32-d for wide inputs; 0: none)."""

    subject_key: str | None = None
    """Field whose value is the item's subject (whom it belongs to, e.g. ``"user_id"``), for
    ``forget(subject=...)``: an example field (selector) or a ``Document.metadata`` key
    (retriever). A missing or ``None`` value: no subject. Strings and integers (stored as
    their decimal string); anything else raises."""

    index: ExampleIndex | None = None
    """The engine (built from the fields above when not given)."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    @field_validator("persist_path", mode="before")
    @classmethod
    def _path_to_str(cls, value: Any) -> Any:
        return os.fspath(value) if isinstance(value, os.PathLike) else value

    @model_validator(mode="after")
    def _build_index(self):
        check_k(self.k)
        check_mmr(self.fetch_k, self.lambda_mult)
        if self.index is None:
            object.__setattr__(self, "index", build_or_open_index(self, allow_open=True))
        check_matches(self, self.index)
        check_embedding_identity(self.index, self.embeddings)
        self._check_search()
        return self

    def _check_search(self) -> None:
        """Validate search defaults (filters) against the engine's strategy (subclasses)."""

    @property
    def _engine(self) -> ExampleIndex:
        """``index``, which validation always sets; ``None`` only on an object made without it
        (``model_construct``), which cannot work."""
        if self.index is None:
            raise ERASEError(f"this {type(self).__name__} has no example index: it was built without validation")
        return self.index

    # ------------------------------------------------------------------ caches
    def _notify_selected(self, selected: list[SelectedExample]) -> None:
        """Report what is handed out (a watching ``ForgettingCache`` learns what prompts may hold)."""
        _handouts.handed_out(self.index, [(s.id, s.payload) for s in selected])

    # ------------------------------------------------------------------ forgetting
    def forget(self, ids: str | Sequence[str] | None = None, *, subject: str | int | None = None,
               missing: Literal["raise", "ignore"] = "raise") -> ForgetReceipt:
        """Exactly unlearn items: ``forget(ids)`` (one id or a list) or ``forget(subject=...)``
        (every item of that subject, one transaction). Afterwards the object equals one built
        without them (same :meth:`digest`), with ``persist_path`` they are erased from disk,
        the deletion audit log records the request, and every watching ``ForgettingCache``
        drops the generations whose prompts contained them before this returns.

        ``missing`` applies to ids: unknown ids raise ``UnknownIdError`` (nothing changes)
        unless ``"ignore"``. A subject with no items gives an empty receipt (still logged)."""
        return forget_in(self._engine, ids=None if ids is None else as_id_list(ids),
                         subject=None if subject is None else as_subject(subject), missing=missing)

    async def aforget(self, ids: str | Sequence[str] | None = None, *, subject: str | int | None = None,
                      missing: Literal["raise", "ignore"] = "raise") -> ForgetReceipt:
        """Async :meth:`forget` (runs in an executor)."""
        ids = None if ids is None else as_id_list(ids)
        return await run_in_executor(None, self.forget, ids, subject=subject, missing=missing)

    def forget_where(self, filter: dict) -> ForgetReceipt:  # noqa: A002
        """Exactly unlearn every item whose metadata matches ``filter`` (the filter language
        of :mod:`erase_core.filters`: ``{"lang": "en"}``, ``{"stars": {"$lt": 3}}``, ``$or``...),
        in one transaction."""
        return forget_in(self._engine, where=filter)

    async def aforget_where(self, filter: dict) -> ForgetReceipt:  # noqa: A002
        """Async :meth:`forget_where` (runs in an executor)."""
        return await run_in_executor(None, self.forget_where, filter)

    def ids_of_subject(self, subject: str | int) -> list[str]:
        """The ids of ``subject``'s items, sorted (what ``forget(subject=...)`` would forget)."""
        return self._engine.ids_of_subject(as_subject(subject))

    def attributes(self, item_id: str) -> dict:
        """``{"subject": ..., "metadata": {...}}`` stored with an item."""
        return self._engine.attributes(item_id)

    # ------------------------------------------------------------------ inspection and lifetime
    @property
    def ids(self) -> list[str]:
        """Ids of all items (sorted)."""
        return self._engine.ids

    def digest(self) -> str:
        """The engine's digest: equal for two objects exactly when their items (ids, payloads,
        embeddings), parameters and clustering are equal."""
        return self._engine.digest()

    def verify(self) -> bool:
        """Rebuild the index from scratch and compare digests (see ``ExampleIndex.verify``)."""
        return self._engine.verify()

    def close(self) -> None:
        """Close the SQLite store (if any)."""
        self._engine.close()
