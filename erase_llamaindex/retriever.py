"""ERASERetriever: a LlamaIndex retriever over an exactly unlearnable example pool.

The pool is an :class:`erase_core.ExampleIndex`; each node is one example whose id is the node
id, whose payload is the node (text, metadata, templates; see :mod:`erase_llamaindex._nodes`)
and whose vector is the node's embedding. ``forget`` removes a node from the index, and, when
the retriever is bound to a persist directory, from its files (its row's key is shredded).
The retriever keeps no other copy: nodes are rebuilt from the index on every retrieval.

Each example also records the node's ``ref_doc_id`` as its *subject* and its metadata as
JSON (see :mod:`erase_llamaindex._filters`): ``delete_ref_doc`` is the index's
``forget_subject`` and ``MetadataFilters`` become the index's selection filters.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import json
import logging
import os
import threading
import warnings
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.callbacks.base import CallbackManager
from llama_index.core.schema import (
    BaseNode, Document, IndexNode, NodeWithScore, QueryBundle, QueryType, TransformComponent,
)
from llama_index.core.vector_stores.types import MetadataFilters

from erase_core import ERASEError, ExampleIndex, ForgetReceipt, UnknownIdError, check_id, select_available
from erase_core import forget as forget_in
from erase_core.params import check_k, check_mmr, reject_unknown_kwargs
from erase_core.requests import check_select_filter

from ._filters import Where, combine, flat_metadata, node_subject, normalise, to_core
from ._nodes import embed_text, node_to_payload, payload_to_node
from ._store_files import PARTIAL as _PARTIAL
from ._store_files import copy_to_store
from ._store_files import unlink_store_files as _unlink_store_files
from ._store_files import write_json_atomically as _write_json_atomically

logger = logging.getLogger(__name__)

__all__ = ["ERASERetriever", "PERSIST_STORE_FILENAME", "PERSIST_SETTINGS_FILENAME"]

#: The ExampleIndex's SQLite file inside a persist directory.
PERSIST_STORE_FILENAME = "erase_index.sqlite"
#: The retriever's settings (JSON) inside a persist directory.
PERSIST_SETTINGS_FILENAME = "erase_retriever.json"
_SETTINGS_FORMAT = "erase-llamaindex-retriever"
_SETTINGS_VERSION = 1
#: Per-call filters of retrieve()/aretrieve(): (id of the retriever, normalised filter).
#: The constructor's keywords (an unknown one raises TypeError listing these).
_CONSTRUCTOR_KEYWORDS = ("index", "embed_model", "similarity_top_k", "query_scores", "callback_manager", "objects",
                         "object_map", "verbose", "filters", "fetch_k", "lambda_mult")
_CALL_FILTERS: contextvars.ContextVar = contextvars.ContextVar("erase_llamaindex_call_filters", default=None)


def _resolve_embed_model(embed_model: Any) -> BaseEmbedding:
    """``None``: ``Settings.embed_model`` when one was set explicitly, else :class:`HFEmbedding`
    (all-MiniLM-L6-v2, offline). An :class:`erase_core.models.embeddings.HFEmbedder` is wrapped."""
    if isinstance(embed_model, BaseEmbedding):
        return embed_model
    from .embeddings import HFEmbedding

    if embed_model is None:
        from llama_index.core.settings import Settings

        explicit = getattr(Settings, "_embed_model", None)  # set only by `Settings.embed_model = ...`
        return explicit if isinstance(explicit, BaseEmbedding) else HFEmbedding()
    from erase_core.models.embeddings import HFEmbedder

    if isinstance(embed_model, HFEmbedder):
        return HFEmbedding(embedder=embed_model)
    raise ERASEError(
        f"embed_model must be a LlamaIndex BaseEmbedding (or an erase_core HFEmbedder); got {type(embed_model).__name__}"
    )


def _warn_about_caches(embed_model: BaseEmbedding) -> None:
    if getattr(embed_model, "embeddings_cache", None) is not None:
        warnings.warn(
            "the embedding model has an embeddings_cache: it keeps the text and embedding of every node "
            "it embeds, and ERASERetriever.forget cannot reach it. Use an embedding model without a cache "
            "when nodes must be forgettable.",
            stacklevel=3,
        )


def _node_id_of(item: Any) -> str:
    if isinstance(item, NodeWithScore):
        return item.node.node_id
    if isinstance(item, BaseNode):
        return item.node_id
    return check_id(item, "node id")


class ERASERetriever(BaseRetriever):
    """Retriever over an exactly unlearnable node pool.

    ``strategy="similarity"`` (the default of :meth:`from_defaults`) returns the exact top-k
    nodes by cosine similarity to the query; ``strategy="mmr"`` the maximal-marginal-relevance
    picks among the ``fetch_k`` most similar (similar to the query and diverse).
    ``strategy="erase"`` returns one fixed set of ``similarity_top_k`` nodes for every query
    (the node nearest each quantized k-means centroid, in cluster order): a constant few-shot
    prefix whose members change only when a forget or insert moves a centroid. Choose it for
    few-shot prompts, where the query should not change the examples.

    Build one with :meth:`from_defaults` or :meth:`from_persist_dir`. Mutate it through
    :meth:`insert_nodes` / :meth:`forget` (not through ``.index`` directly) so that selection
    sees each change atomically.

    Parameters
    ----------
    index : the :class:`~erase_core.ExampleIndex` holding the nodes (its ``k`` is the number of
        clusters of the ``erase`` strategy).
    embed_model : any LlamaIndex ``BaseEmbedding``; must be the one the nodes were embedded with.
    similarity_top_k : nodes per retrieval (default ``index.k``; at most ``index.k`` for ``erase``).
    query_scores : ``erase`` only. True (default): embed the query and score each node by cosine
        similarity to it (comparable with other retrievers' scores). False: do not embed the
        query; score by similarity to the node's cluster centroid.
    filters : ``similarity`` and ``mmr`` only. LlamaIndex ``MetadataFilters`` (every operator
        and condition, as ``SimpleVectorStore`` answers them), or a core filter dict: every retrieval
        ranks only the nodes whose metadata match, like ``VectorIndexRetriever(filters=...)``.
        ``retrieve(query, filters=...)`` adds a per-call filter (both must hold).
    fetch_k, lambda_mult : ``mmr`` only: candidates considered, and the weight of similarity
        against diversity (1: pure similarity, 0: pure diversity; LlamaIndex's ``mmr_threshold``).
    """

    def __init__(
        self,
        index: ExampleIndex,
        embed_model: BaseEmbedding | None = None,
        *,
        similarity_top_k: int | None = None,
        query_scores: bool = True,
        callback_manager: CallbackManager | None = None,
        objects: list[IndexNode] | None = None,
        object_map: dict | None = None,
        verbose: bool = False,
        filters: MetadataFilters | dict | None = None,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        _persist_dir: str | os.PathLike | None = None,
        **unknown: Any,
    ) -> None:
        reject_unknown_kwargs("ERASERetriever", unknown, _CONSTRUCTOR_KEYWORDS)
        if not isinstance(index, ExampleIndex):
            raise ERASEError(f"index must be an erase_core.ExampleIndex, got {type(index).__name__}")
        self._index = index
        self._embed_model = _resolve_embed_model(embed_model)
        _warn_about_caches(self._embed_model)
        self._lock = threading.RLock()
        self._similarity_top_k = index.k
        self.similarity_top_k = index.k if similarity_top_k is None else similarity_top_k
        self.query_scores = bool(query_scores)
        self.fetch_k, self.lambda_mult = check_mmr(fetch_k, lambda_mult)
        self._persist_dir = None if _persist_dir is None else Path(_persist_dir).resolve()
        self._filters: MetadataFilters | dict | None = None
        self._where: Where | None = None
        self.filters = filters
        super().__init__(callback_manager=callback_manager, object_map=object_map, objects=objects, verbose=verbose)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_defaults(
        cls,
        nodes: Sequence[BaseNode] | None = None,
        documents: Sequence[Document] | None = None,
        embed_model: BaseEmbedding | None = None,
        similarity_top_k: int = 4,
        strategy: str = "similarity",
        *,
        epsilon: float | None = None,
        n_iter: int = 10,
        seed: int = 0,
        projection_dim: int | None = None,
        transformations: list[TransformComponent] | None = None,
        query_scores: bool = True,
        persist_dir: str | os.PathLike | None = None,
        callback_manager: CallbackManager | None = None,
        objects: list[IndexNode] | None = None,
        object_map: dict | None = None,
        show_progress: bool = False,
        verbose: bool = False,
        filters: MetadataFilters | dict | None = None,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        **unknown: Any,
    ) -> "ERASERetriever":
        """Embed ``nodes`` (and the nodes ``transformations`` make of ``documents``) into a new pool.

        ``similarity_top_k`` is also the ``erase`` strategy's number of clusters. Both ``nodes``
        and ``documents`` may be omitted: the pool starts empty and retrieval returns ``[]``
        until nodes are inserted. ``transformations`` default to ``Settings.transformations``
        (a SentenceSplitter), as in ``VectorStoreIndex.from_documents``. Nodes that already
        carry an ``embedding`` are not re-embedded. With ``persist_dir`` the retriever is
        persisted there at once and stays bound to it (see :meth:`persist`). ``filters``,
        ``fetch_k``, ``lambda_mult``: see the class.

        ``strategy`` defaults to ``"similarity"`` (a retriever's query should matter); pass
        ``strategy="erase"`` for a fixed few-shot set. An unknown keyword raises ``TypeError``.
        """
        reject_unknown_kwargs("ERASERetriever.from_defaults", unknown,
                              [name for name in inspect.signature(cls.from_defaults).parameters if name != "unknown"])
        index = ExampleIndex(
            check_k(similarity_top_k, "similarity_top_k"), strategy=strategy, epsilon=epsilon, n_iter=n_iter, seed=seed,
            projection_dim=projection_dim,
        )
        retriever = cls(
            index, embed_model, similarity_top_k=similarity_top_k, query_scores=query_scores,
            callback_manager=callback_manager, objects=objects, object_map=object_map, verbose=verbose,
            filters=filters, fetch_k=fetch_k, lambda_mult=lambda_mult,
        )
        all_nodes = list(nodes or [])
        if documents:
            all_nodes.extend(retriever._split(documents, transformations, show_progress))
        if all_nodes:
            retriever.insert_nodes(all_nodes, show_progress=show_progress)
        if persist_dir is not None:
            retriever.persist(persist_dir)
        return retriever

    @classmethod
    def from_persist_dir(
        cls,
        persist_dir: str | os.PathLike,
        embed_model: BaseEmbedding | None = None,
        *,
        similarity_top_k: int | None = None,
        callback_manager: CallbackManager | None = None,
        objects: list[IndexNode] | None = None,
        object_map: dict | None = None,
        verbose: bool | None = None,
        filters: MetadataFilters | dict | None = None,
        **unknown: Any,
    ) -> "ERASERetriever":
        """Open a persisted retriever. It is *bound* to ``persist_dir``: inserts and forgets are
        written there (a forget erases the node from the directory's files at once).

        The embedding model is not persisted: pass the one the nodes were embedded with (a
        different class or model name than the recorded one gives a warning). Nor are
        ``filters`` (filter values may be personal data; the settings file holds none): pass them
        again.
        """
        reject_unknown_kwargs("ERASERetriever.from_persist_dir", unknown,
                              [name for name in inspect.signature(cls.from_persist_dir).parameters if name != "unknown"])
        d = Path(persist_dir)
        settings_path, store_path = d / PERSIST_SETTINGS_FILENAME, d / PERSIST_STORE_FILENAME
        if not settings_path.is_file() or not store_path.is_file():
            raise ERASEError(
                f"{d} is not an ERASE retriever directory (needs {PERSIST_SETTINGS_FILENAME} and {PERSIST_STORE_FILENAME})"
            )
        try:
            settings = json.loads(settings_path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ERASEError(f"{settings_path} is not valid JSON: {exc}") from None
        if not isinstance(settings, dict) or settings.get("format") != _SETTINGS_FORMAT:
            raise ERASEError(f"{settings_path} is not an ERASE retriever settings file")
        if settings.get("version") != _SETTINGS_VERSION:
            raise ERASEError(f"{settings_path} has version {settings.get('version')!r}; this code reads {_SETTINGS_VERSION}")
        _remove_partials(d)
        index = ExampleIndex.open(store_path)
        try:
            retriever = cls(
                index, embed_model,
                similarity_top_k=settings["similarity_top_k"] if similarity_top_k is None else similarity_top_k,
                query_scores=settings.get("query_scores", True), callback_manager=callback_manager,
                objects=objects, object_map=object_map,
                verbose=bool(settings.get("verbose", False)) if verbose is None else verbose,
                filters=filters, fetch_k=settings.get("fetch_k", 20), lambda_mult=settings.get("lambda_mult", 0.5),
                _persist_dir=d,
            )
        except BaseException:
            index.close()
            raise
        recorded = settings.get("embed_model") or {}
        current = retriever._embed_model_info()
        for key in ("class_name", "model_name"):
            if recorded.get(key) and recorded[key] != current[key]:
                warnings.warn(
                    f"{d} was built with embedding model {recorded.get('class_name')}/{recorded.get('model_name')}; "
                    f"it is opened with {current['class_name']}/{current['model_name']}: similarity scores will be "
                    "meaningless unless they embed identically",
                    stacklevel=2,
                )
                break
        return retriever

    def _split(self, documents: Sequence[Document], transformations, show_progress: bool) -> list[BaseNode]:
        from llama_index.core.ingestion import run_transformations
        from llama_index.core.settings import Settings

        if transformations is None:
            transformations = Settings.transformations
        return list(run_transformations(list(documents), transformations, show_progress=show_progress))

    # ------------------------------------------------------------------ properties
    @property
    def index(self) -> ExampleIndex:
        """The underlying :class:`~erase_core.ExampleIndex` (read it; mutate through the retriever)."""
        return self._index

    @property
    def embed_model(self) -> BaseEmbedding:
        return self._embed_model

    @property
    def strategy(self) -> str:
        return self._index.strategy

    @property
    def similarity_top_k(self) -> int:
        return self._similarity_top_k

    @similarity_top_k.setter
    def similarity_top_k(self, value: int) -> None:
        value = check_k(value, "similarity_top_k")
        if self._index.strategy == "erase" and value > self._index.k:
            raise ERASEError(
                f"strategy 'erase' selects at most the index's k={self._index.k} nodes (its number of "
                f"clusters); got similarity_top_k={value}. Build a retriever with similarity_top_k={value}."
            )
        self._similarity_top_k = value

    @property
    def filters(self) -> MetadataFilters | dict | None:
        """The retriever's own filters (applied to every retrieval; ``similarity`` and ``mmr`` only)."""
        return self._filters

    @filters.setter
    def filters(self, value: MetadataFilters | dict | None) -> None:
        where = self._checked_where(value)
        with self._lock:
            self._filters, self._where = value, where

    def _checked_where(self, filters) -> Where | None:
        """Translate and validate filters; raises for what a retrieval could not honour."""
        where = normalise(filters)
        if where is not None:
            check_select_filter(self._index.strategy, to_core(where))
        return where

    @property
    def persist_dir(self) -> Path | None:
        """The directory this retriever is bound to (None while it lives in memory only)."""
        return self._persist_dir

    @property
    def node_ids(self) -> list[str]:
        """Ids of the nodes in the pool, sorted."""
        return self._index.ids

    def ref_doc_node_ids(self, ref_doc_id: str) -> list[str]:
        """Ids of the nodes whose source document is ``ref_doc_id`` (what :meth:`delete_ref_doc`
        would delete now), sorted."""
        with self._lock:
            return self._index.ids_of_subject(ref_doc_id)

    def get_node(self, node_id: str) -> BaseNode:
        """A fresh copy of a stored node (without embedding). Unknown ids raise UnknownIdError."""
        return payload_to_node(self._index.get(check_id(node_id, "node_id")))

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._index

    def fingerprint(self) -> str:
        """Changes exactly when the ``erase`` selection does (see ExampleIndex.fingerprint)."""
        return self._index.fingerprint()

    def digest(self) -> str:
        return self._index.digest()

    def verify(self) -> bool:
        """Rebuild the pool from scratch and compare digests (True: exact)."""
        return self._index.verify()

    # ------------------------------------------------------------------ retrieval
    def _query_vector(self, query_bundle: QueryBundle) -> list[float] | None:
        if self._index.strategy == "erase" and not self.query_scores:
            return None  # (before len(): that waits for a forget running in another thread)
        if len(self._index) == 0:
            return None
        if query_bundle.embedding is not None:
            return query_bundle.embedding
        strs = [s for s in query_bundle.embedding_strs if isinstance(s, str)]
        if self._index.strategy == "erase" and not any(s.strip() for s in strs):
            return None  # the erase set does not depend on the query; nothing to score against
        return self._embed_model.get_agg_embedding_from_queries(strs or [query_bundle.query_str])

    def retrieve(self, str_or_query_bundle: QueryType, *, filters: MetadataFilters | dict | None = None) -> list[NodeWithScore]:
        """Retrieve nodes for a query (a string or a ``QueryBundle``).

        ``filters`` (``similarity`` and ``mmr`` only): ``MetadataFilters`` for this call, applied together
        with the retriever's own :attr:`filters` (both must hold)."""
        if filters is None:
            return super().retrieve(str_or_query_bundle)
        token = _CALL_FILTERS.set((id(self), self._checked_where(filters)))
        try:
            return super().retrieve(str_or_query_bundle)
        finally:
            _CALL_FILTERS.reset(token)

    async def aretrieve(self, str_or_query_bundle: QueryType, *, filters: MetadataFilters | dict | None = None) -> list[NodeWithScore]:
        """:meth:`retrieve`, asynchronously (the work runs in a worker thread)."""
        if filters is None:
            return await super().aretrieve(str_or_query_bundle)
        token = _CALL_FILTERS.set((id(self), self._checked_where(filters)))
        try:
            return await super().aretrieve(str_or_query_bundle)
        finally:
            _CALL_FILTERS.reset(token)

    def _current_where(self) -> Where | None:
        call = _CALL_FILTERS.get()
        return combine(self._where, call[1] if call is not None and call[0] == id(self) else None)

    def _select(self, query_vector, where: Where | None = None) -> list[NodeWithScore]:
        """The nodes for a query, by the core's lenient select (an empty pool gives ``[]``, a pool
        smaller than the ``erase`` clusters is selected whole; see ``erase_core.select_available``).
        Not under this retriever's lock: the ``erase`` set is not held up by a forget in another
        thread (the index serialises the rest itself)."""
        chosen = select_available(self._index, query_vector, self._similarity_top_k,
                                  filter=None if where is None else to_core(where), fetch_k=self.fetch_k,
                                  lambda_mult=self.lambda_mult)
        return [NodeWithScore(node=payload_to_node(s.payload), score=float(s.score)) for s in chosen]

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        where = self._current_where()
        return self._select(self._query_vector(query_bundle), where)

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        # Embedding the query and selecting are CPU (or blocking I/O) work: run both in a worker
        # thread so that the event loop stays free. Works with every BaseEmbedding (the sync API
        # is the one every embedding implements; many "async" ones just call it).
        return await asyncio.to_thread(self._retrieve, query_bundle)

    # ------------------------------------------------------------------ mutations
    def insert_nodes(self, nodes: Sequence[BaseNode], *, show_progress: bool = False) -> list[str]:
        """Embed and add nodes (ids: their node ids, which must be new). Atomic: on any error
        nothing is added. Nodes that carry an ``embedding`` are not re-embedded.

        Each node's ``ref_doc_id`` is recorded (for :meth:`delete_ref_doc`) and so is its
        metadata as JSON (for filters and :meth:`forget_where`)."""
        nodes = list(nodes)
        if not nodes:
            return []
        payloads = [node_to_payload(n) for n in nodes]
        ids = [n.node_id for n in nodes]
        vectors: list[list[float] | None] = [n.embedding for n in nodes]
        todo = [i for i, v in enumerate(vectors) if v is None]
        if todo:
            embedded = self._embed_model.get_text_embedding_batch(
                [embed_text(nodes[i]) for i in todo], show_progress=show_progress
            )
            if len(embedded) != len(todo):
                raise ERASEError(f"the embedding model returned {len(embedded)} embeddings for {len(todo)} nodes")
            for i, v in zip(todo, embedded):
                vectors[i] = v
        complete = [v for v in vectors if v is not None]
        dims = {len(v) for v in complete}
        if len(dims) != 1:
            raise ERASEError(f"node embeddings have different lengths {sorted(dims)}")
        subjects = [node_subject(n) for n in nodes]
        metadata = [flat_metadata(n.metadata) or None for n in nodes]
        with self._lock:
            return self._index.add(
                np.asarray(complete, dtype=np.float64), payloads, ids=ids, subjects=subjects, metadata=metadata
            )

    def insert_documents(
        self, documents: Sequence[Document], *, transformations: list[TransformComponent] | None = None,
        show_progress: bool = False,
    ) -> list[str]:
        """Split documents into nodes (``transformations``, default ``Settings.transformations``) and insert them."""
        return self.insert_nodes(self._split(documents, transformations, show_progress), show_progress=show_progress)

    async def ainsert_nodes(self, nodes: Sequence[BaseNode], *, show_progress: bool = False) -> list[str]:
        return await asyncio.to_thread(self.insert_nodes, nodes, show_progress=show_progress)

    def forget(self, node_ids: str | BaseNode | Iterable[str | BaseNode | NodeWithScore], *, missing: str = "raise") -> ForgetReceipt:
        """Exactly unlearn nodes: afterwards the retriever equals one built without them.

        Their text, metadata and embedding leave the index, and, when the retriever is bound to
        a persist directory, its files (the rows are deleted and their keys shredded) before this returns;
        every other retriever open on that directory stops returning them at its next read.
        Accepts ids, nodes or NodeWithScore. Unknown ids raise and nothing is forgotten, unless
        ``missing="ignore"``. Returns the index's :class:`~erase_core.ForgetReceipt`.
        """
        if isinstance(node_ids, (str, bytes, BaseNode, NodeWithScore)) or not isinstance(node_ids, Iterable):
            node_ids = [node_ids]
        ids = [_node_id_of(x) for x in node_ids]
        with self._lock:
            return forget_in(self._index, ids=ids, missing=missing)

    async def aforget(self, node_ids, *, missing: str = "raise") -> ForgetReceipt:
        """:meth:`forget` in a worker thread (the store write is blocking I/O)."""
        return await asyncio.to_thread(self.forget, node_ids, missing=missing)

    def delete_ref_doc(self, ref_doc_id: str, delete_from_docstore: bool = False, **delete_kwargs: Any) -> ForgetReceipt:
        """Exactly unlearn every node whose source document is ``ref_doc_id``: LlamaIndex's
        ``BaseIndex.delete_ref_doc`` (every node whose ``ref_doc_id`` matches), in one
        transaction, with one receipt and one audit-log entry (``forget_subject`` of the index).

        As in LlamaIndex, an unknown ``ref_doc_id`` deletes nothing, logs a warning (without the
        id: the log would otherwise keep a copy of the request) and does not raise; the empty
        request is still recorded in the audit log. ``delete_from_docstore`` is accepted for
        compatibility and changes nothing: there is no separate docstore, the nodes always leave
        the index and its files entirely. Any other keyword raises (never silently ignored).
        Nodes without a source document are not reached: forget them by id.
        """
        reject_unknown_kwargs("ERASERetriever.delete_ref_doc", delete_kwargs, ("ref_doc_id", "delete_from_docstore"))
        if not isinstance(ref_doc_id, str) or not ref_doc_id:
            raise ERASEError(f"ref_doc_id must be a non-empty string, got {ref_doc_id!r}")
        with self._lock:
            receipt = forget_in(self._index, subject=ref_doc_id)
        if not receipt.ids:
            logger.warning("delete_ref_doc: no node has that ref_doc_id; nothing deleted")
        return receipt

    async def adelete_ref_doc(self, ref_doc_id: str, delete_from_docstore: bool = False, **delete_kwargs: Any) -> ForgetReceipt:
        """:meth:`delete_ref_doc` in a worker thread (the store write is blocking I/O)."""
        return await asyncio.to_thread(self.delete_ref_doc, ref_doc_id, delete_from_docstore, **delete_kwargs)

    def forget_where(self, filters: MetadataFilters | dict) -> ForgetReceipt:
        """Exactly unlearn every node whose metadata match ``filters`` (``MetadataFilters``, or a
        core filter dict; a bad filter raises), in one
        transaction with one receipt and one audit-log entry. Works with both strategies. An
        empty filter raises (it is not "forget everything")."""
        where = normalise(filters)
        if where is None:
            raise ERASEError("forget_where needs at least one filter condition")
        with self._lock:
            return forget_in(self._index, where=to_core(where))

    async def aforget_where(self, filters: MetadataFilters | dict) -> ForgetReceipt:
        return await asyncio.to_thread(self.forget_where, filters)

    def forgotten(self, *, node_id: str | None = None, ref_doc_id: str | None = None,
                  filters: MetadataFilters | dict | None = None) -> list[dict]:
        """The deletion audit-log entries that forgot ``node_id`` / the nodes of ``ref_doc_id``
        / the filter ``filters`` (empty: never). See ``ExampleIndex.audit``."""
        where = normalise(filters)
        return self._index.forgotten(example_id=node_id, subject=ref_doc_id, where=None if where is None else to_core(where))

    def forget_ref_doc(self, ref_doc_id: str, *, missing: str = "raise") -> ForgetReceipt:
        """Deprecated: use :meth:`delete_ref_doc` (LlamaIndex's name; an unknown ref doc id logs
        a warning instead of raising). This one raises UnknownIdError for an unknown id unless
        ``missing="ignore"``."""
        warnings.warn("ERASERetriever.forget_ref_doc is deprecated: use delete_ref_doc", DeprecationWarning, stacklevel=2)
        return self._forget_ref_doc_strict(ref_doc_id, missing)

    async def aforget_ref_doc(self, ref_doc_id: str, *, missing: str = "raise") -> ForgetReceipt:
        """Deprecated: use :meth:`adelete_ref_doc`."""
        warnings.warn("ERASERetriever.aforget_ref_doc is deprecated: use adelete_ref_doc", DeprecationWarning, stacklevel=2)
        return await asyncio.to_thread(self._forget_ref_doc_strict, ref_doc_id, missing)

    def _forget_ref_doc_strict(self, ref_doc_id: str, missing: str) -> ForgetReceipt:
        if missing not in ("raise", "ignore"):
            raise ERASEError(f"missing must be 'raise' or 'ignore', got {missing!r}")
        with self._lock:
            if missing == "raise" and not self.ref_doc_node_ids(ref_doc_id):
                raise UnknownIdError(f"no node has ref doc id {ref_doc_id!r}: nothing was forgotten")
            return self.delete_ref_doc(ref_doc_id)

    # ------------------------------------------------------------------ persistence
    def _embed_model_info(self) -> dict:
        return {
            "class_name": type(self._embed_model).class_name() if hasattr(self._embed_model, "class_name") else type(self._embed_model).__name__,
            "model_name": getattr(self._embed_model, "model_name", None),
        }

    def _settings(self) -> dict:
        return {
            "format": _SETTINGS_FORMAT, "version": _SETTINGS_VERSION, "store": PERSIST_STORE_FILENAME,
            "similarity_top_k": self._similarity_top_k, "query_scores": self.query_scores,
            "fetch_k": self.fetch_k, "lambda_mult": self.lambda_mult,
            "verbose": bool(self._verbose), "embed_model": self._embed_model_info(),
            "index": {k: v for k, v in self._index.config().items() if k != "format_version"},
        }

    def persist(self, persist_dir: str | os.PathLike) -> None:
        """Write the retriever to ``persist_dir``: ``erase_index.sqlite`` (the ExampleIndex's
        store: ids, node payloads, float32 embeddings) and ``erase_retriever.json`` (settings).
        Nothing is pickled.

        Binding: afterwards the retriever is *bound* to ``persist_dir``, i.e. it runs on that
        store, so every later insert and forget is written there (a forget erases the node from
        the files at once). A retriever holds one store, so that a forget reaches every copy
        it wrote: persisting a bound retriever again to its own directory only refreshes the
        settings file, and persisting it to another directory raises.
        """
        d = Path(persist_dir).resolve()
        with self._lock:
            if self._persist_dir is not None:
                if d != self._persist_dir:
                    raise ERASEError(
                        f"this retriever is bound to {self._persist_dir}; it cannot also be persisted to {d} "
                        "(a forget must reach every copy, and it reaches only the bound store)"
                    )
                _write_json_atomically(d / PERSIST_SETTINGS_FILENAME, self._settings())
                return
            d.mkdir(parents=True, exist_ok=True)
            store_path, settings_path = d / PERSIST_STORE_FILENAME, d / PERSIST_SETTINGS_FILENAME
            if store_path.exists() or settings_path.exists():
                raise ERASEError(
                    f"{d} already holds an ERASE retriever; open it with ERASERetriever.from_persist_dir "
                    "or persist to another directory"
                )
            own_path = self._index.path
            if own_path is not None:
                raise ERASEError(
                    f"the index already writes to its own store {own_path}; a second copy in {d} would "
                    "not be reached by forget. Open that store instead, or start from an in-memory index"
                )
            _remove_partials(d)
            old = self._index
            new = copy_to_store(old, store_path)
            try:
                _write_json_atomically(settings_path, self._settings())
            except BaseException:
                new.close()
                _unlink_store_files(store_path)
                raise
            self._index = new
            self._persist_dir = d
            old.close()

    def close(self) -> None:
        """Close the bound store (if any). The retriever is unusable afterwards if it was bound."""
        with self._lock:
            self._index.close()

    def __enter__(self) -> "ERASERetriever":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        where = f", persist_dir={str(self._persist_dir)!r}" if self._persist_dir else ""
        return (
            f"ERASERetriever(strategy={self.strategy!r}, similarity_top_k={self._similarity_top_k}, "
            f"n={len(self._index)}{where})"
        )


def _remove_partials(d: Path) -> None:
    """Drop files a crashed persist left behind (they may hold node data)."""
    _unlink_store_files(d / (PERSIST_STORE_FILENAME + _PARTIAL))
    try:
        (d / (PERSIST_SETTINGS_FILENAME + _PARTIAL)).unlink()
    except FileNotFoundError:
        pass
