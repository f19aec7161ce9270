"""Behavioural checks of concurrency, without clocks: what ran while a blocking call waited.

Timing assertions ("four calls took under 0.9 s") fail on a loaded machine and pass on a fast
one for the wrong reason; these helpers make the blocking call itself wait for the thing that
must be able to happen meanwhile. If it cannot happen (the call runs on the event loop, or the
calls run one after another), the wait breaks after ``DEADLOCK_S`` and the test fails: that
bound is a guard against hanging, never a speed target.
"""

from __future__ import annotations

import asyncio
import threading

DEADLOCK_S = 60.0


class LoopWitness:
    """Called from inside a blocking call: returns only once ``loop`` has run a callback
    scheduled after the call began, which a loop blocked by the call itself never does."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.calls = 0  # how many blocking calls waited for the loop (a test checks it is > 0)
        self._lock = threading.Lock()

    def attach(self) -> None:
        """Watch the running event loop (call inside it, before the calls under test)."""
        self.loop = asyncio.get_running_loop()

    def __call__(self) -> None:
        if self.loop is None:
            return
        ran = threading.Event()
        self.loop.call_soon_threadsafe(ran.set)
        if not ran.wait(DEADLOCK_S):
            raise AssertionError("the event loop did not run while a blocking call waited: the call blocks the loop")
        with self._lock:
            self.calls += 1


class Rendezvous:
    """Called from inside ``parties`` blocking calls: each returns only once all of them are in
    flight at the same time, so calls that run one after another break it instead."""

    def __init__(self, parties: int) -> None:
        self._barrier = threading.Barrier(parties, timeout=DEADLOCK_S)
        self.armed = True

    def __call__(self) -> None:
        if not self.armed:
            return
        try:
            self._barrier.wait()
        except threading.BrokenBarrierError:
            raise AssertionError("the calls did not run side by side: one waited for another to finish") from None
