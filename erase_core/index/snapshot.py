"""The ``erase`` answer kept between mutations, read without the index's lock by ``select_nowait``.

The ``erase`` strategy selects one fixed set for every query, so the set, its payloads (as
functions giving fresh copies) and their vectors are computed once per pool version. The
snapshot is immutable; the index replaces it with None when the pool changes.
"""

from __future__ import annotations

import functools
import json
from typing import Callable

import numpy as np

from ..selection import SelectedExample

_IMMUTABLE = (str, int, float, bool, type(None))


def fresh_copies(payload_json: str) -> Callable[[], object]:
    """A function giving a fresh copy of a payload on each call, so editing a returned payload
    changes nothing in the index: the value itself when it is immutable (a string, number,
    bool or None), a shallow copy of a flat dict of such values, else a new decode of the JSON."""
    value = json.loads(payload_json)
    if isinstance(value, _IMMUTABLE):
        return lambda: value
    if isinstance(value, dict) and all(isinstance(v, _IMMUTABLE) for v in value.values()):
        return value.copy
    return functools.partial(json.loads, payload_json)


class Snapshot:
    """The ``erase`` set of one pool version: ``(id, fresh payload, centroid score)`` and vectors."""

    __slots__ = ("version", "picks", "vectors")

    def __init__(self, version: int, picks: list[tuple[str, Callable[[], object], float]], vectors: np.ndarray):
        self.version = version
        self.picks = picks
        self.vectors = vectors

    @classmethod
    def of(cls, version: int, picks: list[tuple[str, float]], texts: list[str], vectors: np.ndarray) -> "Snapshot":
        return cls(version, [(i, fresh_copies(pj), s) for (i, s), pj in zip(picks, texts)], vectors)

    def __len__(self) -> int:
        return len(self.picks)

    def answer(self, k: int, q: np.ndarray | None) -> list[SelectedExample]:
        """The first ``k`` of the set; scores are cosine similarities to ``q`` when given."""
        if q is None:
            return [SelectedExample(i, fresh(), s) for i, fresh, s in self.picks[:k]]
        qn = q / np.linalg.norm(q)
        return [SelectedExample(i, fresh(), float(v.astype(np.float64) @ qn))
                for (i, fresh, _), v in zip(self.picks[:k], self.vectors)]
