"""Example attributes (a subject and metadata) and the filters that select on them.

A *subject* is whoever the example belongs to (a customer, a tenant): a deletion request names
it. *Metadata* is a JSON object. A filter is a dict of conditions on its top-level fields, all
of which must hold::

    {"lang": "en"}                       # equality
    {"lang": {"$eq": "en"}}              # the same
    {"tier": {"$in": ["gold", "silver"]}}

Anything else (another operator, a nested structure) is an error, never silently ignored.
Values compare as JSON values, numbers by value (``1`` equals ``1.0``; ``true`` is not ``1``).
"""

from __future__ import annotations

import json
from typing import Any

from ._validation import ERASEError

_OPERATORS = ("$eq", "$in")


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


def check_filter(where: Any) -> dict[str, set[str]]:
    """Validate a filter; returns, per field, the set of accepted value keys."""
    if not isinstance(where, dict) or not where:
        raise ERASEError(f"a filter must be a non-empty dict of metadata conditions; got {where!r}")
    out: dict[str, set[str]] = {}
    for field, cond in where.items():
        if not isinstance(field, str) or field.startswith("$"):
            raise ERASEError(f"unsupported filter key {field!r}: conditions are on metadata fields ({_OPERATORS} inside)")
        if isinstance(cond, dict):
            if len(cond) != 1 or next(iter(cond)) not in _OPERATORS:
                raise ERASEError(f"unsupported condition on {field!r}: {cond!r} (supported: equality, {_OPERATORS})")
            op, arg = next(iter(cond.items()))
            if op == "$in":
                if not isinstance(arg, (list, tuple)):
                    raise ERASEError(f"$in on {field!r} needs a list; got {arg!r}")
                out[field] = {value_key(v) for v in arg}
            else:
                out[field] = {value_key(arg)}
        else:
            out[field] = {value_key(cond)}
    return out


class AttributeIndex:
    """Which examples have which subject and metadata values (for forget and filtered select)."""

    def __init__(self) -> None:
        self.attrs: dict[str, tuple[str | None, dict]] = {}
        self.by_subject: dict[str, set[str]] = {}
        self.by_value: dict[str, dict[str, set[str]]] = {}

    def add(self, example_id: str, subject: str | None, metadata: dict) -> None:
        if subject is None and not metadata:
            return
        self.attrs[example_id] = (subject, metadata)
        if subject is not None:
            self.by_subject.setdefault(subject, set()).add(example_id)
        for field, value in metadata.items():
            self.by_value.setdefault(field, {}).setdefault(value_key(value), set()).add(example_id)

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
                if not values:
                    del self.by_value[field]

    def subject_of(self, example_id: str) -> str | None:
        return self.attrs.get(example_id, (None, {}))[0]

    def of_subject(self, subject: str) -> set[str]:
        return set(self.by_subject.get(subject, ()))

    def matching(self, where: dict) -> set[str]:
        result: set[str] | None = None
        for field, keys in check_filter(where).items():
            values = self.by_value.get(field, {})
            ids: set[str] = set()
            for key in keys:
                ids |= values.get(key, set())
            result = ids if result is None else result & ids
            if not result:
                return set()
        return result or set()
