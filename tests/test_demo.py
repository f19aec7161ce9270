"""`erase demo` as a newcomer runs it: a fresh process with an empty home, an empty cache, no
``ERASE_BIGBENCH_DIR``, no ``--data-dir`` and the network cut off. Its data path (quick) and a
shortened run with the real models (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT

# Run first in the child: any socket connection or child process (pip, git) fails loudly.
OFFLINE = """
import socket, subprocess
def _refuse(*args, **kwargs):
    raise AssertionError(f"the demo tried to reach outside: {args!r}")
socket.socket.connect = socket.socket.connect_ex = _refuse
socket.create_connection = _refuse
subprocess.Popen.__init__ = _refuse
"""


def fresh_env(tmp_path: Path) -> dict[str, str]:
    """An empty HOME and XDG cache, no ERASE_BIGBENCH_DIR, the models offline."""
    home, cache = tmp_path / "home", tmp_path / "xdg-cache"
    home.mkdir()
    cache.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "ERASE_BIGBENCH_DIR" and not k.startswith(("HF_", "XDG_"))}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(cache), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               PYTHONPATH=str(REPO_ROOT))
    return env


def run_fresh(tmp_path: Path, code: str, timeout: float) -> subprocess.CompletedProcess:
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.run([sys.executable, "-c", OFFLINE + code], cwd=work, env=fresh_env(tmp_path),
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.processes
def test_demo_data_path_with_empty_home_and_no_data_dir(tmp_path):
    """The demo's defaults find the task in the package: nothing set, nothing fetched, nothing written."""
    proc = run_fresh(tmp_path, """
import json
from erase_langchain import demo
args = demo.build_parser().parse_args([])
assert args.data_dir is None
task = demo.load_task(args.task, args.data_dir)
pool, test = task.split(len(task) - args.n_test, args.n_test, seed=args.seed)
fmt = demo.TaskFormat.of(task)
print(json.dumps({"task": task.name, "source": str(task.source), "n": len(task), "pool": len(pool),
                  "test": len(test), "mc": task.is_multiple_choice, "prompt": fmt.example_prompt().template}))
""", timeout=300)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    from erase_core.evaluation.bigbench import BUNDLED_DIR

    assert out["task"] == "intent_recognition" and out["mc"]
    assert Path(out["source"]) == BUNDLED_DIR / "intent_recognition" / "task.json"
    assert out["n"] == 693 and out["pool"] + out["test"] <= 693 and out["test"] == 150
    assert "{input}" in out["prompt"] and "{target}" in out["prompt"]
    assert not any((tmp_path / "home").iterdir()) and not any((tmp_path / "xdg-cache").iterdir())


@pytest.mark.slow
@pytest.mark.processes
@pytest.mark.models
def test_short_demo_end_to_end_with_empty_home(tmp_path):
    """`erase demo` itself, with the real models (from their PyPI packages) and no data option, at
    its smallest settings (2 shots, 20 pool examples, 2 questions: a smoke test of the command; the
    models' answers are not what it checks). The full run is `make demo`."""
    out = tmp_path / "summary.json"
    proc = run_fresh(tmp_path, f"""
import sys
from erase_core.cli import main
sys.exit(main(["demo", "--k", "2", "--n-test", "2", "--n-pool", "20", "--forget", "3", "--json", {str(out)!r}]))
""", timeout=3600)  # a guard against a hang, not a speed limit (a loaded 2-core machine is slow)
    summary = json.loads(out.read_text())
    printed = proc.stdout
    assert "task intent_recognition" in printed
    assert summary["verified"] and summary["forgotten_text_in_prompt"] == 0
    assert set(summary["accuracy"]) == {"zero-shot", "random k-shot", "similarity k-shot", "ERASE k-shot", "ERASE after forget"}
    assert all(0.0 <= a <= 1.0 for a in summary["accuracy"].values())
    assert len(summary["forgets"]) == 3 and summary["forgets"][0]["selected_changed"]
    assert summary["pool"] == 20 and summary["test"] == 2 and summary["k"] == 2
    for needle in ("the ERASE prompt", "verify(): PASSED", "x rebuild", "== summary"):
        assert needle in printed
