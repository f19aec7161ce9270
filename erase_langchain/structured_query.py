"""``langchain_core.structured_query`` in ERASE's filter language, for self-querying retrieval.

A self-query retriever has an LLM write a :class:`~langchain_core.structured_query.StructuredQuery`
(a query string plus a filter of ``Comparison``/``Operation`` nodes) and hands it to a
``Visitor`` that translates it for the vector store. :class:`ERASETranslator` is that visitor
for :class:`~erase_langchain.ERASEVectorStore` (and ``ERASERetriever``/``ERASEExampleSelector``,
which take the same filters)::

    query, kwargs = ERASETranslator().visit_structured_query(structured_query)
    docs = store.search(query, "similarity", **kwargs)      # kwargs: {"filter": {...}, "k": ...}

The translation is one-to-one into :mod:`erase_core.filters`: comparators ``eq ne gt gte lt lte
in nin`` become the operators of the same name, ``contain`` becomes ``$contains`` (list element
or substring), ``like`` becomes ``$like`` (SQL LIKE: ``%`` and ``_`` are wildcards); operations
``and``/``or``/``not`` become ``$and``/``$or``/``$not`` (``not`` of several arguments: none of
them holds). A date value as the query-constructor parser writes it (``{"type": "date",
"date": "2024-05-01"}``, or ``"datetime"``) becomes its ISO string, which orders correctly
against ISO strings in the metadata. The result is validated: a value the language cannot
compare raises :class:`~erase_core.ERASEError`.
"""

from __future__ import annotations

from typing import Any

from langchain_core.structured_query import Comparator, Comparison, Operation, Operator, StructuredQuery, Visitor

from erase_core import ERASEError
from erase_core.filters import check_filter

__all__ = ["ERASETranslator"]

_COMPARATORS = {
    Comparator.EQ: "$eq", Comparator.NE: "$ne", Comparator.GT: "$gt", Comparator.GTE: "$gte",
    Comparator.LT: "$lt", Comparator.LTE: "$lte", Comparator.IN: "$in", Comparator.NIN: "$nin",
    Comparator.CONTAIN: "$contains", Comparator.LIKE: "$like",
}
_OPERATORS = {Operator.AND: "$and", Operator.OR: "$or", Operator.NOT: "$not"}


def _value(value: Any) -> Any:
    """A structured-query value as a metadata value (dates as ISO strings)."""
    if isinstance(value, dict) and value.get("type") in ("date", "datetime") and set(value) == {"type", value["type"]}:
        return value[value["type"]]
    if isinstance(value, (list, tuple)):
        return [_value(v) for v in value]
    return value


class ERASETranslator(Visitor):
    """Translates a ``StructuredQuery`` (or its filter) into ERASE's filter dict."""

    allowed_comparators = tuple(_COMPARATORS)
    allowed_operators = tuple(_OPERATORS)

    def visit_operation(self, operation: Operation) -> dict:
        self._validate_func(operation.operator)
        arguments = [a.accept(self) for a in operation.arguments]
        if operation.operator == Operator.NOT and len(arguments) == 1:
            return {"$not": arguments[0]}
        return {_OPERATORS[operation.operator]: arguments}

    def visit_comparison(self, comparison: Comparison) -> dict:
        self._validate_func(comparison.comparator)
        if comparison.attribute.startswith("$"):
            raise ERASEError(f"attribute {comparison.attribute!r}: names starting with '$' are the filter language's operators")
        return {comparison.attribute: {_COMPARATORS[comparison.comparator]: _value(comparison.value)}}

    def visit_structured_query(self, structured_query: StructuredQuery) -> tuple[str, dict]:
        """``(query, search_kwargs)``: ``{"filter": ...}`` when there is a filter, ``{"k": limit}``
        when there is a limit (the keywords ``VectorStore.search`` passes on)."""
        kwargs: dict[str, Any] = {}
        if structured_query.filter is not None:
            where = structured_query.filter.accept(self)
            check_filter(where)
            kwargs["filter"] = where
        if structured_query.limit is not None:
            kwargs["k"] = structured_query.limit
        return structured_query.query, kwargs
