"""Node attributes and LlamaIndex ``MetadataFilters`` in terms of :mod:`erase_core.filters`.

What the index records for each node, besides its payload:

* **subject** = the node's ``ref_doc_id`` (its SOURCE document), so that ``delete_ref_doc`` is
  ``ExampleIndex.forget_subject``: exact, one transaction, one audit entry. A node without a
  source document has no subject.
* **metadata** = the flat part of ``node.metadata``: the values that are ``str``, ``int``,
  ``float``, ``bool`` or ``None`` under string keys. Nested values (lists, dicts) are not
  recorded as filterable metadata (they stay in the node, and come back with it); no EQ/IN
  filter can match them anyway, in LlamaIndex's own semantics (``["a"] == "a"`` is False,
  ``["a"] in ["a", "b"]`` is False), so leaving them out changes no result.

Filters. A LlamaIndex ``MetadataFilters`` (or a core filter dict) becomes a core filter dict
with LlamaIndex's semantics for the operators it supports: ``EQ`` (``metadata_value == value``)
and ``IN`` (``metadata_value in value``), combined with ``AND``. Python equality is what
LlamaIndex compares with, so ``1``, ``1.0`` and ``True`` are equal: a numeric value is expanded
to every JSON spelling that equals it (``{"$in": [1, 1.0, true]}``), since the core compares
canonical JSON. Everything else (NE, GT, LT, NIN, CONTAINS, ANY, ALL, TEXT_MATCH, IS_EMPTY,
OR, NOT, nested MetadataFilters, a ``None`` or list value for EQ) raises
:class:`~erase_core.ERASEError`: a filter is never silently ignored or half applied.
"""

from __future__ import annotations

import math
from typing import Any

from llama_index.core.schema import BaseNode
from llama_index.core.vector_stores.types import FilterCondition, FilterOperator, MetadataFilter, MetadataFilters

from erase_core import ERASEError
from erase_core.filters import check_filter, value_key

_SCALARS = (str, int, float, bool, type(None))
_SUPPORTED = "EQ and IN conditions combined with AND"

#: A normalised filter: per metadata field, the accepted values by canonical JSON key.
Where = dict[str, dict[str, Any]]


def node_subject(node: BaseNode) -> str | None:
    """The subject recorded for a node: its ``ref_doc_id`` (None when it has no source)."""
    ref = node.ref_doc_id
    return ref if isinstance(ref, str) and ref else None


def flat_metadata(metadata: dict | None) -> dict:
    """The filterable part of a node's metadata (flat scalar values under string keys)."""
    return {
        k: v for k, v in (metadata or {}).items()
        if isinstance(k, str) and isinstance(v, _SCALARS) and not (isinstance(v, float) and not math.isfinite(v))
    }


def _equal_values(value: Any, what: str) -> list[Any]:
    """Every JSON-storable scalar that Python's ``==`` finds equal to ``value``."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, bool) or isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            return []  # no stored metadata value is NaN or infinite: nothing can match
        out: list[Any] = [value]
        if isinstance(value, float) and value.is_integer():
            out.append(int(value))
        elif not isinstance(value, float):
            as_float = float(value)
            if as_float == value:
                out.append(as_float)
        if value == 0:
            out += [0, 0.0, -0.0, False]
        elif value == 1:
            out += [1, 1.0, True]
        return out
    if value is None:
        raise ERASEError(
            f"{what}: a None value is not supported (LlamaIndex's EQ/IN never match a missing or None "
            "metadata value, and other stores differ): filter on a real value"
        )
    raise ERASEError(
        f"{what}: value {value!r} ({type(value).__name__}) is not supported; filter values are str, int, "
        "float or bool (nested metadata values are not filterable)"
    )


def _values(values: list[Any], what: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for v in values:
        for e in _equal_values(v, what):
            out.setdefault(value_key(e), e)
    return out


def _and(into: Where, field: str, accepted: dict[str, Any]) -> None:
    """Add a condition on ``field``; two conditions on one field must both hold (intersection)."""
    if field in into:
        into[field] = {key: v for key, v in into[field].items() if key in accepted}
    else:
        into[field] = accepted


def _from_metadata_filters(filters: MetadataFilters) -> Where:
    condition = filters.condition if filters.condition is not None else FilterCondition.AND
    if condition != FilterCondition.AND:
        raise ERASEError(
            f"unsupported filter condition {getattr(condition, 'value', condition)!r}: ERASE supports {_SUPPORTED}"
        )
    where: Where = {}
    for f in filters.filters:
        if isinstance(f, MetadataFilters):
            raise ERASEError(f"nested MetadataFilters are not supported: ERASE supports {_SUPPORTED}")
        if not isinstance(f, MetadataFilter):
            raise ERASEError(f"expected MetadataFilter entries, got {type(f).__name__}")
        what = f"filter on {f.key!r}"
        if f.operator == FilterOperator.EQ:
            if isinstance(f.value, list):
                raise ERASEError(f"{what}: EQ with a list value is not supported (use FilterOperator.IN for 'one of')")
            accepted = _values([f.value], what)
        elif f.operator == FilterOperator.IN:
            if not isinstance(f.value, list):
                raise ERASEError(f"{what}: IN needs a list value, got {f.value!r}")
            accepted = _values(f.value, what)
        else:
            raise ERASEError(
                f"unsupported filter operator {f.operator.value!r} ({f.operator.name}) on {f.key!r}: "
                f"ERASE supports {_SUPPORTED}"
            )
        _and(where, f.key, accepted)
    return where


def _from_dict(where_dict: dict) -> Where:
    check_filter(where_dict)  # the core's own validation (and its error messages)
    where: Where = {}
    for field, cond in where_dict.items():
        what = f"filter on {field!r}"
        if isinstance(cond, dict):
            (op, arg), = cond.items()
            accepted = _values(list(arg), what) if op == "$in" else _values([arg], what)
        else:
            accepted = _values([cond], what)
        _and(where, field, accepted)
    return where


def normalise(filters: Any) -> Where | None:
    """A ``MetadataFilters`` or core filter dict as a :data:`Where`; None for "no filter"
    (``None``, or a MetadataFilters with no filters, which LlamaIndex treats as no filter)."""
    where = _normalise(filters)
    if where is not None:
        check_filter(to_core(where))  # e.g. a "$"-prefixed key: rejected now, not at the first query
    return where


def _normalise(filters: Any) -> Where | None:
    if filters is None:
        return None
    if isinstance(filters, MetadataFilter):
        filters = MetadataFilters(filters=[filters])
    if isinstance(filters, MetadataFilters):
        return _from_metadata_filters(filters) if filters.filters else None
    if isinstance(filters, dict):
        return _from_dict(filters)
    raise ERASEError(
        f"filters must be a llama_index MetadataFilters (or a core filter dict); got {type(filters).__name__}"
    )


def combine(a: Where | None, b: Where | None) -> Where | None:
    """Both filters must hold."""
    if a is None or b is None:
        return b if a is None else a
    out = {f: dict(v) for f, v in a.items()}
    for field, accepted in b.items():
        _and(out, field, accepted)
    return out


def to_core(where: Where) -> dict:
    """The core filter dict (canonical: values sorted, plain equality for a single value)."""
    out: dict = {}
    for field in sorted(where):
        accepted = where[field]
        if len(accepted) == 1:
            out[field] = next(iter(accepted.values()))
        else:
            out[field] = {"$in": [accepted[key] for key in sorted(accepted)]}
    return out
