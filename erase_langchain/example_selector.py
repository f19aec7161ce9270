"""``ERASEExampleSelector``: a drop-in for LangChain's ``SemanticSimilarityExampleSelector``
whose examples can be exactly unlearned."""

from __future__ import annotations

import contextlib
import inspect
import os
from typing import Any, Literal, Sequence

from langchain_core.embeddings import Embeddings
from langchain_core.example_selectors.base import BaseExampleSelector
from langchain_core.runnables.config import run_in_executor

from erase_core import ERASEError, ExampleIndex, SelectedExample, check_id, select_available
from erase_core.filters import check_metadata
from erase_core.params import check_k, reject_unknown_kwargs

from ._engine_model import EngineModel
from .vectorstore import ERASEVectorStore
from ._common import (
    subjects_given,
    check_new_ids,
    check_search_filter,
    selection_fingerprint,
    subject_from,
    to_float_rows,
)

__all__ = ["ERASEExampleSelector", "sorted_values"]

class _Default:
    """``k``'s default in ``from_examples`` (4), distinguishable from an explicit 4."""

    def __repr__(self) -> str:
        return "4"


_UNSET: Any = _Default()


class _FieldDefault:
    """``filter``'s default in the selection methods: the selector's ``filter`` field."""

    def __repr__(self) -> str:
        return "<the filter field>"


_FILTER_FIELD: Any = _FieldDefault()


def sorted_values(values: dict[str, Any]) -> list[Any]:
    """The values of ``values`` ordered by key (as ``langchain_core``'s selectors do)."""
    return [values[key] for key in sorted(values)]


class ERASEExampleSelector(BaseExampleSelector, EngineModel):
    """Select few-shot examples with ERASE; ``forget`` removes an example exactly.

    A drop-in for ``SemanticSimilarityExampleSelector``: built the same way (see
    :meth:`from_examples`, or ``ERASEExampleSelector(vectorstore=store, k=3)`` over an
    :class:`~erase_langchain.ERASEVectorStore`), it embeds each example's text (its values
    ordered by key and joined by a space, limited to ``input_keys``) and returns the examples
    as dicts (projected to ``example_keys``).

    ``strategy="similarity"`` (default) returns the exact top ``k`` by cosine similarity to
    the input's text: the stock selector's prompts, exactly unlearnable; ``filter`` restricts
    it to examples whose metadata match. ``strategy="mmr"``: maximal marginal relevance (the
    stock ``MaxMarginalRelevanceExampleSelector``). ``strategy="erase"`` returns the same ``k``
    examples for every input, one per quantized k-means cluster, so the prompt prefix is fixed
    and cacheable (see :attr:`fingerprint`) and the input is not even embedded; it scores
    lower than per-input selection (docs/langchain.md), and ``n_nearest`` adds per-input
    neighbours after it.

    Each example may carry a subject (``subject_key`` field or ``subjects=``) and metadata
    (``metadata_keys`` fields or ``metadata=``), for ``forget(subject=...)``,
    :meth:`forget_where` and ``filter``.

    Direct construction, ``ERASEExampleSelector(embeddings=..., k=4, ...)``, starts empty
    (or reopens ``persist_path`` when that file exists); ``index=`` wraps an existing
    :class:`~erase_core.ExampleIndex`; ``vectorstore=`` selects from an ``ERASEVectorStore``
    as the stock selector does (each example is a document whose metadata is the example).
    An unknown keyword raises ``TypeError`` naming it and the accepted ones.
    """

    strategy: Literal["erase", "similarity", "mmr"] = "similarity"
    """``similarity`` (default): the exact top ``k`` per input, the stock selector's prompts.
    ``mmr``: similar and diverse per input. ``erase``: one fixed set, one example per
    quantized k-means cluster (a cacheable prompt prefix; see :attr:`n_nearest`)."""

    vectorstore: ERASEVectorStore | None = None
    """The stock selector's ``vectorstore``: an :class:`~erase_langchain.ERASEVectorStore`
    (its engine and embedding are used; any other store raises, its copies could not be
    unlearned). Its documents are the examples: text = the example's values, metadata = the
    example, as ``SemanticSimilarityExampleSelector.add_example`` writes them."""

    vectorstore_kwargs: dict[str, Any] | None = None
    """The stock selector's search arguments: ``{"filter": {...}}`` is the same as ``filter=``;
    any other key raises (never silently ignored)."""

    input_keys: list[str] | None = None
    """Keys whose values make an example's (and an input's) text; ``None``: all keys (except
    ``id_key``). ``FewShotPromptTemplate`` passes every prompt variable, so set this when the
    prompt has variables that are not example fields."""

    example_keys: list[str] | None = None
    """Keys each selected example is projected to (``None``: the whole example)."""

    id_key: str | None = None
    """Example field holding its id (used by :meth:`from_examples` and :meth:`add_example`)."""

    metadata_keys: list[str] | None = None
    """Example fields copied into the example's metadata (for ``filter`` and
    :meth:`forget_where`); a field an example lacks is left out of its metadata."""

    n_nearest: int = 0
    """``erase`` only: after the fixed ``k`` examples, append the ``n_nearest`` other examples
    most similar to the input (the most similar last, next to the input). The prompt keeps
    ERASE's fixed, cacheable prefix and gains per-input neighbours; both parts are exactly
    unlearnable. On intent_recognition (docs/results.md) 2 fixed + 2 nearest scored 0.757
    against ERASE's 0.202 and kNN's 0.870 at four shots."""

    filter: dict | None = None
    """Metadata filter applied to every selection (``similarity`` only; ``erase`` with a filter
    raises): only matching examples are ranked. ``select_examples(..., filter=...)``
    replaces it for one call; :meth:`with_filter` makes a copy with another one."""

    def __init__(self, **data: Any) -> None:
        fields = set(type(self).model_fields)
        reject_unknown_kwargs("ERASEExampleSelector", {key: v for key, v in data.items() if key not in fields}, fields)
        store = data.get("vectorstore")
        if store is not None:
            if not isinstance(store, ERASEVectorStore):
                raise ERASEError(
                    f"vectorstore must be an erase_langchain.ERASEVectorStore, got {type(store).__name__}: ERASE "
                    "cannot unlearn the copies another store keeps (use ERASEVectorStore, or from_examples)"
                )
            clash = sorted(key for key in ("index", "persist_path", "metadata_keys") if data.get(key) is not None)
            if clash:
                raise ERASEError(f"give vectorstore= or {clash}, not both (the store holds the examples, and each "
                                 "example is its document's metadata)")
            if data.get("embeddings") is None:
                data["embeddings"] = store.embeddings
            elif data["embeddings"] is not store.embeddings:
                raise ERASEError("embeddings= is not the vector store's embedding: leave it out (the store's is used)")
            data["index"] = store.index
        if data.get("vectorstore_kwargs"):
            data["filter"] = self._filter_of_vectorstore_kwargs(data["vectorstore_kwargs"], data.get("filter"))
        super().__init__(**data)

    @staticmethod
    def _filter_of_vectorstore_kwargs(vectorstore_kwargs: dict, filter: dict | None) -> dict | None:  # noqa: A002
        """The stock ``vectorstore_kwargs`` as a filter: ``{"filter": {...}}``; any other key raises."""
        unknown = sorted(set(vectorstore_kwargs) - {"filter"})
        if unknown:
            raise ERASEError(
                f"vectorstore_kwargs={vectorstore_kwargs!r}: {unknown} cannot be honoured (ERASE selects from "
                "its own index; the only search argument is 'filter', a metadata filter)"
            )
        if filter is not None:
            raise ERASEError("give filter= or vectorstore_kwargs={'filter': ...}, not both")
        return vectorstore_kwargs.get("filter")

    # ------------------------------------------------------------------ text
    def _bookkeeping_keys(self) -> set[str]:
        return {key for key in (self.id_key, self.subject_key) if key is not None} | set(self.metadata_keys or ())

    def _text_keys(self, values: dict[str, Any]) -> list[str]:
        if self.input_keys:
            return list(self.input_keys)
        skip = self._bookkeeping_keys()
        return [key for key in values if key not in skip]

    def _example_to_text(self, example: dict[str, Any]) -> str:
        """Values ordered by key, limited to ``input_keys``, joined by a space."""
        keys = self._text_keys(example)
        missing = [key for key in keys if key not in example]
        if missing:
            raise KeyError(f"input key(s) {missing} not in {sorted(example)}")
        return " ".join(str(v) for v in sorted_values({key: example[key] for key in keys}))

    def _example_of(self, payload: Any) -> dict[str, Any]:
        """The example a stored payload holds: itself, or with ``vectorstore=`` its document's
        metadata (a copy)."""
        return dict(payload["metadata"] if self.vectorstore is not None else payload)

    def _project(self, selected: list[SelectedExample]) -> list[dict[str, Any]]:
        examples = [self._example_of(s.payload) for s in selected]
        if self.example_keys:
            return [{key: ex[key] for key in self.example_keys} for ex in examples]
        return examples

    # ------------------------------------------------------------------ selection
    def _needs_query(self) -> bool:
        return self._engine.strategy != "erase" or self.n_nearest > 0

    def _check_search(self) -> None:
        check_search_filter(self._engine, self.filter)
        if isinstance(self.n_nearest, bool) or not isinstance(self.n_nearest, int) or self.n_nearest < 0:
            raise ERASEError(f"n_nearest must be a non-negative integer, got {self.n_nearest!r}")
        if self.n_nearest and self._engine.strategy != "erase":
            raise ERASEError(f"n_nearest extends the fixed 'erase' set (pass strategy='erase'); strategy "
                             f"{self._engine.strategy!r} already ranks by the input")

    def _filter_for(self, filter: Any) -> dict | None:  # noqa: A002
        where = self.filter if filter is _FILTER_FIELD else filter
        return check_search_filter(self._engine, where)

    def _select_now(self, query, where: dict | None) -> list[SelectedExample]:
        # the fixed part and the nearest others come from one pool; the fixed set alone is not
        # held up by a forget in another thread (erase_core.select_available)
        with self._engine.lock if self.n_nearest else contextlib.nullcontext():
            selected = select_available(self._engine, query, self.k, filter=where, fetch_k=self.fetch_k,
                                        lambda_mult=self.lambda_mult)
            if self.n_nearest and selected:
                fixed = {s.id for s in selected}
                ranked = self._engine.search(query, len(selected) + self.n_nearest)
                selected = selected + [s for s in ranked if s.id not in fixed][: self.n_nearest][::-1]
        self._notify_selected(selected)
        return selected

    def select(self, input_variables: dict[str, Any] | None = None, *, filter: dict | None = _FILTER_FIELD,  # noqa: A002
               ) -> list[SelectedExample]:
        """The selected examples with their ids and scores (unprojected payloads).

        ``erase`` ignores ``input_variables`` (the set is fixed); ``similarity`` needs them.
        ``filter`` (default: the ``filter`` field; ``None``: no filter) restricts ``similarity``
        to examples whose metadata match.
        """
        where = self._filter_for(filter)
        query = None
        if self._needs_query():
            if input_variables is None:
                raise ERASEError(f"strategy {self._engine.strategy!r} needs input_variables to rank examples by")
            query = self.embeddings.embed_query(self._example_to_text(input_variables))
        return self._select_now(query, where)

    async def aselect(self, input_variables: dict[str, Any] | None = None, *,
                      filter: dict | None = _FILTER_FIELD) -> list[SelectedExample]:  # noqa: A002
        """Async :meth:`select`: embeds with ``aembed_query``; the engine runs in an executor."""
        where = self._filter_for(filter)
        query = None
        if self._needs_query():
            if input_variables is None:
                raise ERASEError(f"strategy {self._engine.strategy!r} needs input_variables to rank examples by")
            query = await self.embeddings.aembed_query(self._example_to_text(input_variables))
        return await run_in_executor(None, self._select_now, query, where)

    def select_examples(self, input_variables: dict[str, Any], *, filter: dict | None = _FILTER_FIELD,  # noqa: A002
                        ) -> list[dict[str, Any]]:
        """The examples for a prompt (a list of dicts, projected to ``example_keys``)."""
        return self._project(self.select(input_variables, filter=filter))

    async def aselect_examples(self, input_variables: dict[str, Any], *,
                               filter: dict | None = _FILTER_FIELD) -> list[dict[str, Any]]:  # noqa: A002
        """Async :meth:`select_examples` (does not block the event loop)."""
        return self._project(await self.aselect(input_variables, filter=filter))

    def with_filter(self, filter: dict | None) -> "ERASEExampleSelector":  # noqa: A002
        """A copy whose ``filter`` field is ``filter`` (e.g. one per tenant), sharing this
        selector's engine and the caches watching it: a forget through either is a forget in both."""
        check_search_filter(self._engine, filter)
        return self.model_copy(update={"filter": filter})

    @property
    def fingerprint(self) -> str:
        """Hash of the ordered selected set (``erase`` only): it changes exactly when the
        examples a prompt gets change, so it can key a prompt or KV cache. With ``n_nearest``
        it is the hash of the fixed prefix."""
        if self._engine.strategy != "erase":
            raise ERASEError(f"strategy {self._engine.strategy!r} selects per input: there is no fixed set to fingerprint")
        return selection_fingerprint(select_available(self._engine, None, self.k))  # with n_nearest: the fixed prefix

    # ------------------------------------------------------------------ mutations
    def _ids_for(self, examples: Sequence[dict[str, Any]], ids: Sequence[str] | None) -> list[str] | None:
        ids = check_new_ids(ids, len(examples))
        if ids is None and self.id_key is not None:
            missing = [n for n, ex in enumerate(examples) if self.id_key not in ex]
            if missing:
                raise ERASEError(f"example {missing[0]} has no id field {self.id_key!r}")
            ids = [check_id(ex[self.id_key], f"examples[{j}][{self.id_key!r}]") for j, ex in enumerate(examples)]
        return ids

    def _attrs_for(self, examples: Sequence[dict[str, Any]], subjects: Sequence[Any] | None,
                   metadata: Sequence[dict | None] | None) -> tuple[list[str | None], list[dict]]:
        """Each example's subject and metadata: ``subjects=``/``metadata=`` when given (one per
        example), else the ``subject_key`` field / the ``metadata_keys`` fields."""
        n = len(examples)
        if subjects is None:
            subject_list = [subject_from(ex, self.subject_key, f"examples[{j}]") for j, ex in enumerate(examples)]
        else:
            subject_list = subjects_given(subjects, n, "example")
        if self.vectorstore is not None:
            if metadata is not None:
                raise ERASEError("with vectorstore=, an example's metadata is the example itself (as in "
                                 "SemanticSimilarityExampleSelector): metadata= cannot be given")
            metadata = [dict(ex) for ex in examples]
        elif metadata is None:
            keys = self.metadata_keys or ()
            metadata = [{key: ex[key] for key in keys if key in ex} for ex in examples]
        else:
            if isinstance(metadata, dict):
                raise ERASEError("metadata must be a list (one dict per example), not a single dict")
            metadata = list(metadata)
            if len(metadata) != n:
                raise ERASEError(f"got {len(metadata)} metadata for {n} examples")
        return subject_list, [check_metadata(m, f"metadata of examples[{j}]") for j, m in enumerate(metadata)]

    def _add_vectors(self, vectors, examples: list[dict[str, Any]], ids: list[str] | None,
                     attrs: tuple[list, list] | None = None) -> list[str]:
        subjects, metadata = attrs if attrs is not None else (None, None)
        payloads: list[Any] = examples
        if self.vectorstore is not None:  # the documents SemanticSimilarityExampleSelector.add_example writes
            payloads = [{"page_content": self._example_to_text(ex), "metadata": m} for ex, m in zip(examples, metadata or [])]
        return self._engine.add(to_float_rows(vectors, len(examples)), payloads, ids=ids, subjects=subjects,
                              metadata=metadata)

    def add_examples(self, examples: Sequence[dict[str, Any]], ids: Sequence[str] | None = None, *,
                     subjects: Sequence[str | int | None] | None = None,
                     metadata: Sequence[dict | None] | None = None) -> list[str]:
        """Add examples (one embedding call); returns their ids (``ids``, else the ``id_key``
        field, else generated). Atomic: on error nothing is added.

        ``subjects`` / ``metadata`` (one per example) give each example's subject and metadata;
        when left out they come from the ``subject_key`` / ``metadata_keys`` fields."""
        examples = [dict(ex) for ex in examples]
        if not examples:
            return []
        ids = self._ids_for(examples, ids)
        attrs = self._attrs_for(examples, subjects, metadata)
        vectors = self.embeddings.embed_documents([self._example_to_text(ex) for ex in examples])
        return self._add_vectors(vectors, examples, ids, attrs)

    async def aadd_examples(self, examples: Sequence[dict[str, Any]], ids: Sequence[str] | None = None, *,
                            subjects: Sequence[str | int | None] | None = None,
                            metadata: Sequence[dict | None] | None = None) -> list[str]:
        """Async :meth:`add_examples`."""
        examples = [dict(ex) for ex in examples]
        if not examples:
            return []
        ids = self._ids_for(examples, ids)
        attrs = self._attrs_for(examples, subjects, metadata)
        vectors = await self.embeddings.aembed_documents([self._example_to_text(ex) for ex in examples])
        return await run_in_executor(None, self._add_vectors, vectors, examples, ids, attrs)

    def add_example(self, example: dict[str, Any], id: str | None = None, *,  # noqa: A002
                    subject: str | int | None = None, metadata: dict | None = None) -> str:
        """Add one example; returns its id. ``subject``/``metadata`` override the
        ``subject_key``/``metadata_keys`` fields."""
        return self.add_examples([example], None if id is None else [id],
                                 subjects=None if subject is None else [subject],
                                 metadata=None if metadata is None else [metadata])[0]

    async def aadd_example(self, example: dict[str, Any], id: str | None = None, *,  # noqa: A002
                           subject: str | int | None = None, metadata: dict | None = None) -> str:
        """Async :meth:`add_example`."""
        return (await self.aadd_examples([example], None if id is None else [id],
                                         subjects=None if subject is None else [subject],
                                         metadata=None if metadata is None else [metadata]))[0]

    # ------------------------------------------------------------------ inspection
    def get(self, example_id: str) -> dict[str, Any]:
        """The example stored under ``example_id`` (a copy)."""
        return self._example_of(self._engine.get(check_id(example_id, "example_id")))

    def __len__(self) -> int:
        return len(self._engine)

    def __bool__(self) -> bool:  # an empty selector is still a selector (``if prompt.example_selector:``)
        return True

    # ------------------------------------------------------------------ construction
    @classmethod
    def _resolve_positional(cls, vectorstore_cls: Any, k: Any, input_keys: Any) -> tuple[int, list[str] | None]:
        """The third positional parameter is ``vectorstore_cls`` (as in the stock signature);
        an int there is read as ``k`` (and a list after it as ``input_keys``)."""
        if vectorstore_cls is not None and not isinstance(vectorstore_cls, type):
            if isinstance(vectorstore_cls, int) and not isinstance(vectorstore_cls, bool):
                if input_keys is not None or (k is not _UNSET and not (k is None or isinstance(k, (list, tuple)))):
                    raise TypeError("from_examples() got k twice (positional int after embeddings and k=)")
                input_keys = None if k is _UNSET or k is None else list(k)
                k = vectorstore_cls
            else:
                raise TypeError(f"vectorstore_cls must be a VectorStore class (it is ignored), got {vectorstore_cls!r}")
        return (4 if k is _UNSET else k), input_keys

    @classmethod
    def _check_vectorstore_args(cls, vectorstore_kwargs: dict | None, vectorstore_cls_kwargs: dict,
                                filter: dict | None, strategy: str, where: str) -> dict | None:  # noqa: A002
        """Validate the stock vector-store arguments; returns the filter to use.

        ``vectorstore_kwargs`` are the stock selector's search arguments: ``{"filter": {...}}``
        is honoured (the same as ``filter=``); any other key raises. Any other keyword (the
        stock signature passes them to the vector-store class) raises ``TypeError``: a misspelt
        option is never ignored, and ERASE keeps the examples in its own index only."""
        accepted = [name for name, p in inspect.signature(getattr(cls, where)).parameters.items()
                    if p.kind is not inspect.Parameter.VAR_KEYWORD]
        reject_unknown_kwargs(f"ERASEExampleSelector.{where}", vectorstore_cls_kwargs, accepted)
        if vectorstore_kwargs:
            try:
                filter = cls._filter_of_vectorstore_kwargs(vectorstore_kwargs, filter)  # noqa: A001
                check_search_filter(strategy, filter)
            except ERASEError as exc:
                raise ERASEError(f"vectorstore_kwargs={vectorstore_kwargs!r}: {exc}") from None
        check_search_filter(strategy, filter)
        return filter

    @classmethod
    def _prepare(cls, examples, embeddings, vectorstore_cls, k, input_keys, ids, id_key, example_keys,
                 vectorstore_kwargs, vectorstore_cls_kwargs, engine: dict, fields: dict,
                 subjects, metadata, where: str = "from_examples") -> tuple[dict, list, list | None, list[str], tuple]:
        """Validate the arguments and compute the texts to embed, before anything is built."""
        k, input_keys = cls._resolve_positional(vectorstore_cls, k, input_keys)
        fields = dict(fields, filter=cls._check_vectorstore_args(vectorstore_kwargs, vectorstore_cls_kwargs,
                                                                 fields.get("filter"), engine["strategy"], where))
        if ids is not None and id_key is not None:
            raise ERASEError("give ids= or id_key=, not both")
        if engine["persist_path"] is not None:
            cls._refuse_existing(engine["persist_path"])
        args = dict(embeddings=embeddings, k=check_k(k), input_keys=input_keys, example_keys=example_keys, id_key=id_key,
                    **fields, **engine)
        probe = cls.model_construct(**args)  # the text, id and attribute rules need only these fields
        examples = [dict(ex) for ex in examples]
        ids = probe._ids_for(examples, ids)
        attrs = probe._attrs_for(examples, subjects, metadata)
        return args, examples, ids, [probe._example_to_text(ex) for ex in examples], attrs

    @classmethod
    def _finish(cls, args: dict, examples: list, ids: list[str] | None, vectors, attrs) -> "ERASEExampleSelector":
        """Build the selector and add the embedded examples; on error remove what was created."""
        path = args["persist_path"]
        selector = cls(**args)
        try:
            if examples:
                selector._add_vectors(vectors, examples, ids, attrs)
        except Exception:
            selector.close()
            if path is not None:
                for suffix in ("", "-journal"):
                    try:
                        os.remove(path + suffix)
                    except FileNotFoundError:
                        pass
            raise
        return selector

    @classmethod
    def from_examples(
        cls,
        examples: Sequence[dict[str, Any]],
        embeddings: Embeddings,
        vectorstore_cls: Any = None,
        k: int = _UNSET,
        input_keys: list[str] | None = None,
        fetch_k: int | None = None,
        *,
        example_keys: list[str] | None = None,
        vectorstore_kwargs: dict[str, Any] | None = None,
        ids: Sequence[str] | None = None,
        id_key: str | None = None,
        subject_key: str | None = None,
        metadata_keys: list[str] | None = None,
        subjects: Sequence[str | int | None] | None = None,
        metadata: Sequence[dict | None] | None = None,
        filter: dict | None = None,  # noqa: A002
        strategy: Literal["erase", "similarity", "mmr"] = _UNSET,
        lambda_mult: float = 0.5,
        n_nearest: int = 0,
        persist_path: str | os.PathLike | None = None,
        epsilon: float | None = None,
        n_iter: int = 10,
        seed: int = 0,
        projection_dim: int | None = None,
        **vectorstore_cls_kwargs: Any,
    ) -> "ERASEExampleSelector":
        """Build a selector over ``examples`` (embedded in one ``embed_documents`` call).

        Same surface as ``SemanticSimilarityExampleSelector.from_examples``:

        * ``vectorstore_cls`` (third positional, optional) is accepted so existing calls keep
          working, and ignored: the examples live only in ERASE's own index (in memory, or in
          ``persist_path``), because a copy in another store could not be exactly unlearned.
          An int in that position is read as ``k``, so ``from_examples(examples, emb, 2)``
          works too. Any other keyword (the stock signature would pass it to the vector-store
          class) raises ``TypeError`` naming it and the accepted ones: a misspelt option
          (``stratgy=``, ``persist_pth=``) is never ignored. ``vectorstore_kwargs={"filter":
          {...}}`` is honoured as ``filter=`` and any other search argument raises.
        * ``k``, ``input_keys``, ``example_keys``: as in the stock selector; ``fetch_k`` (sixth
          positional, as in ``MaxMarginalRelevanceExampleSelector.from_examples``) selects the
          ``mmr`` strategy when no ``strategy`` is given.

        ERASE additions: ``ids`` (one per example) or ``id_key`` (the field holding each
        example's id) make the ids known for later ``forget``; ``subject_key`` / ``subjects``
        and ``metadata_keys`` / ``metadata`` give each example a subject and metadata (see
        :meth:`add_examples`); ``filter`` (metadata filter for ``similarity``/``mmr``); ``strategy`` (default
        ``similarity``, the stock selector's prompts; ``mmr``; ``erase``, the paper's fixed set, with
        ``n_nearest`` for the hybrid); ``lambda_mult`` (``mmr``); ``persist_path``
        (a new SQLite store; reopen it with :meth:`open`); ``epsilon``, ``n_iter``, ``seed``,
        ``projection_dim`` (quantized k-means parameters).
        """
        engine = dict(strategy=cls._strategy_for(strategy, fetch_k),
                      persist_path=None if persist_path is None else os.fspath(persist_path),
                      epsilon=epsilon, n_iter=n_iter, seed=seed, projection_dim=projection_dim)
        fields = dict(subject_key=subject_key, metadata_keys=metadata_keys, filter=filter,
                      fetch_k=20 if fetch_k is None else fetch_k, lambda_mult=lambda_mult, n_nearest=n_nearest)
        args, examples, ids, texts, attrs = cls._prepare(examples, embeddings, vectorstore_cls, k, input_keys, ids,
                                                         id_key, example_keys, vectorstore_kwargs, vectorstore_cls_kwargs,
                                                         engine, fields, subjects, metadata)
        vectors = embeddings.embed_documents(texts) if texts else []
        return cls._finish(args, examples, ids, vectors, attrs)

    @classmethod
    async def afrom_examples(
        cls,
        examples: Sequence[dict[str, Any]],
        embeddings: Embeddings,
        vectorstore_cls: Any = None,
        k: int = _UNSET,
        input_keys: list[str] | None = None,
        fetch_k: int | None = None,
        *,
        example_keys: list[str] | None = None,
        vectorstore_kwargs: dict[str, Any] | None = None,
        ids: Sequence[str] | None = None,
        id_key: str | None = None,
        subject_key: str | None = None,
        metadata_keys: list[str] | None = None,
        subjects: Sequence[str | int | None] | None = None,
        metadata: Sequence[dict | None] | None = None,
        filter: dict | None = None,  # noqa: A002
        strategy: Literal["erase", "similarity", "mmr"] = _UNSET,
        lambda_mult: float = 0.5,
        n_nearest: int = 0,
        persist_path: str | os.PathLike | None = None,
        epsilon: float | None = None,
        n_iter: int = 10,
        seed: int = 0,
        projection_dim: int | None = None,
        **vectorstore_cls_kwargs: Any,
    ) -> "ERASEExampleSelector":
        """Async :meth:`from_examples` (``aembed_documents``; the index is built in an executor)."""
        engine = dict(strategy=cls._strategy_for(strategy, fetch_k),
                      persist_path=None if persist_path is None else os.fspath(persist_path),
                      epsilon=epsilon, n_iter=n_iter, seed=seed, projection_dim=projection_dim)
        fields = dict(subject_key=subject_key, metadata_keys=metadata_keys, filter=filter,
                      fetch_k=20 if fetch_k is None else fetch_k, lambda_mult=lambda_mult, n_nearest=n_nearest)
        args, examples, ids, texts, attrs = cls._prepare(examples, embeddings, vectorstore_cls, k, input_keys, ids,
                                                         id_key, example_keys, vectorstore_kwargs, vectorstore_cls_kwargs,
                                                         engine, fields, subjects, metadata, "afrom_examples")
        vectors = await embeddings.aembed_documents(texts) if texts else []
        return await run_in_executor(None, cls._finish, args, examples, ids, vectors, attrs)

    @staticmethod
    def _strategy_for(strategy: Any, fetch_k: Any) -> str:
        """``fetch_k`` is ``MaxMarginalRelevanceExampleSelector``'s: given without a strategy it
        means ``mmr``; given with ``erase`` or ``similarity`` it would be ignored, so it raises."""
        if strategy is _UNSET:
            return "similarity" if fetch_k is None else "mmr"
        if fetch_k is not None and strategy != "mmr":
            raise ERASEError(f"fetch_k={fetch_k!r} applies to strategy 'mmr' (maximal marginal relevance), not {strategy!r}")
        return strategy

    @staticmethod
    def _refuse_existing(path: str) -> None:
        if os.path.exists(path) and os.path.getsize(path) > 0:
            raise ERASEError(
                f"{path} already holds an example store; reopen it with ERASEExampleSelector.open(path, embeddings)"
            )

    @classmethod
    def open(
        cls,
        persist_path: str | os.PathLike,
        embeddings: Embeddings,
        *,
        k: int | None = None,
        input_keys: list[str] | None = None,
        example_keys: list[str] | None = None,
        id_key: str | None = None,
        subject_key: str | None = None,
        metadata_keys: list[str] | None = None,
        filter: dict | None = None,  # noqa: A002
        n_nearest: int = 0,
    ) -> "ERASEExampleSelector":
        """Reopen a selector saved with ``persist_path``: nothing is re-embedded (the stored
        vectors are used). Pass the same ``embeddings``, ``input_keys``, ``id_key``,
        ``subject_key``, ``metadata_keys`` and ``n_nearest`` as when it was built: they are not stored (the
        examples' subjects and metadata are). ``k``/``strategy`` come from the store."""
        index = ExampleIndex.open(persist_path)
        try:
            extra: dict[str, Any] = {} if k is None else {"k": k}
            return cls(embeddings=embeddings, index=index, persist_path=os.fspath(persist_path), input_keys=input_keys,
                       example_keys=example_keys, id_key=id_key, subject_key=subject_key, metadata_keys=metadata_keys,
                       filter=filter, n_nearest=n_nearest, **extra)
        except Exception:
            index.close()
            raise

    def __repr__(self) -> str:
        return (
            f"ERASEExampleSelector(strategy={self.strategy!r}, k={self.k}, n={len(self._engine)}, "
            f"input_keys={self.input_keys!r}, example_keys={self.example_keys!r}, persist_path={self.persist_path!r})"
        )
