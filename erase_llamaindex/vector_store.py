"""ERASEVectorStore: a LlamaIndex vector store whose deletions are exact and erased from disk.

A drop-in for ``SimpleVectorStore`` under ``VectorStoreIndex`` / ``StorageContext``, over an
:class:`erase_core.ExampleIndex`: each node is one example (id = node id, vector = its
embedding, payload = the node as :mod:`erase_llamaindex._nodes` stores it, subject = its
``ref_doc_id``, metadata = its metadata as JSON, see :mod:`erase_llamaindex._filters`).

``stores_text = True``: the store keeps the nodes themselves, so ``VectorStoreIndex`` keeps no
copy of their text in its docstore, and ``delete`` / ``delete_nodes`` / ``clear`` are the only
places a node lives. Every read equals the same read on a fresh build of the remaining nodes.

Persistence: a store created with a ``path`` (or reopened from one) *is* its persistence:
every mutation is committed there, forgotten rows are crypto-shredded. :meth:`persist` writes a
small JSON manifest naming the store file (no node data, nothing pickled), and copies an
in-memory store to a store file beside the manifest once, binding to it from then on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import threading
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence

import numpy as np
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.schema import BaseNode
from llama_index.core.storage.docstore.types import RefDocInfo
from llama_index.core.vector_stores.types import (
    DEFAULT_PERSIST_DIR,
    DEFAULT_PERSIST_FNAME,
    BasePydanticVectorStore,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)

from erase_core.storage.locate import store_exists
from erase_core import ERASEError, ExampleIndex, ForgetReceipt, UnknownIdError, check_id
from erase_core import forget as forget_in
from erase_core.params import check_index_params, check_k, reject_unknown_kwargs

from ._filters import flat_metadata, node_subject, normalise, to_core
from ._nodes import node_to_payload, payload_to_node
from ._store_files import copy_to_store, write_json_atomically

logger = logging.getLogger(__name__)

__all__ = ["ERASEVectorStore", "MANIFEST_FORMAT"]

#: ``format`` of the JSON manifest :meth:`ERASEVectorStore.persist` writes.
MANIFEST_FORMAT = "erase-llamaindex-vector-store"
_MANIFEST_VERSION = 1
#: Key of the guard entry in a manifest's ``embedding_dict`` (see :func:`_not_simple`).
_GUARD_KEY = "erase"
_NAMESPACE_SEP = "__"  # as StorageContext names namespaced vector stores
_STORE_SUFFIX = ".erase.sqlite"
_MMR_KWARGS = ("mmr_threshold", "mmr_prefetch_k", "mmr_prefetch_factor")
#: Index parameters a new store takes (see ExampleIndex).
_INDEX_PARAMS = ("k", "strategy", "epsilon", "n_iter", "seed", "projection_dim")


def _reject_kwargs(where: str, kwargs: dict, accepted: tuple[str, ...] = ()) -> None:
    """Unknown keywords raise ``TypeError`` (the core's rule), naming them and ``accepted``."""
    reject_unknown_kwargs(f"ERASEVectorStore.{where}", kwargs, accepted)


def _check_local_fs(fs: Any) -> None:
    """Only the local file system: the store is an SQLite file that must be shredded in place."""
    if fs is None:
        return
    protocol = getattr(fs, "protocol", None)
    protocols = protocol if isinstance(protocol, (tuple, list)) else (protocol,)
    if not {"file", "local"} & set(protocols):
        raise ERASEError(f"ERASEVectorStore persists to the local file system only; got fs with protocol {protocol!r}")


def _id_list(node_ids: Any, name: str = "node_ids") -> list[str]:
    if isinstance(node_ids, (str, bytes)):
        raise ERASEError(f"{name} must be a list of ids, not a single string")
    if not isinstance(node_ids, Iterable):
        return [check_id(node_ids, name)]
    ids = [check_id(i, f"{name}[{j}]") for j, i in enumerate(node_ids)]
    return list(dict.fromkeys(ids))


def _not_simple(manifest: Path) -> str:
    """What a plain ``StorageContext.from_defaults(persist_dir=...)`` says when it meets the
    manifest ``manifest``. LlamaIndex has no hook for other vector stores there: it reads every
    ``*__vector_store.json`` as ``SimpleVectorStore`` data, and a manifest alone would parse as
    an empty store (retrieval answering ``[]``). The manifest therefore carries an
    ``embedding_dict`` whose only "vector" is this sentence: that load fails with a ``ValueError``
    ("could not convert string to float: '<this sentence>'") before anything is built."""
    suffix = _NAMESPACE_SEP + DEFAULT_PERSIST_FNAME
    namespace = manifest.name[: -len(suffix)] if manifest.name.endswith(suffix) else None
    if namespace == "default":
        how = "StorageContext.from_defaults(persist_dir=d, vector_store=ERASEVectorStore.from_persist_dir(d))"
    elif namespace:
        how = (f"StorageContext.from_defaults(persist_dir=d, vector_stores={{{namespace!r}: "
               f"ERASEVectorStore.from_persist_dir(d, namespace={namespace!r})}})")
    else:
        how = f"vector_store=ERASEVectorStore.from_persist_path(<dir>/{manifest.name})"
    return (f"ERASE vector store, not SimpleVectorStore data: LlamaIndex cannot open {manifest.name} by itself. "
            f"Reload with {how} (from erase_llamaindex; add docstore=ERASEDocumentStore(store) if the "
            "docstore was one). Nothing was loaded or changed")


def _store_path_for(manifest: Path) -> Path:
    stem = manifest.name[: -len(".json")] if manifest.name.endswith(".json") else manifest.name
    return manifest.with_name(stem + _STORE_SUFFIX)


def _read_manifest(path: Path) -> Path | None:
    """The store a manifest names (None when ``path`` is not JSON: then it may be a store file)."""
    raw = path.read_bytes()
    if not raw.lstrip().startswith(b"{"):
        return None
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ERASEError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        hint = " (it looks like a SimpleVectorStore file)" if isinstance(data, dict) and "embedding_dict" in data else ""
        raise ERASEError(f"{path} is not an ERASEVectorStore manifest{hint}")
    if data.get("version") != _MANIFEST_VERSION:
        raise ERASEError(f"{path} has version {data.get('version')!r}; this code reads {_MANIFEST_VERSION}")
    store = Path(data["store"])
    return store if store.is_absolute() else path.parent / store


class ERASEVectorStore(BasePydanticVectorStore):
    """LlamaIndex vector store over an exactly unlearnable :class:`~erase_core.ExampleIndex`.

    Build with :meth:`from_defaults` (a store ``path``, or in memory), or wrap an existing
    index: ``ERASEVectorStore(index)``. Then use it as any vector store::

        index = VectorStoreIndex.from_vector_store(store, embed_model=embed)
        index.insert(document); index.as_retriever().retrieve("q")
        index.delete_ref_doc(document.doc_id)      # exact, and erased from the store file

    Differences from ``SimpleVectorStore`` (each raises rather than guess): nodes need an
    embedding; query modes DEFAULT and MMR; ``delete_nodes``
    with neither ids nor filters raises (use :meth:`clear`); nodes without a ``ref_doc_id`` are
    not reached by :meth:`delete` (delete them by id). Similarities are cosine similarities (also
    for MMR). ``delete``/``delete_nodes``/``clear`` return ``None``, as LlamaIndex declares;
    the engine's :class:`~erase_core.ForgetReceipt` of the latest one is :attr:`last_receipt`.
    """

    stores_text: bool = True
    is_embedding_query: bool = True

    _index: ExampleIndex = PrivateAttr()
    _lock: Any = PrivateAttr()
    _last_receipt: ForgetReceipt | None = PrivateAttr(default=None)

    def __init__(self, index: ExampleIndex | None = None, **kwargs: Any) -> None:
        reject_unknown_kwargs("ERASEVectorStore", {k: v for k, v in kwargs.items() if k not in ("stores_text", "is_embedding_query")},
                              ("index", "stores_text", "is_embedding_query"))
        if kwargs.get("stores_text", True) is not True:
            raise ERASEError("ERASEVectorStore always stores text (stores_text=True)")
        if index is None:
            index = ExampleIndex(4, strategy="similarity")
        if not isinstance(index, ExampleIndex):
            raise ERASEError(f"index must be an erase_core.ExampleIndex, got {type(index).__name__}")
        super().__init__(stores_text=True, is_embedding_query=True)
        self._index = index
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ construction
    @classmethod
    def class_name(cls) -> str:
        return "ERASEVectorStore"

    @classmethod
    def from_defaults(
        cls,
        path: str | os.PathLike | None = None,
        *,
        index: ExampleIndex | None = None,
        k: int | None = None,
        strategy: str | None = None,
        seed: int | None = None,
        epsilon: float | None = None,
        n_iter: int | None = None,
        projection_dim: int | None = None,
        **unknown: Any,
    ) -> "ERASEVectorStore":
        """A store over ``index``, or over the store file ``path`` (opened if it exists, else
        created), or in memory (neither). An unknown keyword raises ``TypeError``.

        Index parameters (new stores only; an existing store keeps its own and a different value
        raises): ``k`` (default 4: the ``erase`` selection size, unused by queries),
        ``strategy`` (default ``"similarity"``; ``"erase"`` also clusters, for
        ``index.select()`` few-shot sets), ``seed``, ``epsilon``, ``n_iter``, ``projection_dim``.
        """
        _reject_kwargs("from_defaults", unknown, ("path", "index") + _INDEX_PARAMS)
        given = {n: v for n, v in zip(_INDEX_PARAMS, (k, strategy, epsilon, n_iter, seed, projection_dim)) if v is not None}
        params = check_index_params(**{"k": 4, "strategy": "similarity", "epsilon": None, "n_iter": 10, "seed": 0,
                                       "projection_dim": None, **given})
        given = {n: params[n] for n in given}
        if index is not None:
            if path is not None or given:
                raise ERASEError("pass either index= or path=/index parameters, not both")
            return cls(index)
        if path is not None and store_exists(path):
            opened = ExampleIndex.open(path)
            config = opened.config()
            wrong = {n: (v, config[n]) for n, v in given.items() if config[n] != v}
            if wrong:
                opened.close()
                raise ERASEError(f"{path} already holds a store with other parameters (given, stored): {wrong}")
            return cls(opened)
        return cls(ExampleIndex(params.pop("k"), path=path, **params))

    @classmethod
    def from_persist_path(cls, persist_path: str | os.PathLike, fs: Any = None) -> "ERASEVectorStore":
        """Open what :meth:`persist` wrote: a manifest (it names the store file), or a store file
        itself. The result is bound to that store (every handle sees every other's deletes)."""
        _check_local_fs(fs)
        p = Path(persist_path)
        if not p.is_file():
            raise ERASEError(f"No existing ERASEVectorStore found at {p}")
        store = _read_manifest(p)
        return cls(ExampleIndex.open(p if store is None else store))

    @classmethod
    def from_persist_dir(
        cls, persist_dir: str | os.PathLike = DEFAULT_PERSIST_DIR, namespace: str = "default", fs: Any = None,
    ) -> "ERASEVectorStore":
        """Open the store ``StorageContext.persist(persist_dir)`` persisted (``{namespace}__vector_store.json``)."""
        return cls.from_persist_path(Path(persist_dir) / f"{namespace}{_NAMESPACE_SEP}{DEFAULT_PERSIST_FNAME}", fs=fs)

    # ------------------------------------------------------------------ properties
    @property
    def client(self) -> ExampleIndex:
        """The underlying :class:`~erase_core.ExampleIndex`."""
        return self._index

    @property
    def index(self) -> ExampleIndex:
        """The underlying :class:`~erase_core.ExampleIndex` (read it; mutate through the store)."""
        return self._index

    @property
    def path(self) -> Path | None:
        """The store file this vector store writes to (None while in memory)."""
        return self._index.path

    # No __len__: LlamaIndex tests a vector store's truth value (``if vector_store:`` in
    # StorageContext.from_defaults), and an empty store must still count. Use len(store.index).

    # ------------------------------------------------------------------ mutations
    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> List[str]:
        """Add nodes with their embeddings; a node whose id is present replaces it (the old
        version is forgotten exactly, in the same transaction). Atomic: on any error (a node
        without embedding, a wrong dimension, NaN, a repeated id) nothing changes."""
        _reject_kwargs("add", add_kwargs, ("nodes",))
        nodes = list(nodes)
        if not nodes:
            return []
        embeddings: list[list[float]] = []
        for n in nodes:
            if not isinstance(n, BaseNode):
                raise ERASEError(f"expected LlamaIndex nodes (BaseNode), got {type(n).__name__}")
            if n.embedding is None:
                raise ERASEError(
                    f"node {n.node_id!r} has no embedding: ERASEVectorStore stores the embeddings it is given "
                    "(VectorStoreIndex embeds nodes before adding them)"
                )
            embeddings.append(n.embedding)
        dims = sorted({len(e) for e in embeddings})
        if len(dims) != 1:
            raise ERASEError(f"node embeddings have different lengths {dims}")
        ids = [n.node_id for n in nodes]
        payloads = [node_to_payload(n) for n in nodes]
        with self._lock:
            self._index.upsert(
                np.asarray(embeddings, dtype=np.float64), payloads, ids,
                subjects=[node_subject(n) for n in nodes], metadata=[flat_metadata(n.metadata) or None for n in nodes],
            )
        return ids

    @property
    def last_receipt(self) -> ForgetReceipt | None:
        """The :class:`~erase_core.ForgetReceipt` of the latest ``delete``, ``delete_nodes`` or
        ``clear`` through this object (``None`` before the first); with several threads
        deleting, the latest to commit."""
        return self._last_receipt

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Forget every node whose ``ref_doc_id`` is ``ref_doc_id``: exact, one transaction, one
        audit entry, erased from the store file. An unknown id deletes nothing (as in LlamaIndex)
        and logs a warning without the id. The receipt is :attr:`last_receipt`."""
        _reject_kwargs("delete", delete_kwargs, ("ref_doc_id",))
        if not isinstance(ref_doc_id, str) or not ref_doc_id:
            raise ERASEError(f"ref_doc_id must be a non-empty string, got {ref_doc_id!r}")
        with self._lock:
            receipt = self._last_receipt = forget_in(self._index, subject=ref_doc_id)
        if not receipt.ids:
            logger.warning("ERASEVectorStore.delete: no node has that ref_doc_id; nothing deleted")

    def delete_nodes(
        self, node_ids: Optional[List[str]] = None, filters: Optional[MetadataFilters] = None, **delete_kwargs: Any,
    ) -> None:
        """Forget the nodes among ``node_ids`` that match ``filters`` (either may be omitted, not
        both: :meth:`clear` deletes everything). Unknown ids are skipped. Exact, one transaction.
        The receipt is :attr:`last_receipt`."""
        _reject_kwargs("delete_nodes", delete_kwargs, ("node_ids", "filters"))
        where = normalise(filters)
        if node_ids is None and where is None:
            raise ERASEError("delete_nodes needs node_ids or filters (use clear() to delete every node)")
        ids = None if node_ids is None else _id_list(node_ids)
        with self._lock:  # ids with filters: matched and forgotten in one transaction
            self._last_receipt = forget_in(self._index, ids=ids, where=None if where is None else to_core(where),
                                           missing="ignore")

    def clear(self) -> None:
        """Forget every node (exact, one transaction; the pool then equals an empty build). The
        receipt is :attr:`last_receipt`."""
        with self._lock:
            self._last_receipt = forget_in(self._index, ids=self._index.ids, missing="ignore")

    # ------------------------------------------------------------------ reads
    def _matching(self, ids: list[str], where: dict) -> list[str]:
        """The ids among ``ids`` (in that order) whose metadata match the core filter ``where``."""
        allowed = set(self._index.ids_where(where))
        return [i for i in ids if i in allowed]

    def get_nodes(self, node_ids: Optional[List[str]] = None, filters: Optional[MetadataFilters] = None) -> List[BaseNode]:
        """Fresh copies of the stored nodes: those of ``node_ids`` (in that order; unknown ids are
        skipped) or all (by id), that match ``filters``. Each carries its stored embedding (L2
        normalised, float32 precision)."""
        where = normalise(filters)
        with self._lock:
            ids = self._index.ids if node_ids is None else _id_list(node_ids)
            if where is not None:
                ids = self._matching(ids, to_core(where))
            out = []
            for i in ids:
                try:
                    node = payload_to_node(self._index.get(i))
                    node.embedding = [float(x) for x in self._index.vector(i)]
                except UnknownIdError:
                    continue
                out.append(node)
            return out

    def ref_doc_info(self) -> Dict[str, RefDocInfo]:
        """What ``VectorStoreIndex.ref_doc_info`` gives over ``SimpleVectorStore``, for the nodes in
        this store: ``ref_doc_id`` -> ``RefDocInfo(node_ids, metadata)``, node ids sorted, metadata
        those of the document's first node (as LlamaIndex's docstore records them). Nodes without
        a ``ref_doc_id`` are left out. ``VectorStoreIndex.ref_doc_info`` itself raises
        ``NotImplementedError`` for every store that keeps the text: it reads the docstore, where
        such an index records only each document's hash."""
        out: Dict[str, RefDocInfo] = {}
        with self._lock:
            for i in self._index.ids:
                node = payload_to_node(self._index.get(i))
                ref = node_subject(node)
                if ref is None:
                    continue
                info = out.setdefault(ref, RefDocInfo())
                info.node_ids.append(i)
                if not info.metadata:
                    info.metadata = dict(node.metadata or {})
        return out

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """Exact top ``similarity_top_k`` by cosine similarity (ties by node id), or with
        ``mode=MMR`` maximal marginal relevance (``mmr_threshold``, on the query or as a keyword
        as ``VectorIndexRetriever(vector_store_kwargs=...)`` passes it, is the weight of
        similarity, default 0.5; every matching node is a candidate unless ``mmr_prefetch_k`` or
        ``mmr_prefetch_factor`` limits them). Restricted by ``filters``, ``node_ids`` and
        ``doc_ids`` (all must hold; an empty ``node_ids``/``doc_ids`` list is no restriction). Equals the same query on a fresh build of the pool."""
        unknown = {k: v for k, v in kwargs.items() if k not in _MMR_KWARGS}
        _reject_kwargs("query", unknown, ("query",) + _MMR_KWARGS)
        if query.mode not in (VectorStoreQueryMode.DEFAULT, VectorStoreQueryMode.MMR):
            raise ERASEError(f"query mode {getattr(query.mode, 'value', query.mode)!r} is not supported: use DEFAULT or MMR")
        if query.query_embedding is None:
            raise ERASEError("ERASEVectorStore.query needs a query_embedding (it has no text or sparse search)")
        top_k = check_k(query.similarity_top_k, "similarity_top_k")
        where = normalise(query.filters)
        mmr = query.mode == VectorStoreQueryMode.MMR
        lambda_mult = query.mmr_threshold if query.mmr_threshold is not None else kwargs.get("mmr_threshold")
        lambda_mult = 0.5 if lambda_mult is None else lambda_mult
        with self._lock:
            index = self._index
            # An empty list is no restriction, as in most LlamaIndex stores: VectorStoreIndex passes
            # node_ids=[] (its empty nodes_dict) to every store that keeps the text itself.
            among = set(_id_list(query.node_ids)) if query.node_ids else None
            if query.doc_ids:
                of_docs = {i for d in _id_list(query.doc_ids, "doc_ids") for i in index.ids_of_subject(d)}
                among = of_docs if among is None else among & of_docs
            fetch_k = max(1, len(index))
            if kwargs.get("mmr_prefetch_k") is not None:
                fetch_k = kwargs["mmr_prefetch_k"]
            elif kwargs.get("mmr_prefetch_factor") is not None:
                fetch_k = max(1, math.ceil(top_k * float(kwargs["mmr_prefetch_factor"])))
            found = index.search(
                query.query_embedding, top_k, filter=None if where is None else to_core(where), mmr=mmr,
                fetch_k=fetch_k, lambda_mult=lambda_mult, among=among,
            )
        return VectorStoreQueryResult(
            nodes=[payload_to_node(s.payload) for s in found],
            similarities=[float(s.score) for s in found],
            ids=[s.id for s in found],
        )

    # ------------------------------------------------------------------ async twins
    # Store writes and exact ranking are blocking work: run them in a worker thread.
    async def async_add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> List[str]:
        return await asyncio.to_thread(self.add, nodes, **add_kwargs)

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        await asyncio.to_thread(self.delete, ref_doc_id, **delete_kwargs)

    async def adelete_nodes(
        self, node_ids: Optional[List[str]] = None, filters: Optional[MetadataFilters] = None, **delete_kwargs: Any,
    ) -> None:
        await asyncio.to_thread(self.delete_nodes, node_ids, filters, **delete_kwargs)

    async def aclear(self) -> None:
        await asyncio.to_thread(self.clear)

    async def aget_nodes(self, node_ids: Optional[List[str]] = None, filters: Optional[MetadataFilters] = None) -> List[BaseNode]:
        return await asyncio.to_thread(self.get_nodes, node_ids, filters)

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        return await asyncio.to_thread(self.query, query, **kwargs)

    # ------------------------------------------------------------------ persistence
    def persist(self, persist_path: str | os.PathLike = os.path.join(DEFAULT_PERSIST_DIR, DEFAULT_PERSIST_FNAME),
                fs: Any = None) -> None:
        """Make the store reachable from ``persist_path`` (what ``StorageContext.persist`` calls).

        * Bound to a store file (created with ``path``, or reopened): writes a JSON manifest at
          ``persist_path`` naming that file (relative when beside it). No node data is copied, so
          every later delete still reaches the only copy. (``persist_path`` = the store file
          itself: nothing to do.)
        * In memory: copies the pool once to ``<name>.erase.sqlite`` beside the manifest and binds
          to it: later adds and deletes are written there.

        Refuses to overwrite another store, or a manifest that names another store (that store
        would be left behind, unreachable by later deletes). Nothing is pickled.
        """
        _check_local_fs(fs)
        p = Path(persist_path).absolute()
        with self._lock:
            bound = self._index.path
            if bound is not None and Path(bound).resolve() == p.resolve():
                return
            if p.exists():
                named = _read_manifest(p)  # raises for a file that is neither a manifest nor a store
                if named is None:
                    raise ERASEError(f"{p} holds another store; persist elsewhere or open it with from_persist_path")
                if bound is None or named.resolve() != Path(bound).resolve():
                    raise ERASEError(
                        f"{p} names another store ({named}); persisting this one there would leave that one behind. "
                        "Persist elsewhere, or open it with from_persist_path"
                    )
            p.parent.mkdir(parents=True, exist_ok=True)
            if bound is None:
                store_path = _store_path_for(p)
                if store_path.exists():
                    raise ERASEError(f"{store_path} already exists; persist elsewhere or open it with from_persist_path")
                old = self._index
                self._index = copy_to_store(old, store_path)
                old.close()
                bound = store_path
            bound = Path(bound).resolve()
            reference = bound.name if bound.parent == p.parent.resolve() else str(bound)
            write_json_atomically(p, {"format": MANIFEST_FORMAT, "version": _MANIFEST_VERSION, "store": reference,
                                      "embedding_dict": {_GUARD_KEY: [_not_simple(p)]}})

    def __reduce__(self):
        """Pickles and copies carry the index as ExampleIndex does: a store file by path (the copy
        is another handle on it, following every later delete), an in-memory pool by value."""
        return (type(self), (self._index,))

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> "ERASEVectorStore":
        import copy

        return type(self)(copy.deepcopy(self._index, memo))

    def close(self) -> None:
        """Close the store file (if any); the vector store is unusable afterwards if it had one."""
        with self._lock:
            self._index.close()

    def __enter__(self) -> "ERASEVectorStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        where = f", path={str(self._index.path)!r}" if self._index.path is not None else ""
        return f"ERASEVectorStore(n={len(self._index)}, strategy={self._index.strategy!r}{where})"
