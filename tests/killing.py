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
