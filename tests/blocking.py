"""Helpers for tests that a read is not held up by a forget running in another thread."""

from __future__ import annotations

import threading


class BlockedForget:
    """Runs ``forget()`` in a thread that stops inside ``index``'s clustering update (where a
    recompute spends its time) until :meth:`finish` releases it."""

    def __init__(self, index, forget):
        self.inside, self.release = threading.Event(), threading.Event()
        model = index.model
        original = model.remove

        def remove(ids, _original=original):
            self.inside.set()
            assert self.release.wait(30)
            return _original(ids)

        model.remove = remove
        self.error = None

        def run():
            try:
                forget()
            except BaseException as exc:  # reported by finish()
                self.error = exc

        self.thread = threading.Thread(target=run)
        self.thread.start()
        assert self.inside.wait(30), "the forget never reached the clustering update"

    def finish(self):
        self.release.set()
        self.thread.join(30)
        assert not self.thread.is_alive()
        if self.error is not None:
            raise self.error


def call_in_thread(fn, timeout: float = 10.0):
    """``fn()`` in another thread; fails if it does not return within ``timeout`` (it waited)."""
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("value", fn()))
    t.start()
    t.join(timeout)
    assert not t.is_alive(), "the read waited for the forget"
    assert "value" in out, "the read raised"
    return out["value"]
