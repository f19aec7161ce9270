"""``ERASEVectorStore``: a LangChain ``VectorStore`` whose ``delete`` is an exact forget.

Every document is one example of an :class:`erase_core.ExampleIndex`: its id, the payload
``{"page_content", "metadata"}`` (the same layout as :class:`~erase_langchain.ERASERetriever`,
so either can open the other's store file) and its embedding. Reads rank by the query under
the engine's ``search`` (exact cosine top-k or maximal marginal relevance, ties by id), so
after ``delete`` every search equals the same search on a store built without the deleted
documents, and with ``persist_path`` they are erased from disk (their rows' keys shredded).

It is what LangChain code that takes a vector store expects: ``add_texts``/``add_documents``
(an existing id is replaced: upsert), ``delete``, ``get_by_ids``, ``similarity_search*``,
``max_marginal_relevance_search*``, ``filter=``, async twins, ``from_texts``,
``as_retriever()``, and the stock ``SemanticSimilarityExampleSelector`` /
``MaxMarginalRelevanceExampleSelector`` over it.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterable, Literal, Sequence

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.runnables.config import run_in_executor
from langchain_core.vectorstores import VectorStore

from erase_core.storage.locate import store_exists
from erase_core import ERASEError, ExampleIndex, ForgetReceipt
from erase_core import forget as forget_in
from erase_core.filters import check_filter
from erase_core.params import check_index_params, check_k, reject_unknown_kwargs

from . import _handouts
from ._common import as_id_list, as_subject, check_embedding_identity, document_rows, to_float_rows

__all__ = ["ERASEVectorStore"]

#: A metadata filter: the engine's dict (``{"lang": "en"}``, ``{"stars": {"$gte": 4}}``, ``{"$or": [...]}``, see :mod:`erase_core.filters`;
#: answered from an index of metadata values) or, as with ``InMemoryVectorStore``, a predicate
#: on the ``Document`` (evaluated on every stored document).
Filter = dict | Callable[[Document], bool] | None

#: The constructor's keywords (``from_texts``/``from_documents`` pass theirs on to it).
CONSTRUCTOR_KEYWORDS = ("persist_path", "index", "subject_key", "k", "strategy", "epsilon", "n_iter", "seed",
                        "projection_dim")
#: Keywords of ``add_texts``/``add_documents`` besides ``ids``/``subjects``: LangChain's
#: ``index()`` passes ``batch_size`` (accepted; everything is embedded in one call).
_ADD_PASSTHROUGH = ("batch_size",)


class ERASEVectorStore(VectorStore):
    """A vector store with exact, persisted deletion.

    ``ERASEVectorStore(embedding)`` keeps the documents in memory; ``persist_path=`` writes
    every change through to an encrypted SQLite store (reopened when the file exists, so any
    number of processes may share it and each sees the others' deletes before its next read).
    ``index=`` wraps an existing :class:`~erase_core.ExampleIndex`. The clustering parameters
    (``k``, ``strategy``, ``epsilon``, ``n_iter``, ``seed``, ``projection_dim``) matter only to
    ``ExampleIndex.select`` (the ERASE few-shot set); searches rank by the query whatever the
    strategy. ``subject_key`` names the metadata key holding each document's owner, for
    ``forget(subject=...)``.
    """

    def __init__(self, embedding: Embeddings, *, persist_path: str | os.PathLike | None = None,
                 index: ExampleIndex | None = None, subject_key: str | None = None, k: int = 4,
                 strategy: Literal["erase", "similarity", "mmr"] = "similarity", epsilon: float | None = None,
                 n_iter: int = 10, seed: int = 0, projection_dim: int | None = None, **unknown: Any):
        reject_unknown_kwargs("ERASEVectorStore", unknown, ("embedding",) + CONSTRUCTOR_KEYWORDS)
        if not isinstance(embedding, Embeddings):
            raise ERASEError(f"embedding must be a LangChain Embeddings; got {type(embedding).__name__}")
        params = check_index_params(k, strategy, epsilon, n_iter, seed, projection_dim)
        self.embedding = embedding
        self.subject_key = subject_key
        if index is not None:
            if persist_path is not None:
                raise ERASEError("give index= or persist_path=, not both")
            self.index = index
        elif persist_path is not None and store_exists(persist_path):
            self.index = ExampleIndex.open(persist_path)
        else:
            self.index = ExampleIndex(params.pop("k"), path=persist_path, **params)
        check_embedding_identity(self.index, embedding)

    @property
    def embeddings(self) -> Embeddings:
        return self.embedding

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_texts(cls, texts: list[str], embedding: Embeddings, metadatas: list[dict] | None = None, *,
                   ids: list[str] | None = None, subjects: Sequence[str | int | None] | None = None,
                   **kwargs: Any) -> "ERASEVectorStore":
        """A store holding ``texts`` (keywords other than ``ids``/``subjects`` go to the
        constructor; an unknown one raises ``TypeError``). ``from_documents`` comes here too."""
        cls._check_constructor_kwargs("from_texts", kwargs)
        store = cls(embedding, **kwargs)
        store.add_texts(texts, metadatas, ids=ids, subjects=subjects)
        return store

    @classmethod
    def _check_constructor_kwargs(cls, where: str, kwargs: dict) -> None:
        unknown = {key: v for key, v in kwargs.items() if key not in CONSTRUCTOR_KEYWORDS}
        reject_unknown_kwargs(f"ERASEVectorStore.{where}", unknown,
                              ("texts", "embedding", "metadatas", "ids", "subjects") + CONSTRUCTOR_KEYWORDS)

    @classmethod
    async def afrom_texts(cls, texts: list[str], embedding: Embeddings, metadatas: list[dict] | None = None, *,
                          ids: list[str] | None = None, subjects: Sequence[str | int | None] | None = None,
                          **kwargs: Any) -> "ERASEVectorStore":
        cls._check_constructor_kwargs("afrom_texts", kwargs)
        store = cls(embedding, **kwargs)
        await store.aadd_texts(texts, metadatas, ids=ids, subjects=subjects)
        return store

    @classmethod
    def open(cls, persist_path: str | os.PathLike, embedding: Embeddings, *, subject_key: str | None = None) -> "ERASEVectorStore":
        """Reopen a persisted store (nothing is re-embedded; the file must exist)."""
        return cls(embedding, index=ExampleIndex.open(persist_path), subject_key=subject_key)

    @classmethod
    def load(cls, path: str | os.PathLike, embedding: Embeddings, *,
             subject_key: str | None = None) -> "ERASEVectorStore":
        """``InMemoryVectorStore.load``'s counterpart: open the store file at ``path``."""
        return cls.open(path, embedding, subject_key=subject_key)

    def dump(self, path: str | os.PathLike) -> None:
        """Write an independent copy to a new store file (``InMemoryVectorStore.dump``'s
        counterpart). Later deletes here do not reach the copy: prefer ``persist_path=``."""
        self.index.save(path)

    # ------------------------------------------------------------------ adding
    def _prepare(self, documents: Sequence[Document], ids: Sequence[str] | None, subjects: Sequence[Any] | None,
                 kwargs: dict, where: str) -> tuple[list[str], list[dict], list, list[dict]]:
        """Ids, payloads, subjects and metadata of documents, validated before anything is
        embedded (the rule shared with ``ERASERetriever``: ``_common.document_rows``)."""
        reject_unknown_kwargs(f"ERASEVectorStore.{where}", {key: v for key, v in kwargs.items()
                                                           if key not in _ADD_PASSTHROUGH},
                              ("ids", "subjects") + _ADD_PASSTHROUGH)
        return document_rows(documents, ids, subjects, self.subject_key)

    def _upsert(self, vectors, ids, payloads, subjects, metadata) -> list[str]:
        self.index.upsert(to_float_rows(vectors, len(ids)), payloads, ids, subjects=subjects,
                          metadata=[dict(m) for m in metadata])
        return ids

    def add_documents(self, documents: list[Document], ids: list[str] | None = None, *,
                      subjects: Sequence[str | int | None] | None = None, **kwargs: Any) -> list[str]:
        """Embed and add documents; returns their ids (``ids=``, else each ``Document.id``, else
        a new UUID; ids follow the one rule of ``docs/forgetting.md``: non-empty strings, never
        converted). A document whose id is already stored replaces it exactly (as if the old
        one had been deleted first), in one transaction. Atomic: on any error nothing changes.
        ``batch_size`` (passed by LangChain's ``index()``) is accepted; any other unknown
        keyword raises ``TypeError``.
        Metadata must be JSON values (anything else raises); ``subjects=`` (or ``subject_key``)
        records whom each document belongs to."""
        ids, payloads, subjects, metadata = self._prepare(documents, ids, subjects, kwargs, "add_documents")
        if not ids:
            return []
        vectors = self.embedding.embed_documents([p["page_content"] for p in payloads])
        return self._upsert(vectors, ids, payloads, subjects, metadata)

    async def aadd_documents(self, documents: list[Document], ids: list[str] | None = None, *,
                             subjects: Sequence[str | int | None] | None = None, **kwargs: Any) -> list[str]:
        ids, payloads, subjects, metadata = self._prepare(documents, ids, subjects, kwargs, "aadd_documents")
        if not ids:
            return []
        vectors = await self.embedding.aembed_documents([p["page_content"] for p in payloads])
        return await run_in_executor(None, self._upsert, vectors, ids, payloads, subjects, metadata)

    def add_texts(self, texts: Iterable[str], metadatas: list[dict] | None = None, *, ids: list[str] | None = None,
                  **kwargs: Any) -> list[str]:
        texts = list(texts)
        metadatas = [{} for _ in texts] if metadatas is None else list(metadatas)
        if len(metadatas) != len(texts):
            raise ERASEError(f"got {len(metadatas)} metadatas for {len(texts)} texts")
        docs = [Document(page_content=t, metadata=m or {}) for t, m in zip(texts, metadatas)]
        return self.add_documents(docs, ids=ids, **kwargs)

    async def aadd_texts(self, texts: Iterable[str], metadatas: list[dict] | None = None, *,
                         ids: list[str] | None = None, **kwargs: Any) -> list[str]:
        texts = list(texts)
        metadatas = [{} for _ in texts] if metadatas is None else list(metadatas)
        if len(metadatas) != len(texts):
            raise ERASEError(f"got {len(metadatas)} metadatas for {len(texts)} texts")
        docs = [Document(page_content=t, metadata=m or {}) for t, m in zip(texts, metadatas)]
        return await self.aadd_documents(docs, ids=ids, **kwargs)

    # ------------------------------------------------------------------ deleting
    def delete(self, ids: Sequence[str] | None = None, **kwargs: Any) -> bool:
        """Exactly forget the documents with these ids (unknown ids are skipped, as LangChain's
        stores do); ``None`` forgets every document. One transaction; returns True."""
        reject_unknown_kwargs("ERASEVectorStore.delete", kwargs, ("ids",))
        forget_in(self.index, ids=self.index.ids if ids is None else as_id_list(ids), missing="ignore")
        return True

    async def adelete(self, ids: Sequence[str] | None = None, **kwargs: Any) -> bool:
        return await run_in_executor(None, self.delete, ids, **kwargs)

    def forget(self, ids: str | Sequence[str] | None = None, *, subject: str | int | None = None,
               missing: Literal["raise", "ignore"] = "raise") -> ForgetReceipt:
        """Like ``delete`` but strict and with a receipt: ``forget(ids)`` (unknown ids raise
        unless ``missing="ignore"``) or ``forget(subject=...)`` (every document of a subject)."""
        return forget_in(self.index, ids=None if ids is None else as_id_list(ids),
                         subject=None if subject is None else as_subject(subject), missing=missing)

    async def aforget(self, ids: str | Sequence[str] | None = None, *, subject: str | int | None = None,
                      missing: Literal["raise", "ignore"] = "raise") -> ForgetReceipt:
        ids = None if ids is None else as_id_list(ids)
        return await run_in_executor(None, self.forget, ids, subject=subject, missing=missing)

    def forget_where(self, filter: dict) -> ForgetReceipt:  # noqa: A002
        """Exactly forget every document whose metadata matches ``filter`` (one transaction)."""
        return forget_in(self.index, where=filter)

    # ------------------------------------------------------------------ reading
    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The stored documents with these ids, in the order given; unknown ids are skipped (an
        id that is not a non-empty string raises)."""
        ids = as_id_list(ids)
        with self.index.lock:
            found = [(i, self.index.get(i)) for i in ids if i in self.index]
        _handouts.handed_out(self.index, found)
        return [self._document(i, payload) for i, payload in found]

    async def aget_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        return await run_in_executor(None, self.get_by_ids, ids)

    @staticmethod
    def _document(example_id: str, payload: dict) -> Document:
        return Document(id=example_id, page_content=payload["page_content"], metadata=payload["metadata"])

    def _search(self, embedding: Sequence[float], k: int, filter: Filter, **options: Any) -> list[tuple[Document, float]]:  # noqa: A002
        k = check_k(k)
        where, among = None, None
        if callable(filter):
            with self.index.lock:
                among = [i for i in self.index.ids if filter(self._document(i, self.index.get(i)))]
                found = self.index.search(np.asarray(embedding, dtype=np.float64), k, among=among, **options)
        else:
            if filter is not None:
                check_filter(filter)
                where = filter
            found = self.index.search(np.asarray(embedding, dtype=np.float64), k, filter=where, **options)
        _handouts.handed_out(self.index, [(s.id, s.payload) for s in found])
        return [(self._document(s.id, s.payload), s.score) for s in found]

    @staticmethod
    def _no_extra(kwargs: dict, where: str = "similarity_search", mmr: bool = False) -> None:
        reject_unknown_kwargs(f"ERASEVectorStore.{where}", kwargs,
                              ("k", "filter") + (("fetch_k", "lambda_mult") if mmr else ()))

    def similarity_search_with_score_by_vector(self, embedding: list[float], k: int = 4, filter: Filter = None,  # noqa: A002
                                               **kwargs: Any) -> list[tuple[Document, float]]:
        """The ``k`` documents most similar to ``embedding`` with their cosine similarity
        (fewer when fewer are stored or match ``filter``); ties by id."""
        self._no_extra(kwargs)
        return self._search(embedding, k, filter)

    def similarity_search_by_vector(self, embedding: list[float], k: int = 4, filter: Filter = None,  # noqa: A002
                                    **kwargs: Any) -> list[Document]:
        return [d for d, _ in self.similarity_search_with_score_by_vector(embedding, k, filter, **kwargs)]

    def similarity_search_with_score(self, query: str, k: int = 4, filter: Filter = None,  # noqa: A002
                                     **kwargs: Any) -> list[tuple[Document, float]]:
        self._no_extra(kwargs)
        return self._search(self.embedding.embed_query(query), k, filter)

    async def asimilarity_search_with_score(self, query: str, k: int = 4, filter: Filter = None,  # noqa: A002
                                            **kwargs: Any) -> list[tuple[Document, float]]:
        self._no_extra(kwargs)
        vector = await self.embedding.aembed_query(query)
        return await run_in_executor(None, self._search, vector, k, filter)

    def similarity_search(self, query: str, k: int = 4, filter: Filter = None, **kwargs: Any) -> list[Document]:  # noqa: A002
        return [d for d, _ in self.similarity_search_with_score(query, k, filter, **kwargs)]

    async def asimilarity_search(self, query: str, k: int = 4, filter: Filter = None,  # noqa: A002
                                 **kwargs: Any) -> list[Document]:
        return [d for d, _ in await self.asimilarity_search_with_score(query, k, filter, **kwargs)]

    def max_marginal_relevance_search_by_vector(self, embedding: list[float], k: int = 4, fetch_k: int = 20,
                                                lambda_mult: float = 0.5, filter: Filter = None,  # noqa: A002
                                                **kwargs: Any) -> list[Document]:
        """Maximal marginal relevance among the ``fetch_k`` most similar documents: exact and
        deterministic (ties by id), so equal to the same search on a fresh build after a delete."""
        self._no_extra(kwargs, "max_marginal_relevance_search", mmr=True)
        return [d for d, _ in self._search(embedding, k, filter, mmr=True, fetch_k=fetch_k, lambda_mult=lambda_mult)]

    def max_marginal_relevance_search(self, query: str, k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5,
                                      filter: Filter = None, **kwargs: Any) -> list[Document]:  # noqa: A002
        return self.max_marginal_relevance_search_by_vector(self.embedding.embed_query(query), k, fetch_k,
                                                            lambda_mult, filter, **kwargs)

    async def amax_marginal_relevance_search(self, query: str, k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5,
                                             filter: Filter = None, **kwargs: Any) -> list[Document]:  # noqa: A002
        vector = await self.embedding.aembed_query(query)
        return await run_in_executor(None, self.max_marginal_relevance_search_by_vector, vector, k, fetch_k,
                                     lambda_mult, filter, **kwargs)

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        """Scores are cosine similarities; relevance is 1 - cosine distance, as for other cosine
        stores, clipped to [0, 1] (LangChain's range: an opposed document is simply irrelevant)."""
        return lambda similarity: min(1.0, max(0.0, self._cosine_relevance_score_fn(1.0 - similarity)))

    # ------------------------------------------------------------------ inspection and lifetime
    @property
    def ids(self) -> list[str]:
        return self.index.ids

    def __len__(self) -> int:
        return len(self.index)

    def digest(self) -> str:
        return self.index.digest()

    def verify(self) -> bool:
        """Rebuild from scratch (from the store's rows when persisted) and compare digests."""
        return self.index.verify()

    def close(self) -> None:
        self.index.close()

    def __enter__(self) -> "ERASEVectorStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        where = "in memory" if self.index.path is None else str(self.index.path)
        return f"ERASEVectorStore({len(self.index)} documents, {where})"
