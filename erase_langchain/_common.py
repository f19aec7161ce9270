"""Helpers shared by the selector and the retriever: building/opening the engine, locked
selection that tolerates small pools, and the selection fingerprint."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
import warnings
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from erase_core import ERASEError, ExampleIndex, SelectedExample
from erase_core._validation import check_id
from erase_core.filters import check_filter, check_metadata

#: Engine parameters mirrored as fields on the LangChain classes.
ENGINE_FIELDS = ("strategy", "epsilon", "n_iter", "seed", "projection_dim")


def engine_lock(index: ExampleIndex):
    """The engine's re-entrant lock, so that "look at the pool size, then select" is atomic."""
    return index.lock


def build_or_open_index(model: Any, *, allow_open: bool) -> ExampleIndex:
    """Create the engine for a LangChain object from its fields (``k``, ``strategy``, ...,
    ``persist_path``); reopen ``persist_path`` when it exists and ``allow_open`` is true."""
    path = model.persist_path
    if path is not None and Path(path).exists() and os.path.getsize(path) > 0:
        if not allow_open:
            raise ERASEError(
                f"{path} already holds an example store; reopen it with "
                f"{type(model).__name__}.open({str(path)!r}, embeddings) instead of rebuilding it"
            )
        index = ExampleIndex.open(path)
        check_matches(model, index)
        return index
    return ExampleIndex(
        model.k, strategy=model.strategy, epsilon=model.epsilon, n_iter=model.n_iter, seed=model.seed,
        projection_dim=model.projection_dim, path=path,
    )


def check_matches(model: Any, index: ExampleIndex) -> None:
    """Fields set explicitly on ``model`` must agree with the engine they wrap; the rest are
    copied from the engine so that they describe it."""
    explicit = model.model_fields_set
    for name in ENGINE_FIELDS:
        mine, theirs = getattr(model, name), getattr(index, name)
        if name in explicit and mine is not None and mine != theirs:
            raise ERASEError(f"{name}={mine!r} was given, but the example index has {name}={theirs!r}")
        object.__setattr__(model, name, theirs)
    if "k" not in explicit:
        object.__setattr__(model, "k", index.k)
    elif index.strategy == "erase" and model.k > index.k:
        raise ERASEError(
            f"k={model.k} was given, but the index clusters into k={index.k}: strategy 'erase' "
            f"selects at most {index.k} examples"
        )


EMBEDDING_NOTE = "langchain.embeddings"


def embedding_identity(embeddings: Any) -> str:
    """Which embedding model this is: its class and, where it says, its model name."""
    cls = type(embeddings)
    name = next((getattr(embeddings, a) for a in ("model_name", "model", "model_id") if isinstance(getattr(embeddings, a, None), str)), None)
    return json.dumps({"class": f"{cls.__module__}.{cls.__qualname__}", "model": name}, sort_keys=True)


def check_embedding_identity(index: ExampleIndex, embeddings: Any) -> None:
    """Record the embedding model in the index the first time; warn when another one opens it
    (vectors of different models are not comparable, even at the same width)."""
    mine = embedding_identity(embeddings)
    recorded = index.note(EMBEDDING_NOTE)
    if recorded is None:
        if len(index) == 0 or index.path is None:
            index.set_note(EMBEDDING_NOTE, mine)
        return
    if recorded != mine:
        then, now = json.loads(recorded), json.loads(mine)
        warnings.warn(
            f"this example store was built with embedding model {then['class']} ({then['model']}); it is used with "
            f"{now['class']} ({now['model']}): similarity between their vectors is meaningless unless they are the same model",
            UserWarning, stacklevel=4,
        )


def check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ERASEError(f"k must be a positive integer, got {k!r}")
    return k


def check_mmr(fetch_k: Any, lambda_mult: Any) -> None:
    if isinstance(fetch_k, bool) or not isinstance(fetch_k, int) or fetch_k < 1:
        raise ERASEError(f"fetch_k must be a positive integer, got {fetch_k!r}")
    if isinstance(lambda_mult, bool) or not isinstance(lambda_mult, (int, float)) or not 0.0 <= lambda_mult <= 1.0:
        raise ERASEError(f"lambda_mult must be a number in [0, 1], got {lambda_mult!r}")


def check_search_filter(index_or_strategy: ExampleIndex | str, filter: dict | None) -> dict | None:  # noqa: A002
    """Validate a metadata filter (``None``: no filter); a filter with ``erase`` is an error."""
    if filter is None:
        return None
    check_filter(filter)
    strategy = index_or_strategy if isinstance(index_or_strategy, str) else index_or_strategy.strategy
    if strategy == "erase":
        raise ERASEError(
            "filter= applies to strategies 'similarity' and 'mmr' only: 'erase' selects one fixed set for every "
            "query, so it cannot restrict it per query (use strategy='similarity', or one store per tenant)"
        )
    return filter


def select_available(index: ExampleIndex, query_vector: Sequence[float] | None, k: int,
                     filter: dict | None = None, *, fetch_k: int = 20, lambda_mult: float = 0.5,  # noqa: A002
                     ) -> list[SelectedExample]:
    """``index.select`` that, like LangChain's vector-store selectors, returns what exists.

    * ``similarity``: the top ``min(k, pool)`` examples; an empty pool gives ``[]``. With
      ``filter`` (metadata conditions, see :mod:`erase_core.filters`) only matching examples
      are ranked, and fewer than ``k`` come back when fewer match.
    * ``mmr``: the same, picked by maximal marginal relevance among the ``fetch_k`` most similar.
    * ``erase``: the first ``k`` of the fixed cluster-ordered set. While the pool is smaller
      than the index's ``k`` there is no clustering yet and the fixed set is the whole pool
      in id order (the order ``ExampleIndex.fingerprint`` uses). ``k`` above the index's
      ``k`` is an error: there are only that many clusters. A filter is an error.
    """
    k = check_k(k)
    filter = check_search_filter(index, filter)  # noqa: A001
    if query_vector is None and filter is None:
        now = index.select_nowait(k)  # the fixed set, not held up by a forget in another thread
        if now is not None:
            return now
    with engine_lock(index):
        n = len(index)
        if n == 0:
            return []
        if index.strategy != "erase":
            if query_vector is None:
                raise ERASEError(f"strategy {index.strategy!r} needs a query to rank the examples by")
            return index.search(query_vector, k, filter=filter, mmr=index.strategy == "mmr", fetch_k=fetch_k,
                                lambda_mult=lambda_mult)
        if k > index.k:
            raise ERASEError(
                f"strategy 'erase' selects at most the index's k={index.k} examples (one per cluster); got k={k}"
            )
        if n < index.k:
            return [SelectedExample(i, index.get(i), _cosine(index, i, query_vector)) for i in index.ids[:k]]
        return index.select(query_vector, k=k)


def _cosine(index: ExampleIndex, example_id: str, query_vector) -> float:
    if query_vector is None:
        return 0.0
    q = np.asarray(query_vector, dtype=np.float64).ravel()
    norm = np.linalg.norm(q)
    return float(index.vector(example_id).astype(np.float64) @ (q / norm)) if norm > 0 else 0.0


def selection_fingerprint(selected: Sequence[SelectedExample]) -> str:
    """Hash of the ordered (id, payload) list: equal exactly when the selection is equal."""
    body = json.dumps([[s.id, s.payload] for s in selected], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(body.encode()).hexdigest()[:32]


def as_id_list(ids: str | Iterable[str]) -> list[str]:
    """One id or an iterable of ids as a list, each checked by the one id rule (a non-empty
    ``str``; see ``erase_core._validation.check_id``): nothing is converted."""
    if isinstance(ids, str) or not isinstance(ids, Iterable) or isinstance(ids, bytes):
        return [check_id(ids)]
    return [check_id(i, f"ids[{j}]") for j, i in enumerate(ids)]


def check_new_ids(ids: Sequence[Any] | None, n: int, what: str = "examples", *,
                  generate: bool = False) -> list[str] | None:
    """Ids given for ``n`` new items: ``None`` (none given), else one per item, each a
    non-empty ``str`` (never converted). ``generate``: a ``None`` entry gets a new UUID (the
    LangChain vector-store convention for documents without an id)."""
    if ids is None:
        return None
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
        raise ERASEError(f"ids must be a list of strings (one per item), not {type(ids).__name__} {ids!r}")
    ids = list(ids)
    if len(ids) != n:
        raise ERASEError(f"got {len(ids)} ids for {n} {what}")
    return [str(uuid.uuid4()) if i is None and generate else check_id(i, f"ids[{j}]") for j, i in enumerate(ids)]


def document_rows(documents: Sequence[Any], ids: Sequence[Any] | None, subjects: Sequence[Any] | None,
                  subject_key: str | None) -> tuple[list[str], list[dict], list[str | None], list[dict]]:
    """Ids, payloads, subjects and metadata of LangChain ``Document`` s, validated before
    anything is embedded; one rule for the retriever and the vector store.

    Ids: ``ids=`` (one per document), else each ``Document.id``; a missing one (``None``, or an
    empty ``Document.id``) is a new UUID, as in LangChain's vector stores; every other id must
    be a non-empty ``str``.
    Payload: ``{"page_content", "metadata"}``; metadata must be JSON values."""
    documents = list(documents)
    if ids is None:
        ids = [d.id or None for d in documents]  # LangChain's rule: a falsy Document.id is no id
    ids = check_new_ids(ids, len(documents), "documents", generate=True) or []
    metadata = [check_metadata(d.metadata, f"documents[{j}].metadata") for j, d in enumerate(documents)]
    if subjects is None:
        subjects = [subject_from(m, subject_key, f"documents[{j}].metadata") for j, m in enumerate(metadata)]
    else:
        subjects = subjects_given(subjects, len(documents), "document")
    payloads = [{"page_content": d.page_content, "metadata": m} for d, m in zip(documents, metadata)]
    return ids, payloads, subjects, metadata


def to_float_rows(vectors: Sequence[Sequence[float]], n: int) -> np.ndarray:
    arr = np.asarray(vectors, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] != n:
        raise ERASEError(f"the embeddings returned shape {arr.shape} for {n} texts; expected ({n}, dim)")
    return arr


def as_subject(value: Any, what: str = "subject") -> str:
    """A subject as the engine stores it: a non-empty string; an integer (a numeric user id)
    is accepted and stored as its decimal string, so ``4711`` and ``"4711"`` are one subject."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ERASEError(f"{what} must be a string or an integer; got {value!r}")
    text = str(value)
    if not text:
        raise ERASEError(f"{what} must not be empty")
    return text


def subject_from(fields: dict[str, Any], key: str | None, what: str) -> str | None:
    """The subject held in ``fields[key]`` (``None`` when there is no key, no field or a None value)."""
    if key is None or fields.get(key) is None:
        return None
    return as_subject(fields[key], f"{what}[{key!r}]")


def subjects_given(subjects: Any, n: int, what: str) -> list[str | None]:
    """Explicit ``subjects=``: one per item (a list, not a single string), each checked."""
    if isinstance(subjects, (str, bytes)):
        raise ERASEError(f"subjects must be a list (one per {what}), not a single string")
    subjects = list(subjects)
    if len(subjects) != n:
        raise ERASEError(f"got {len(subjects)} subjects for {n} {what}s")
    return [None if s is None else as_subject(s, f"subjects[{j}]") for j, s in enumerate(subjects)]
