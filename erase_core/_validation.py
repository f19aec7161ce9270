"""Input validation in one place: every public mutation calls these before touching state."""

from __future__ import annotations

import difflib
import numbers
from typing import Any, Iterable, Mapping, Sequence

import numpy as np


class ERASEError(ValueError):
    """Base class for input errors raised by erase_core (a ValueError, so callers may catch either)."""


class UnknownIdError(ERASEError, KeyError):
    """An id that is not in the index was asked for."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DuplicateIdError(ERASEError):
    """An id was given twice, or is already present."""


class UnknownArgumentError(ERASEError, TypeError):
    """A keyword argument the callee does not take. Also a ``TypeError``, what Python raises
    for an unexpected keyword: a misspelt option (``stratgy=``) is never silently ignored."""


class InvalidIdError(ERASEError, TypeError):
    """An id that is not a non-empty ``str`` (see :func:`check_id`)."""


#: The one rule for ids, everywhere (add, upsert, get, delete, forget; core and adapters).
ID_RULE = "ids are non-empty strings (str); no other type is converted"


def reject_unknown_kwargs(where: str, kwargs: Mapping[str, Any], accepted: Iterable[str]) -> None:
    """Raise :class:`UnknownArgumentError` when ``kwargs`` is not empty: it names each unknown
    keyword (with the closest accepted one, when there is one) and lists the accepted ones.

    ``where`` names the callee as the user wrote it (``"ERASEExampleSelector.from_examples"``)."""
    if not kwargs:
        return
    accepted = sorted(set(accepted))
    parts = []
    for name in sorted(kwargs):
        close = difflib.get_close_matches(name, accepted, n=1, cutoff=0.8)
        parts.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    plural = "s" if len(parts) > 1 else ""
    raise UnknownArgumentError(
        f"{where}() got unexpected keyword argument{plural} {', '.join(parts)}; "
        f"accepted: {', '.join(accepted) if accepted else '(none)'}"
    )


def check_id(value: Any, name: str = "id") -> str:
    """``value`` when it is a valid id: a non-empty ``str``. Anything else (an int, bytes,
    None, ``""``) raises :class:`InvalidIdError` naming it; nothing is converted, so ``7`` and
    ``"7"`` can never be confused between an add and a later forget."""
    if not isinstance(value, str):
        raise InvalidIdError(f"{name} must be a non-empty string, got {type(value).__name__} {value!r}: {ID_RULE}")
    if not value:
        raise InvalidIdError(f"{name} must be a non-empty string, got '': {ID_RULE}")
    return value


def check_vectors(X, *, dim: int | None = None, name: str = "X", keep_float32: bool = False) -> np.ndarray:
    """Return ``X`` as a C-contiguous float64 (n, d) array; reject NaN/inf, ragged or empty input.

    ``keep_float32``: a float32 array stays float32 (no full-size float64 copy); for callers
    that convert block by block themselves."""
    try:
        keep = keep_float32 and isinstance(X, np.ndarray) and X.dtype == np.float32
        arr = X if keep else np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ERASEError(f"{name} must be a numeric (n, d) array: {exc}") from None
    if arr.ndim == 1 and arr.size and dim is not None:
        if arr.shape[0] != dim:
            raise ERASEError(f"{name} has dimension {arr.shape[0]}, expected {dim}")
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ERASEError(f"{name} must be 2-dimensional (n, d); got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ERASEError(f"{name} is empty: at least one vector is needed")
    if arr.shape[1] == 0:
        raise ERASEError(f"{name} has zero dimensions")
    if dim is not None and arr.shape[1] != dim:
        raise ERASEError(f"{name} has dimension {arr.shape[1]}, expected {dim}")
    step = max(1, (1 << 24) // max(1, arr.shape[1]))  # blocks: no full-size boolean temporary
    for lo in range(0, arr.shape[0], step):
        block = arr[lo : lo + step]
        if not np.isfinite(block).all():
            bad = lo + int(np.flatnonzero(~np.isfinite(block).all(axis=1))[0])
            raise ERASEError(f"{name} contains NaN or infinite values (first bad row: {bad})")
    return np.ascontiguousarray(arr)


def check_ids(ids: Iterable | None, n: int, *, existing=None, name: str = "ids") -> list[str]:
    """Return ``ids`` as a list of ``n`` distinct strings not already in ``existing``."""
    if ids is None:
        raise ERASEError(f"{name} are required")
    if isinstance(ids, (str, bytes)):
        raise ERASEError(f"{name} must be a sequence of strings, not a single string")
    out = list(ids)
    if len(out) != n:
        raise ERASEError(f"got {len(out)} {name} for {n} vectors")
    for j, i in enumerate(out):
        check_id(i, f"{name}[{j}]")
    if len(set(out)) != len(out):
        seen: set[str] = set()
        for i in out:
            if i in seen:
                raise DuplicateIdError(f"duplicate id {i!r} in {name}")
            seen.add(i)
    if existing is not None:
        clash = next((i for i in out if i in existing), None)
        if clash is not None:
            raise DuplicateIdError(f"id {clash!r} is already present")
    return out


def check_known_ids(ids: Iterable, known, *, missing: str = "raise") -> list[str]:
    """Distinct ids to remove; unknown ones raise (``missing="raise"``) or are dropped (``"ignore"``)."""
    if missing not in ("raise", "ignore"):
        raise ERASEError(f"missing must be 'raise' or 'ignore', got {missing!r}")
    if isinstance(ids, str):
        ids = [ids]
    out: list[str] = []
    seen: set[str] = set()
    for i in ids:
        check_id(i)
        if i in seen:
            if missing == "raise":
                raise DuplicateIdError(f"id {i!r} given twice")
            continue
        seen.add(i)
        if i not in known:
            if missing == "raise":
                raise UnknownIdError(f"unknown id {i!r}: nothing was forgotten")
            continue
        out.append(i)
    return out


def check_positive_int(value, name: str, *, minimum: int = 1, maximum: int | None = None) -> int:
    """``value`` as an int in [minimum, maximum] (no upper limit when ``maximum`` is None)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum or (
        maximum is not None and value > maximum
    ):
        allowed = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ERASEError(f"{name} must be an integer {allowed}, got {value!r}")
    return int(value)


def check_real(value, name: str) -> float:
    """``value`` as a finite float; bools, strings and NaN/inf raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ERASEError(f"{name} must be a real number, got {value!r}")
    out = float(value)
    if not np.isfinite(out):
        raise ERASEError(f"{name} must be finite, got {value!r}")
    return out


def as_list(values: Sequence | None) -> list:
    return [] if values is None else list(values)
