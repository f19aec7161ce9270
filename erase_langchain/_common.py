"""Helpers shared by the LangChain classes: building/opening the engine, the embedding
model's identity, ids, subjects and documents as the engine takes them, and the selection
fingerprint. What a selection or a forget means is decided in the core
(:mod:`erase_core.requests`); these only translate LangChain's arguments."""

from __future__ import annotations

import hashlib
import json
import uuid
import warnings
from typing import Any, Iterable, Sequence

import numpy as np

from erase_core.storage.locate import store_exists
from erase_core import ERASEError, ExampleIndex, SelectedExample, check_id
from erase_core.filters import check_metadata
from erase_core.requests import check_select_filter

#: Engine parameters mirrored as fields on the LangChain classes.
ENGINE_FIELDS = ("strategy", "epsilon", "n_iter", "seed", "projection_dim")


def build_or_open_index(model: Any, *, allow_open: bool) -> ExampleIndex:
    """Create the engine for a LangChain object from its fields (``k``, ``strategy``, ...,
    ``persist_path``); reopen ``persist_path`` when it exists and ``allow_open`` is true."""
    path = model.persist_path
    if path is not None and store_exists(path):
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


def check_search_filter(index_or_strategy: ExampleIndex | str, filter: dict | None) -> dict | None:  # noqa: A002
    """A metadata filter for selections under the engine's strategy (the core's rule:
    :func:`erase_core.requests.check_select_filter`)."""
    strategy = index_or_strategy if isinstance(index_or_strategy, str) else index_or_strategy.strategy
    return check_select_filter(strategy, filter)


def selection_fingerprint(selected: Sequence[SelectedExample]) -> str:
    """Hash of the ordered (id, payload) list: equal exactly when the selection is equal."""
    body = json.dumps([[s.id, s.payload] for s in selected], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(body.encode()).hexdigest()[:32]


def as_id_list(ids: str | Iterable[str]) -> list[str]:
    """One id or an iterable of ids as a list, each checked by the one id rule (a non-empty
    ``str``; see ``erase_core.check_id``): nothing is converted."""
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
