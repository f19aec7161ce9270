"""``ERASERetriever``: a LangChain retriever over an exactly unlearnable ERASE index."""

from __future__ import annotations

import os
from typing import Any, Literal, Sequence

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables.config import run_in_executor

from pydantic import Field, field_validator

from erase_core import ERASEError, ExampleIndex, SelectedExample, select_available
from erase_core.params import check_k, reject_unknown_kwargs

from ._engine_model import EngineModel
from ._common import check_search_filter, document_rows, selection_fingerprint, to_float_rows

#: The search keywords ``invoke``/``search_kwargs`` understand. ``verbose`` is LangChain's own
#: (``BaseRetriever.invoke`` reads it for the callbacks and passes it on): accepted, unused.
SEARCH_KEYWORDS = ("k", "filter")
_LANGCHAIN_KEYWORDS = ("verbose",)


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


_UNSET: Any = _Unset()

__all__ = ["ERASERetriever"]


class ERASERetriever(BaseRetriever, EngineModel):
    """Documents in, documents out, with exact ``forget``.

    ``strategy="similarity"`` (default) returns the exact top ``k`` by cosine similarity of
    ``page_content`` embeddings, as a retriever's users expect; ``strategy="mmr"`` picks them
    by maximal marginal relevance (``fetch_k``, ``lambda_mult``); ``strategy="erase"`` returns
    the same ``k`` documents for every query (one per quantized k-means cluster; the query is
    not embedded), the fixed set a few-shot prompt wants.

    ``ERASERetriever(embeddings=emb, documents=docs, k=3)`` builds the index (ids from
    ``ids=``, else each ``Document.id``, else generated; returned documents carry them in
    ``.id``). ``invoke(query, k=2)`` overrides ``k`` per call (for ``erase`` at most the
    index's ``k``).

    ``Document.metadata`` becomes the item's metadata (JSON values only: anything else raises),
    so ``invoke(query, filter={"lang": "en"})`` (``similarity``) returns only matching
    documents and :meth:`forget_where` forgets them; ``subject_key`` names the metadata key
    holding the owner, for ``forget(subject=...)``. ``search_kwargs`` (``k``, ``filter``)
    are per-retriever defaults, as on LangChain's vector-store retrievers; an unknown search
    keyword raises ``TypeError``.
    """

    strategy: Literal["erase", "similarity", "mmr"] = "similarity"
    """``similarity`` (default): exact top-k per query. ``mmr``: similar and diverse. ``erase``:
    one fixed set, one document per quantized k-means cluster."""

    search_kwargs: dict = Field(default_factory=dict)
    """Default search keywords for every call (``{"k": 2, "filter": {...}}``); keywords given
    to ``invoke`` replace them for that call."""

    def __init__(self, *, documents: Sequence[Document] | None = None, ids: Sequence[str] | None = None,
                 subjects: Sequence[str | int | None] | None = None, **data: Any):
        fields = set(type(self).model_fields)
        reject_unknown_kwargs("ERASERetriever", {key: v for key, v in data.items() if key not in fields},
                              fields | {"documents", "ids", "subjects"})
        super().__init__(**data)
        if documents:
            self.add_documents(documents, ids=ids, subjects=subjects)
        elif ids or subjects:
            raise ERASEError("ids= or subjects= was given without documents=")

    @field_validator("search_kwargs")
    @classmethod
    def _known_search_kwargs(cls, value: dict) -> dict:
        unknown = sorted(set(value) - set(SEARCH_KEYWORDS))
        if unknown:
            raise ValueError(f"unknown search_kwargs {unknown}: ERASERetriever supports {list(SEARCH_KEYWORDS)}")
        if value.get("k") is not None:
            check_k(value["k"])
        return dict(value)

    def _check_search(self) -> None:
        check_search_filter(self._engine, self.search_kwargs.get("filter"))

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_documents(cls, documents: Sequence[Document], embeddings: Embeddings, *, ids: Sequence[str] | None = None,
                       subjects: Sequence[str | int | None] | None = None, **kwargs: Any) -> "ERASERetriever":
        return cls(embeddings=embeddings, documents=documents, ids=ids, subjects=subjects, **kwargs)

    @classmethod
    def from_texts(cls, texts: Sequence[str], embeddings: Embeddings, metadatas: Sequence[dict] | None = None, *,
                   ids: Sequence[str] | None = None, subjects: Sequence[str | int | None] | None = None,
                   **kwargs: Any) -> "ERASERetriever":
        metadatas = list(metadatas) if metadatas is not None else [{} for _ in texts]
        if len(metadatas) != len(texts):
            raise ERASEError(f"got {len(metadatas)} metadatas for {len(texts)} texts")
        docs = [Document(page_content=t, metadata=m) for t, m in zip(texts, metadatas)]
        return cls(embeddings=embeddings, documents=docs, ids=ids, subjects=subjects, **kwargs)

    @classmethod
    def open(cls, persist_path: str | os.PathLike, embeddings: Embeddings, *, k: int | None = None,
             subject_key: str | None = None, search_kwargs: dict | None = None) -> "ERASERetriever":
        """Reopen a retriever saved with ``persist_path`` (nothing is re-embedded). Pass the same
        ``subject_key`` as when it was built (it is not stored; the documents' subjects are)."""
        index = ExampleIndex.open(persist_path)
        try:
            extra: dict[str, Any] = {} if k is None else {"k": k}
            return cls(embeddings=embeddings, index=index, persist_path=os.fspath(persist_path), subject_key=subject_key,
                       search_kwargs=dict(search_kwargs or {}), **extra)
        except Exception:
            index.close()
            raise

    # ------------------------------------------------------------------ mutations
    def _payloads(self, documents: Sequence[Document], ids: Sequence[str] | None,
                  subjects: Sequence[str | int | None] | None) -> tuple[list[dict], list[str], list, list]:
        """Payloads, ids, subjects and metadata of documents (validated before anything is
        embedded; the rule shared with ``ERASEVectorStore``: ``_common.document_rows``)."""
        ids, payloads, subjects, metadata = document_rows(documents, ids, subjects, self.subject_key)
        return payloads, ids, subjects, metadata

    def _add(self, vectors, payloads: list[dict], ids, subjects, metadata) -> list[str]:
        self._engine.upsert(to_float_rows(vectors, len(payloads)), payloads, ids, subjects=subjects,
                            metadata=[dict(m) for m in metadata])
        return ids

    def add_documents(self, documents: Sequence[Document], ids: Sequence[str] | None = None, *,
                      subjects: Sequence[str | int | None] | None = None) -> list[str]:
        """Embed and add documents; returns their ids (``ids=``, else each ``Document.id``, else
        a new UUID). As in LangChain's vector stores (and ``ERASEVectorStore``), a document
        whose id is already stored replaces it exactly, in one transaction. Atomic. Each
        document's metadata becomes its filterable metadata; its subject is ``subjects[j]``
        when given, else ``metadata[subject_key]``."""
        payloads, ids, subjects, metadata = self._payloads(documents, ids, subjects)
        if not payloads:
            return []
        vectors = self.embeddings.embed_documents([p["page_content"] for p in payloads])
        return self._add(vectors, payloads, ids, subjects, metadata)

    async def aadd_documents(self, documents: Sequence[Document], ids: Sequence[str] | None = None, *,
                             subjects: Sequence[str | int | None] | None = None) -> list[str]:
        """Async :meth:`add_documents`."""
        payloads, ids, subjects, metadata = self._payloads(documents, ids, subjects)
        if not payloads:
            return []
        vectors = await self.embeddings.aembed_documents([p["page_content"] for p in payloads])
        return await run_in_executor(None, self._add, vectors, payloads, ids, subjects, metadata)

    # ------------------------------------------------------------------ retrieval
    @staticmethod
    def _to_documents(selected: list[SelectedExample]) -> list[Document]:
        return [Document(id=s.id, page_content=s.payload["page_content"], metadata=dict(s.payload["metadata"]))
                for s in selected]

    def _search(self, k: Any, filter: Any, kwargs: dict) -> tuple[int, dict | None]:  # noqa: A002
        """The effective ``k`` and filter of a call: its keywords over ``search_kwargs`` over the fields."""
        unknown = sorted(set(kwargs) - set(_LANGCHAIN_KEYWORDS))
        if unknown:
            raise TypeError(
                f"ERASERetriever got unexpected search keyword(s) {unknown}; supported: {list(SEARCH_KEYWORDS)}"
            )
        if k is None:
            k = self.search_kwargs.get("k")
        k = check_k(self.k if k is None else k)
        where = self.search_kwargs.get("filter") if filter is _UNSET else filter
        return k, check_search_filter(self._engine, where)

    def _retrieve(self, vector, k: int, where: dict | None) -> list[Document]:
        selected = select_available(self._engine, vector, k, filter=where, fetch_k=self.fetch_k, lambda_mult=self.lambda_mult)
        self._notify_selected(selected)
        return self._to_documents(selected)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun, k: int | None = None,
                                filter: dict | None = _UNSET, **kwargs: Any) -> list[Document]:  # noqa: A002
        k, where = self._search(k, filter, kwargs)
        vector = self.embeddings.embed_query(query) if self._engine.strategy != "erase" else None
        return self._retrieve(vector, k, where)

    async def _aget_relevant_documents(self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun,
                                       k: int | None = None, filter: dict | None = _UNSET,  # noqa: A002
                                       **kwargs: Any) -> list[Document]:
        k, where = self._search(k, filter, kwargs)
        vector = await self.embeddings.aembed_query(query) if self._engine.strategy != "erase" else None
        return await run_in_executor(None, self._retrieve, vector, k, where)

    # ------------------------------------------------------------------ inspection
    @property
    def fingerprint(self) -> str:
        """Hash of the fixed ``erase`` set (changes exactly when it changes)."""
        if self._engine.strategy != "erase":
            raise ERASEError(f"strategy {self._engine.strategy!r} selects per query: there is no fixed set to fingerprint")
        return selection_fingerprint(select_available(self._engine, None, self.k))

