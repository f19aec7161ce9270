"""``ERASERetriever``: a LangChain retriever over an exactly unlearnable ERASE index."""

from __future__ import annotations

import os
from typing import Any, Literal, Sequence

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables.config import run_in_executor

from erase_core import ERASEError, ExampleIndex, ForgetReceipt, SelectedExample

from ._engine_model import EngineModel
from ._common import (
    as_id_list,
    check_new_ids,
    select_available,
    selection_fingerprint,
    to_float_rows,
)

__all__ = ["ERASERetriever"]


class ERASERetriever(BaseRetriever, EngineModel):
    """Documents in, documents out, with exact ``forget``.

    ``strategy="erase"`` (default) returns the same ``k`` documents for every query (one per
    quantized k-means cluster; the query is not embedded); ``strategy="similarity"`` returns
    the exact top ``k`` by cosine similarity of ``page_content`` embeddings.

    ``ERASERetriever(embeddings=emb, documents=docs, k=3)`` builds the index (ids from
    ``ids=``, else each ``Document.id``, else generated; returned documents carry them in
    ``.id``). ``invoke(query, k=2)`` overrides ``k`` per call (for ``erase`` at most the
    index's ``k``). Document metadata must be JSON-serialisable.
    """

    def __init__(self, *, documents: Sequence[Document] | None = None, ids: Sequence[str] | None = None, **data: Any):
        super().__init__(**data)
        if documents:
            self.add_documents(documents, ids=ids)
        elif ids:
            raise ERASEError("ids= was given without documents=")

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_documents(cls, documents: Sequence[Document], embeddings: Embeddings, *, ids: Sequence[str] | None = None,
                       **kwargs: Any) -> "ERASERetriever":
        return cls(embeddings=embeddings, documents=documents, ids=ids, **kwargs)

    @classmethod
    def from_texts(cls, texts: Sequence[str], embeddings: Embeddings, metadatas: Sequence[dict] | None = None, *,
                   ids: Sequence[str] | None = None, **kwargs: Any) -> "ERASERetriever":
        metadatas = list(metadatas) if metadatas is not None else [{} for _ in texts]
        if len(metadatas) != len(texts):
            raise ERASEError(f"got {len(metadatas)} metadatas for {len(texts)} texts")
        docs = [Document(page_content=t, metadata=m) for t, m in zip(texts, metadatas)]
        return cls(embeddings=embeddings, documents=docs, ids=ids, **kwargs)

    @classmethod
    def open(cls, persist_path: str | os.PathLike, embeddings: Embeddings, *, k: int | None = None) -> "ERASERetriever":
        """Reopen a retriever saved with ``persist_path`` (nothing is re-embedded)."""
        index = ExampleIndex.open(persist_path)
        try:
            return cls(embeddings=embeddings, index=index, persist_path=os.fspath(persist_path),
                       **({} if k is None else {"k": k}))
        except Exception:
            index.close()
            raise

    # ------------------------------------------------------------------ mutations
    @staticmethod
    def _payloads(documents: Sequence[Document], ids: Sequence[str] | None) -> tuple[list[dict], list[str] | None]:
        documents = list(documents)
        ids = check_new_ids(ids, len(documents), "documents")
        if ids is None and any(d.id for d in documents):
            if not all(d.id for d in documents):
                raise ERASEError("some documents have an id and some do not: give all ids (or ids=)")
            ids = [str(d.id) for d in documents]
        return [{"page_content": d.page_content, "metadata": dict(d.metadata)} for d in documents], ids

    def add_documents(self, documents: Sequence[Document], ids: Sequence[str] | None = None) -> list[str]:
        """Embed and add documents; returns their ids. Atomic."""
        payloads, ids = self._payloads(documents, ids)
        if not payloads:
            return []
        vectors = self.embeddings.embed_documents([p["page_content"] for p in payloads])
        return self.index.add(to_float_rows(vectors, len(payloads)), payloads, ids=ids)

    async def aadd_documents(self, documents: Sequence[Document], ids: Sequence[str] | None = None) -> list[str]:
        payloads, ids = self._payloads(documents, ids)
        if not payloads:
            return []
        vectors = await self.embeddings.aembed_documents([p["page_content"] for p in payloads])
        return await run_in_executor(None, self.index.add, to_float_rows(vectors, len(payloads)), payloads, ids)

    def forget(self, ids: str | Sequence[str], *, missing: Literal["raise", "ignore"] = "raise") -> ForgetReceipt:
        """Exactly unlearn documents (and erase them from ``persist_path``)."""
        return self.index.forget(as_id_list(ids), missing=missing)

    async def aforget(self, ids: str | Sequence[str], *, missing: Literal["raise", "ignore"] = "raise") -> ForgetReceipt:
        return await run_in_executor(None, self.forget, as_id_list(ids), missing=missing)

    # ------------------------------------------------------------------ retrieval
    @staticmethod
    def _to_documents(selected: list[SelectedExample]) -> list[Document]:
        return [Document(id=s.id, page_content=s.payload["page_content"], metadata=dict(s.payload["metadata"]))
                for s in selected]

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun, k: int | None = None,
                                **kwargs: Any) -> list[Document]:
        k = self.k if k is None else k
        vector = self.embeddings.embed_query(query) if self.index.strategy == "similarity" else None
        return self._to_documents(select_available(self.index, vector, k))

    async def _aget_relevant_documents(self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun,
                                       k: int | None = None, **kwargs: Any) -> list[Document]:
        k = self.k if k is None else k
        vector = await self.embeddings.aembed_query(query) if self.index.strategy == "similarity" else None
        return self._to_documents(await run_in_executor(None, select_available, self.index, vector, k))

    # ------------------------------------------------------------------ inspection
    @property
    def ids(self) -> list[str]:
        return self.index.ids

    @property
    def fingerprint(self) -> str:
        """Hash of the fixed ``erase`` set (changes exactly when it changes)."""
        if self.index.strategy != "erase":
            raise ERASEError("strategy 'similarity' selects per query: there is no fixed set to fingerprint")
        return selection_fingerprint(select_available(self.index, None, self.k))

    def digest(self) -> str:
        return self.index.digest()

    def verify(self) -> bool:
        return self.index.verify()

    def close(self) -> None:
        self.index.close()
