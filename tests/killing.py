"""Kill -9 of a child process at a chosen moment: the one mechanism of the crash tests."""

from __future__ import annotations

import signal
import subprocess
import sys
import time


def kill_after(code: str, delay: float) -> subprocess.Popen:
    """Run ``python -c code``; once it prints "ready", wait ``delay`` seconds and SIGKILL it.

    Returns the dead child: what it printed before the kill is still on its stdout."""
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    time.sleep(delay)
    child.send_signal(signal.SIGKILL)
    child.wait()
    return child


#: `ERASE_KILL_TRIALS=long` (`make test-kills`) runs every kill test with its long list of moments.
LONG = "ERASE_KILL_TRIALS"


def kill_moments(default: list[float], long: list[float]) -> list[float]:
    """The delays after "ready" at which one kill test kills its child, one trial each.

    `make test` runs ``default``: few moments, spread over the operation (start, middle, late),
    enough to land before, inside and after the write. ``long`` adds moments in between."""
    import os

    return list(long) if os.environ.get(LONG, "").lower() == "long" else list(default)
