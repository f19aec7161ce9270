"""Smoke test of `erase demo`: a shortened run on the shared BIG-bench copy with the real models."""

from __future__ import annotations

import json

import pytest

from conftest import REPO_ROOT

SHARED = (REPO_ROOT / ".." / "shared" / "data" / "bigbench").resolve()


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "intent_recognition" / "task.json").is_file(), reason="shared BIG-bench data not found")
def test_short_demo_end_to_end(tmp_path, capsys):
    from erase_core.cli import main

    out = tmp_path / "summary.json"
    rc = main(["demo", "--data-dir", str(SHARED), "--n-test", "8", "--n-pool", "60", "--forget", "3", "--json", str(out)])
    assert rc == 0
    summary = json.loads(out.read_text())
    printed = capsys.readouterr().out
    assert summary["verified"] and summary["forgotten_text_in_prompt"] == 0
    assert set(summary["accuracy"]) == {"zero-shot", "random k-shot", "similarity k-shot", "ERASE k-shot", "ERASE after forget"}
    assert all(0.0 <= a <= 1.0 for a in summary["accuracy"].values())
    assert len(summary["forgets"]) == 3 and summary["forgets"][0]["selected_changed"]
    assert summary["pool"] == 60 and summary["test"] == 8
    for needle in ("the ERASE prompt", "verify(): PASSED", "x rebuild", "== summary"):
        assert needle in printed
