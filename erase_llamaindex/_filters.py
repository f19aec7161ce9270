"""Node attributes, and LlamaIndex ``MetadataFilters`` in the core's filter language.

What the index records for each node, besides its payload:

* **subject** = the node's ``ref_doc_id`` (its SOURCE document), so that ``delete_ref_doc`` is
  ``ExampleIndex.forget_subject``: exact, one transaction, one audit entry. A node without a
  source document has no subject.
* **metadata** = ``node.metadata`` as JSON, the form ``SimpleVectorStore`` filters on
  (``model_dump(mode="json")``: a tuple or set becomes a list, a date its ISO string, NaN and
  infinities ``None``). A value pydantic cannot serialise is left out (it stays in the node).

Filters. Every ``FilterOperator`` and ``FilterCondition`` (AND, OR, NOT), nested
``MetadataFilters`` included, is translated into :mod:`erase_core.filters`' language so that the
matching nodes are the ones ``SimpleVectorStore`` lets through (its ``build_metadata_filter_fn``),
with Python's comparisons: ``1``, ``1.0`` and ``True`` are equal, ``True > 0``, a missing or
``None`` value matches only NE and NIN, CONTAINS/ANY/ALL are Python's ``in`` (list element,
substring, dict key), IS_EMPTY is missing, ``None``, ``""`` or ``[]``. Two deliberate
differences: where ``SimpleVectorStore`` raises ``TypeError`` for values that do not compare
(``"a" > 1``, TEXT_MATCH on a number) the condition is simply false; and nested
``MetadataFilters``, which it refuses, are supported. An operand of the wrong type for its
operator (IN without a list, GT with a list, TEXT_MATCH without a string) raises
:class:`~erase_core.ERASEError` at once, on every node count. A plain dict is taken as a core
filter, with the core's JSON rule (``true`` is not ``1``).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from llama_index.core.schema import BaseNode
from llama_index.core.vector_stores.types import FilterCondition, FilterOperator, MetadataFilter, MetadataFilters
from pydantic import TypeAdapter
from pydantic_core import PydanticSerializationError

from erase_core import ERASEError
from erase_core.filters import check_filter

#: A translated filter: a core filter dict (see :mod:`erase_core.filters`).
Where = dict

_ANY = TypeAdapter(Any)
_MAX_SPELLINGS = 256  # alternatives one list value may expand to (2 per 0/1 element)
_ORDER = {
    FilterOperator.GT: ("$gt", lambda a, b: a > b), FilterOperator.GTE: ("$gte", lambda a, b: a >= b),
    FilterOperator.LT: ("$lt", lambda a, b: a < b), FilterOperator.LTE: ("$lte", lambda a, b: a <= b),
}


def node_subject(node: BaseNode) -> str | None:
    """The subject recorded for a node: its ``ref_doc_id`` (None when it has no source)."""
    ref = node.ref_doc_id
    return ref if isinstance(ref, str) and ref else None


def flat_metadata(metadata: dict | None) -> dict:
    """The filterable metadata of a node: its JSON form, as ``SimpleVectorStore`` records it."""
    out = {}
    for key, value in (metadata or {}).items():
        if not isinstance(key, str):
            continue
        try:
            out[key] = _ANY.dump_python(value, mode="json")
        except (PydanticSerializationError, ValueError, TypeError, RecursionError):
            continue
    return out


def _spellings(value: Any, what: str) -> list[Any]:
    """Every JSON value that Python's ``==`` finds equal to ``value`` (``1``: also ``true``)."""
    if value is None or isinstance(value, str):
        return [value]
    if isinstance(value, bool):
        return [value, int(value)]
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            return []  # no recorded value is NaN or infinite
        return [value] + [b for b in (False, True) if b == value]
    if isinstance(value, (list, tuple)):
        options = [_spellings(v, what) for v in value]
        if math.prod(len(o) for o in options) > _MAX_SPELLINGS:
            raise ERASEError(f"{what}: the list value {value!r} has too many 0/1 elements to compare by Python equality")
        return [list(p) for p in itertools.product(*options)]
    raise ERASEError(f"{what}: value {value!r} ({type(value).__name__}) is not supported; filter values are str, int, float or lists of them")


def _equal_to_any(values: list[Any], what: str) -> list[Any]:
    """The spellings of values equal to one of ``values`` (``None`` never equals a metadata value)."""
    return [s for v in values if v is not None for s in _spellings(v, what)]


def _contains(key: str, value: Any, what: str) -> dict:
    """``value in metadata[key]``: a list element, a substring or a dict key (Python's ``in``)."""
    return {"$or": [{key: {"$contains": s}} for s in _spellings(value, what)]}


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _need_list(f: MetadataFilter, what: str) -> list:
    if not isinstance(f.value, (list, tuple)):
        raise ERASEError(f"{what}: {f.operator.name} needs a list value, got {f.value!r}")
    return list(f.value)


def _need_str(f: MetadataFilter, what: str) -> str:
    if not isinstance(f.value, str):
        raise ERASEError(f"{what}: {f.operator.name} needs a string value, got {f.value!r}")
    return f.value


def _from_filter(f: MetadataFilter) -> dict:
    key, op, value = f.key, f.operator, f.value
    what = f"filter {op.name} on {key!r}"
    if not isinstance(key, str) or key.startswith("$"):
        raise ERASEError(f"{what}: metadata keys starting with '$' cannot be filtered (they are the filter language's operators)")
    if op == FilterOperator.EQ:
        return {key: {"$in": _equal_to_any([value], what)}}
    if op == FilterOperator.NE:
        return {key: {"$nin": _equal_to_any([value], what)}}
    if op == FilterOperator.IN:
        return {key: {"$in": _equal_to_any(_need_list(f, what), what)}}
    if op == FilterOperator.NIN:
        return {key: {"$nin": _equal_to_any(_need_list(f, what), what)}}
    if op in _ORDER:
        core_op, compare = _ORDER[op]
        if isinstance(value, str):
            return {key: {core_op: value}}
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise ERASEError(f"{what} needs a finite number or a string, got {value!r}")
        bools = [b for b in (False, True) if compare(b, value)]  # True > 0 in Python
        return {"$or": [{key: {core_op: value}}, {key: {"$in": bools}}]} if bools else {key: {core_op: value}}
    if op == FilterOperator.CONTAINS:
        return _contains(key, value, what)
    if op == FilterOperator.ANY:
        return {"$or": [_contains(key, v, what) for v in _need_list(f, what)]}
    if op == FilterOperator.ALL:
        present = {key: {"$exists": True, "$ne": None}}  # ALL of [] holds for any value but a missing/None one
        return {"$and": [present, *(_contains(key, v, what) for v in _need_list(f, what))]}
    if op == FilterOperator.TEXT_MATCH:
        return {key: {"$like": "%" + _escape_like(_need_str(f, what)) + "%"}}
    if op == FilterOperator.TEXT_MATCH_INSENSITIVE:
        return {key: {"$ilike": "%" + _escape_like(_need_str(f, what).lower()) + "%"}}
    if op == FilterOperator.IS_EMPTY:
        return {"$or": [{key: {"$exists": False}}, {key: {"$in": [None, "", []]}}]}
    raise ERASEError(f"unsupported filter operator {getattr(op, 'value', op)!r} on {key!r}")


def _from_metadata_filters(filters: MetadataFilters) -> dict:
    parts = []
    for f in filters.filters:
        if isinstance(f, MetadataFilters):
            parts.append(_from_metadata_filters(f))
        elif isinstance(f, MetadataFilter):
            parts.append(_from_filter(f))
        else:
            raise ERASEError(f"expected MetadataFilter or MetadataFilters entries, got {type(f).__name__}")
    condition = filters.condition if filters.condition is not None else FilterCondition.AND
    if condition == FilterCondition.AND:
        return {"$and": parts}
    if condition == FilterCondition.OR:
        return {"$or": parts}
    if condition == FilterCondition.NOT:
        return {"$not": parts}  # none of them holds
    raise ERASEError(f"unsupported filter condition {getattr(condition, 'value', condition)!r}")


def normalise(filters: Any) -> Where | None:
    """A ``MetadataFilters`` (or ``MetadataFilter``, or core filter dict) as a validated core
    filter; None for "no filter" (``None``, or a MetadataFilters with no filters, which
    LlamaIndex treats as no filter)."""
    if filters is None:
        return None
    if isinstance(filters, MetadataFilter):
        filters = MetadataFilters(filters=[filters])
    if isinstance(filters, MetadataFilters):
        if not filters.filters:
            return None
        where = _from_metadata_filters(filters)
    elif isinstance(filters, dict):
        where = filters
    else:
        raise ERASEError(
            f"filters must be a llama_index MetadataFilters (or a core filter dict); got {type(filters).__name__}"
        )
    check_filter(where)
    return where


def combine(a: Where | None, b: Where | None) -> Where | None:
    """Both filters must hold."""
    if a is None or b is None:
        return b if a is None else a
    return {"$and": [a, b]}


def to_core(where: Where) -> dict:
    """The core filter dict (a translated filter already is one)."""
    return where
