"""Example attributes (a subject and metadata) and the filter language that selects on them.

A *subject* is whoever the example belongs to (a customer, a tenant): a deletion request names
it. *Metadata* is a JSON object. A *filter* is a dict in the operator dialect LangChain's vector
stores share, one engine for every layer (selection, retrieval, ``forget_where``,
``erase forget --where``)::

    {"lang": "en"}                                   # equality (the same as {"lang": {"$eq": "en"}})
    {"lang": "en", "stars": {"$gte": 4}}             # several fields: all must hold
    {"tier": {"$in": ["gold", "silver"]}}
    {"$or": [{"lang": "en"}, {"$not": {"tenant": "acme"}}]}

Field operators: ``$eq $ne $gt $gte $lt $lte $in $nin $exists $contains $like $ilike`` (several
on one field must all hold); logical keys ``$and`` and ``$or`` (a list of filters; an empty
``$and`` matches everything, an empty ``$or`` nothing) and ``$not`` (a filter, or a list of
filters none of which may hold). Conditions are on top-level metadata fields.

Values compare as JSON values (one rule, decided here):

* equality: same JSON type and equal; numbers by value (``1`` equals ``1.0``), ``true`` is not
  ``1``, arrays and objects element by element. A missing field equals nothing (not even ``null``).
* ``$gt $gte $lt $lte``: the operand is a number or a string; a number compares with numbers
  (not booleans), a string with strings (code-point order); any other value, or a missing
  field, does not match.
* ``$ne`` and ``$nin`` are the negations of ``$eq`` and ``$in``: they match a missing field.
* ``$exists``: whether the field is present (``true``/``false``; present with ``null`` counts).
* ``$contains``: an array holding an element equal to the operand, a string holding the operand
  (a string) as a substring, or an object with the operand (a string) as a key (Python's ``in``).
* ``$like`` / ``$ilike``: SQL LIKE on strings (``%`` any run, ``_`` one character, ``\\``
  escapes); ``$ilike`` compares ``str.lower()`` of both sides.

Anything else (an unknown operator, an operand of the wrong type, a value that is not JSON) is
an error naming the problem, never silently ignored. The framework layers translate their own
languages into this one (LlamaIndex's ``MetadataFilters``, with Python's ``True == 1``, in
:mod:`erase_llamaindex._filters`; LangChain's ``structured_query`` in
:mod:`erase_langchain.structured_query`).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Callable, Collection

from ._validation import ERASEError

FIELD_OPERATORS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$contains", "$like", "$ilike")
LOGICAL_OPERATORS = ("$and", "$or", "$not")


def _normal(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, (list, tuple)):
        return [_normal(v) for v in value]
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    return value


def value_key(value: Any) -> str:
    """The canonical JSON of a metadata value (what equality compares; numbers by value)."""
    return json.dumps(_normal(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def check_subject(subject: Any, name: str = "subject") -> str | None:
    if subject is None:
        return None
    if not isinstance(subject, str) or not subject:
        raise ERASEError(f"{name} must be a non-empty string or None; got {subject!r}")
    return subject


def check_metadata(metadata: Any, name: str = "metadata") -> dict:
    """Metadata as it is stored: a dict with string keys and JSON values (str, int, float, bool,
    None, and lists/dicts of them), copied. Anything else raises, naming the field: nothing is
    converted silently (convert a datetime with ``isoformat()``, a numpy scalar with ``.item()``)."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise ERASEError(f"{name} must be a dict; got {type(metadata).__name__}")
    for key, value in metadata.items():
        if not isinstance(key, str):
            raise ERASEError(f"{name} has a non-string key {key!r}")
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            raise ERASEError(
                f"{name}[{key!r}] = {value!r} ({type(value).__name__}) is not a JSON value "
                "(str, int, float, bool, None, or lists/dicts of them); convert it before adding"
            ) from None
    return dict(metadata)


def attrs_json(subject: str | None, metadata: dict) -> str:
    """The stored form of an example's attributes ("" when it has none)."""
    if subject is None and not metadata:
        return ""
    return json.dumps({"m": metadata, "s": subject}, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def parse_attrs(text: str) -> tuple[str | None, dict]:
    if not text:
        return None, {}
    data = json.loads(text)
    return data.get("s"), data.get("m") or {}


# ---------------------------------------------------------------------------------- the engine
def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def like_pattern(pattern: str) -> re.Pattern:
    """A SQL LIKE pattern as a regular expression (``%``, ``_``, ``\\`` escapes the next character)."""
    out, chars = [], iter(pattern)
    for c in chars:
        if c == "\\":
            nxt = next(chars, None)
            if nxt is None:
                raise ERASEError(f"LIKE pattern {pattern!r} ends with the escape character '\\'")
            out.append(re.escape(nxt))
        elif c == "%":
            out.append(".*")
        elif c == "_":
            out.append(".")
        else:
            out.append(re.escape(c))
    return re.compile("".join(out), re.DOTALL)


class _Node:
    """A compiled filter node: ``matches`` one example's metadata; ``ids`` of an AttributeIndex."""

    def matches(self, metadata: dict) -> bool:
        raise NotImplementedError

    def ids(self, index: "AttributeIndex") -> set[str]:
        raise NotImplementedError


class _Leaf(_Node):
    """A test on the value of one present field (a missing field never matches a leaf)."""

    def __init__(self, field: str, test: Callable[[Any], bool], keys: Collection[str] | None = None) -> None:
        self.field, self.test, self.keys = field, test, keys  # keys: an equality set, looked up directly

    def matches(self, metadata: dict) -> bool:
        return self.field in metadata and self.test(metadata[self.field])

    def ids(self, index: "AttributeIndex") -> set[str]:
        by_key = index.by_value.get(self.field, {})
        out: set[str] = set()
        if self.keys is not None:
            for key in self.keys:
                out |= by_key.get(key, set())
            return out
        values = index.values.get(self.field, {})
        for key, members in by_key.items():
            if self.test(values[key]):
                out |= members
        return out


class _Not(_Node):
    def __init__(self, child: _Node) -> None:
        self.child = child

    def matches(self, metadata: dict) -> bool:
        return not self.child.matches(metadata)

    def ids(self, index: "AttributeIndex") -> set[str]:
        return set(index.universe).difference(self.child.ids(index))


class _And(_Node):
    def __init__(self, children: list[_Node]) -> None:
        self.children = children

    def matches(self, metadata: dict) -> bool:
        return all(c.matches(metadata) for c in self.children)

    def ids(self, index: "AttributeIndex") -> set[str]:
        if not self.children:
            return set(index.universe)
        out = self.children[0].ids(index)
        for c in self.children[1:]:
            if not out:
                break
            out &= c.ids(index)
        return out


class _Or(_Node):
    def __init__(self, children: list[_Node]) -> None:
        self.children = children

    def matches(self, metadata: dict) -> bool:
        return any(c.matches(metadata) for c in self.children)

    def ids(self, index: "AttributeIndex") -> set[str]:
        out: set[str] = set()
        for c in self.children:
            out |= c.ids(index)
        return out


def _json_operand(value: Any, what: str) -> None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        raise ERASEError(f"{what}: {value!r} ({type(value).__name__}) is not a JSON value") from None


def _equal_to(value: Any) -> tuple[Callable[[Any], bool], set[str]]:
    key = value_key(value)
    return (lambda v: value_key(v) == key), {key}


def _field_leaf(field: str, op: str, arg: Any) -> _Node:
    what = f"{op} on {field!r}"
    if op in ("$eq", "$ne"):
        _json_operand(arg, what)
        test, keys = _equal_to(arg)
        leaf = _Leaf(field, test, keys)
        return leaf if op == "$eq" else _Not(leaf)
    if op in ("$in", "$nin"):
        if not isinstance(arg, (list, tuple)):
            raise ERASEError(f"{what} needs a list of values; got {arg!r} ({type(arg).__name__})")
        _json_operand(list(arg), what)
        keys = {value_key(v) for v in arg}
        leaf = _Leaf(field, lambda v: value_key(v) in keys, keys)
        return leaf if op == "$in" else _Not(leaf)
    if op in ("$gt", "$gte", "$lt", "$lte"):
        compare = {"$gt": lambda a, b: a > b, "$gte": lambda a, b: a >= b,
                   "$lt": lambda a, b: a < b, "$lte": lambda a, b: a <= b}[op]
        if _is_number(arg):
            if not math.isfinite(arg):
                raise ERASEError(f"{what}: {arg!r} is not a JSON number")
            return _Leaf(field, lambda v: _is_number(v) and compare(v, arg))
        if isinstance(arg, str):
            return _Leaf(field, lambda v: isinstance(v, str) and compare(v, arg))
        raise ERASEError(f"{what} needs a number or a string; got {arg!r} ({type(arg).__name__})")
    if op == "$exists":
        if not isinstance(arg, bool):
            raise ERASEError(f"{what} needs true or false; got {arg!r}")
        leaf = _Leaf(field, lambda v: True)
        return leaf if arg else _Not(leaf)
    if op == "$contains":
        _json_operand(arg, what)
        key = value_key(arg)

        def contains(v: Any) -> bool:
            if isinstance(v, list):
                return any(value_key(e) == key for e in v)
            if isinstance(v, (str, dict)):
                return isinstance(arg, str) and arg in v
            return False

        return _Leaf(field, contains)
    if op in ("$like", "$ilike"):
        if not isinstance(arg, str):
            raise ERASEError(f"{what} needs a string pattern; got {arg!r} ({type(arg).__name__})")
        if op == "$like":
            rx = like_pattern(arg)
            return _Leaf(field, lambda v: isinstance(v, str) and rx.fullmatch(v) is not None)
        rx = like_pattern(arg.lower())
        return _Leaf(field, lambda v: isinstance(v, str) and rx.fullmatch(v.lower()) is not None)
    if op in LOGICAL_OPERATORS:
        raise ERASEError(f"{op} is a logical operator: use it at the top of a filter, e.g. {{{op!r}: [...]}}, not on field {field!r}")
    raise ERASEError(f"unsupported operator {op!r} on field {field!r} (supported: {', '.join(FIELD_OPERATORS)})")


def _condition(field: str, cond: Any) -> _Node:
    if isinstance(cond, dict):
        if not cond:
            raise ERASEError(f"the condition on {field!r} is an empty dict (give a value or an operator)")
        ops = [k for k in cond if isinstance(k, str) and k.startswith("$")]
        if len(ops) != len(cond):
            raise ERASEError(
                f"the condition on {field!r} is a dict that is not all operators: {cond!r} (to compare with an "
                "object, write {'$eq': {...}})"
            )
        leaves = [_field_leaf(field, op, arg) for op, arg in cond.items()]
        return leaves[0] if len(leaves) == 1 else _And(leaves)
    return _field_leaf(field, "$eq", cond)


def _filters(value: Any, op: str) -> list[_Node]:
    if not isinstance(value, (list, tuple)):
        raise ERASEError(f"{op} needs a list of filters; got {value!r} ({type(value).__name__})")
    return [_compile(v, f"an entry of {op}") for v in value]


def _compile(where: Any, what: str = "a filter") -> _Node:
    if not isinstance(where, dict):
        raise ERASEError(f"{what} must be a dict of metadata conditions; got {where!r} ({type(where).__name__})")
    if not where:
        raise ERASEError(f"{what} is an empty dict: give at least one condition")
    nodes: list[_Node] = []
    for key, cond in where.items():
        if not isinstance(key, str):
            raise ERASEError(f"filter key {key!r} is not a string")
        if key == "$and":
            nodes.append(_And(_filters(cond, key)))
        elif key == "$or":
            nodes.append(_Or(_filters(cond, key)))
        elif key == "$not":
            if isinstance(cond, dict):
                nodes.append(_Not(_compile(cond, "the filter of $not")))
            else:
                nodes.append(_Not(_Or(_filters(cond, key))))
        elif key.startswith("$"):
            raise ERASEError(
                f"unsupported logical operator {key!r} at the top of a filter (supported: {', '.join(LOGICAL_OPERATORS)}; "
                f"field operators go inside a field's condition, e.g. {{'field': {{{key!r}: ...}}}})"
            )
        else:
            nodes.append(_condition(key, cond))
    return nodes[0] if len(nodes) == 1 else _And(nodes)


class Filter:
    """A validated, compiled filter (see the module docstring for the language)."""

    __slots__ = ("where", "_root")

    def __init__(self, where: dict) -> None:
        self._root = _compile(where)
        self.where = where

    def matches(self, metadata: dict | None) -> bool:
        """Whether an example with this metadata matches (``None``: no metadata)."""
        return self._root.matches(metadata or {})

    def ids(self, index: "AttributeIndex") -> set[str]:
        """The ids in ``index`` whose metadata match."""
        return self._root.ids(index)


def check_filter(where: Any) -> Filter:
    """Validate a filter; returns it compiled (raises :class:`ERASEError` naming the problem)."""
    try:
        return Filter(where)
    except RecursionError:
        raise ERASEError("the filter is nested too deeply") from None


def matches(where: Any, metadata: dict | None) -> bool:
    """Whether metadata match the filter ``where`` (the rule every layer applies)."""
    return check_filter(where).matches(metadata)


class AttributeIndex:
    """Which examples have which subject and metadata values (for forget and filtered select).

    ``universe``: a live collection of every example id in the pool (a filter such as ``$ne``
    or ``$not`` matches examples with no metadata at all)."""

    def __init__(self, universe: Collection[str]) -> None:
        self.universe = universe
        self.attrs: dict[str, tuple[str | None, dict]] = {}
        self.by_subject: dict[str, set[str]] = {}
        self.by_value: dict[str, dict[str, set[str]]] = {}
        self.values: dict[str, dict[str, Any]] = {}  # per field, a value of each key (what range tests read)

    def add(self, example_id: str, subject: str | None, metadata: dict) -> None:
        if subject is None and not metadata:
            return
        self.attrs[example_id] = (subject, metadata)
        if subject is not None:
            self.by_subject.setdefault(subject, set()).add(example_id)
        for field, value in metadata.items():
            key = value_key(value)
            self.by_value.setdefault(field, {}).setdefault(key, set()).add(example_id)
            self.values.setdefault(field, {}).setdefault(key, value)

    def remove(self, example_id: str) -> None:
        subject, metadata = self.attrs.pop(example_id, (None, {}))
        if subject is not None:
            members = self.by_subject[subject]
            members.discard(example_id)
            if not members:
                del self.by_subject[subject]
        for field, value in metadata.items():
            values = self.by_value[field]
            key = value_key(value)
            values[key].discard(example_id)
            if not values[key]:
                del values[key]
                del self.values[field][key]
                if not values:
                    del self.by_value[field]
                    del self.values[field]

    def subject_of(self, example_id: str) -> str | None:
        return self.attrs.get(example_id, (None, {}))[0]

    def of_subject(self, subject: str) -> set[str]:
        return set(self.by_subject.get(subject, ()))

    def matching(self, where: dict | Filter) -> set[str]:
        """The ids whose metadata match ``where`` (a filter dict, or one :func:`check_filter` compiled)."""
        compiled = where if isinstance(where, Filter) else check_filter(where)
        return compiled.ids(self)
