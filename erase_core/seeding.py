"""k-means++ seeding by exponential races keyed on ids.

Round r picks the point minimising ``Exp_i(r) / D_i^2`` (an exponential race, which samples
with probability proportional to D^2 exactly as k-means++ does), where ``Exp_i(r)`` is a
deterministic draw keyed on the point's id. Because a race is an argmin, removing a point
that did not win any round changes nothing, and an inserted point changes the seeding only
if it beats a recorded winner. Keys are total-ordered as (class, value, id):

* class 0: D^2 > 0, value ``Exp / D^2`` (the k-means++ race);
* class 1: D^2 == 0 but not yet chosen (a duplicate of a seed), value ``Exp``; these only win
  when every point coincides with a seed (fewer distinct points than clusters);
* chosen points never compete again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .hashing import exponential_variates, stream_key

_SEEDING_STREAM = 1


@dataclass(frozen=True)
class RaceKey:
    klass: int
    value: float
    id: str

    def __lt__(self, other: "RaceKey") -> bool:
        return (self.klass, self.value, self.id) < (other.klass, other.value, other.id)


def race_keys(round_index: int, seed: int, hashes: np.ndarray, d2: np.ndarray | None):
    """Classes and values of the race in ``round_index`` for points with squared distances ``d2``."""
    exp = exponential_variates(hashes, stream_key(seed, _SEEDING_STREAM, round_index))
    if d2 is None:
        return np.ones(len(hashes), dtype=np.int8), exp
    positive = d2 > 0
    klass = np.where(positive, 0, 1).astype(np.int8)
    with np.errstate(divide="ignore"):
        value = np.where(positive, exp / np.where(positive, d2, 1.0), exp)
    return klass, value


def race_winner(klass: np.ndarray, value: np.ndarray, ids: list[str], excluded: np.ndarray) -> int:
    """Index of the minimal (class, value, id) key among non-excluded points."""
    k = klass.astype(np.int64).copy()
    k[excluded] = 3
    best_class = k.min()
    candidates = np.flatnonzero(k == best_class)
    vals = value[candidates]
    best = vals.min()
    tied = candidates[vals == best]
    if len(tied) == 1:
        return int(tied[0])
    return int(min(tied, key=lambda i: ids[i]))


def squared_distances(points: np.ndarray, center: np.ndarray) -> np.ndarray:
    """Exact squared distances (integer-valued float64) from rows of ``points`` to ``center``."""
    diff = points - center
    return np.einsum("ij,ij->i", diff, diff)


@dataclass
class Seeding:
    """Recorded seeding: winning ids in order and their race keys."""

    ids: list[str]
    keys: list[RaceKey]


def seed_plusplus(coords: np.ndarray, ids: list[str], hashes: np.ndarray, k: int, seed: int) -> tuple[Seeding, list[int]]:
    """Run the k-means++ race on all points; return the record and the winning row indices."""
    n = coords.shape[0]
    chosen = np.zeros(n, dtype=bool)
    d2 = None
    rows: list[int] = []
    keys: list[RaceKey] = []
    for r in range(k):
        klass, value = race_keys(r, seed, hashes, d2)
        w = race_winner(klass, value, ids, chosen)
        chosen[w] = True
        rows.append(w)
        keys.append(RaceKey(int(klass[w]), float(value[w]), ids[w]))
        dist = squared_distances(coords, coords[w])
        d2 = dist if d2 is None else np.minimum(d2, dist)
    return Seeding([ids[w] for w in rows], keys), rows


def insertion_changes_seeding(
    seeding: Seeding, seed_coords: np.ndarray, new_coords: np.ndarray, new_ids: list[str], new_hashes: np.ndarray, seed: int
) -> bool:
    """Whether any new point would win a recorded round (then the seeding must be rerun)."""
    d2 = None
    nothing = np.zeros(len(new_ids), dtype=bool)
    for r, recorded in enumerate(seeding.keys):
        klass, value = race_keys(r, seed, new_hashes, d2)
        w = race_winner(klass, value, new_ids, nothing)
        if RaceKey(int(klass[w]), float(value[w]), new_ids[w]) < recorded:
            return True
        dist = squared_distances(new_coords, seed_coords[r])
        d2 = dist if d2 is None else np.minimum(d2, dist)
    return False
