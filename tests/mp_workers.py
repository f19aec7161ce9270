"""Worker processes for the multi-process tests (imported by name in spawned children)."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import numpy as np

POOL = 400
DIM = 24


def vectors() -> np.ndarray:
    """The vector of example ``p{i}`` is row i: every process can rebuild any example's query."""
    return np.random.default_rng(99).standard_normal((POOL + 2000, DIM))


def ident(i: int) -> str:
    return f"p{i:05d}"


def read_forgotten(log: Path) -> list[str]:
    try:
        return [line for line in log.read_text().split("\n") if line]
    except FileNotFoundError:
        return []


def selector(path: str, log: str, stop: str, out: str, seed: int) -> None:
    """Select in a loop; every id the log said was forgotten before a read began must be absent."""
    from erase_core import ExampleIndex, UnknownIdError

    X = vectors()
    rnd = random.Random(seed)
    index = ExampleIndex.open(path)
    stale, reads = [], 0
    while not Path(stop).exists():
        forgotten = read_forgotten(Path(log))  # read BEFORE the select starts
        recent = forgotten[-5:] + rnd.sample(forgotten, min(5, len(forgotten)))
        for f in recent:
            i = int(f[1:])
            got = [s.id for s in index.select(X[i], k=3)]  # f is its own nearest neighbour if present
            if f in got or f in index:
                stale.append(f)
            try:
                index.get(f)
                stale.append(f)
            except UnknownIdError:
                pass
            reads += 1
        if not recent:
            index.select(X[rnd.randrange(POOL)], k=3)
            reads += 1
    ok = index.verify()
    Path(out).write_text(json.dumps({"stale": stale, "reads": reads, "verify": ok, "digest": index.digest(),
                                     "n": len(index)}))
    index.close()


def writer(path: str, log: str, duration: float, seed: int, out: str) -> None:
    """Add new examples and forget random ones (its own and others'), logging each finished forget."""
    from erase_core import ExampleIndex

    X = vectors()
    rnd = random.Random(seed)
    index = ExampleIndex.open(path)
    next_new = POOL
    ops = 0
    end = time.monotonic() + duration
    with open(log, "a") as fh:
        while time.monotonic() < end and next_new + 2 <= len(X):  # a fast machine can run out of new vectors
            if rnd.random() < 0.35:
                index.add(X[next_new : next_new + 2], [{"n": next_new}, {"n": next_new + 1}],
                          ids=[ident(next_new), ident(next_new + 1)])
                next_new += 2
            else:
                victim = rnd.choice(index.ids)
                index.forget([victim])
                fh.write(victim + "\n")  # only after forget returned
                fh.flush()
            ops += 1
    Path(out).write_text(json.dumps({"ops": ops, "digest": index.digest()}))
    index.close()


def erase_selector(path: str, log: str, stop: str, out: str) -> None:
    """``select()`` (the fixed erase set) in a loop, recording the version each answer is for;
    every id the log said was forgotten before a read began must be absent from it."""
    from erase_core import ExampleIndex

    index = ExampleIndex.open(path)
    stale, selected, lagged = [], [], 0
    while not Path(stop).exists():
        forgotten = set(read_forgotten(Path(log)))  # read BEFORE the select starts
        got = [s.id for s in index.select()]
        selected.append((index._version, got))  # this thread alone uses the handle
        lagged += index._model_lag is not None
        stale.extend(i for i in got if i in forgotten)
    ok = index.verify()
    Path(out).write_text(json.dumps({"stale": stale, "selected": selected, "lagged": lagged, "verify": ok,
                                     "digest": index.digest()}))
    index.close()


def erase_writer(path: str, log: str, duration: float, seed: int, out: str) -> None:
    """Forget random examples (and add a few), recording its own erase set at each version."""
    from erase_core import ExampleIndex

    X = vectors()
    rnd = random.Random(seed)
    index = ExampleIndex.open(path)
    next_new, recomputed = POOL, 0
    selected = {}
    end = time.monotonic() + duration
    with open(log, "a") as fh:
        while time.monotonic() < end and next_new + 2 <= len(X) and len(index) > 50:
            if rnd.random() < 0.2:
                index.add(X[next_new : next_new + 2], [{"n": next_new}, {"n": next_new + 1}],
                          ids=[ident(next_new), ident(next_new + 1)])
                next_new += 2
            else:
                victim = rnd.choice(index.ids)
                recomputed += index.forget([victim]).recomputed
                fh.write(victim + "\n")  # only after forget returned
                fh.flush()
            selected[index._version] = [s.id for s in index.select()]
            time.sleep(0.01)
    Path(out).write_text(json.dumps({"selected": selected, "recomputed": recomputed, "digest": index.digest()}))
    index.close()
