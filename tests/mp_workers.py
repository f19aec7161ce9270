"""Worker processes for the multi-process tests (imported by name in spawned children)."""

from __future__ import annotations

import json
import random
import time
from contextlib import contextmanager
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


def writer(path: str, log: str, duration: float, seed: int, out: str, *, add_share: float = 0.35,
           record: bool = False, pause: float = 0.0, keep: int = 0) -> None:
    """Add new examples (a share ``add_share`` of the operations) and forget random ones (its own
    and others'), logging each finished forget; ``record``: also its own ``select()`` at each
    version it wrote; ``pause`` seconds between operations; stop at ``keep`` examples."""
    from erase_core import ExampleIndex

    X = vectors()
    rnd = random.Random(seed)
    index = ExampleIndex.open(path)
    from erase_core.storage import ShredPendingError

    next_new, ops, recomputed, shreds_left = POOL, 0, 0, 0
    selected = {}
    end = time.monotonic() + duration
    with open(log, "a") as fh:
        # a fast machine can run out of new vectors
        while time.monotonic() < end and next_new + 2 <= len(X) and len(index) > keep:
            if rnd.random() < add_share:
                index.add(X[next_new : next_new + 2], [{"n": next_new}, {"n": next_new + 1}],
                          ids=[ident(next_new), ident(next_new + 1)])
                next_new += 2
            else:
                victim = rnd.choice(index.ids)
                try:
                    recomputed += index.forget([victim]).recomputed
                except ShredPendingError:
                    # committed (every read excludes it from now on); the old keys are purged by
                    # the next write, read or open: a loaded machine can hold a reader's snapshot
                    # past the shred step's wait
                    shreds_left += 1
                    index.refresh()
                fh.write(victim + "\n")  # only after forget returned
                fh.flush()
            ops += 1
            if record:
                selected[index._replica.version] = [s.id for s in index.select()]
            time.sleep(pause)
    Path(out).write_text(json.dumps({"ops": ops, "recomputed": recomputed, "selected": selected,
                                     "shreds_left": shreds_left, "digest": index.digest()}))
    index.close()


@contextmanager
def running(processes, stop) -> None:
    """Start ``processes``; however the block ends, tell them to stop and leave none running."""
    try:
        for p in processes:
            p.start()
        yield
    finally:
        Path(stop).write_text("stop")
        for p in processes:
            p.join(5)
            if p.is_alive():
                p.kill()


def erase_selector(path: str, log: str, stop: str, out: str) -> None:
    """``select()`` (the fixed erase set) in a loop, recording the version each answer is for;
    every id the log said was forgotten before a read began must be absent from it."""
    from erase_core import ExampleIndex

    index = ExampleIndex.open(path)
    stale, selected, lagged = [], [], 0
    while not Path(stop).exists():
        forgotten = set(read_forgotten(Path(log)))  # read BEFORE the select starts
        got = [s.id for s in index.select()]
        selected.append((index._replica.version, got))  # this thread alone uses the handle
        lagged += index._memory.clustering.lag is not None
        stale.extend(i for i in got if i in forgotten)
    ok = index.verify()
    Path(out).write_text(json.dumps({"stale": stale, "selected": selected, "lagged": lagged, "verify": ok,
                                     "digest": index.digest()}))
    index.close()
