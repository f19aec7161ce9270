"""Two selectors (and the CLI) on one persist_path: a forget anywhere is seen everywhere."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("langchain_core")

from erase_core import UnknownIdError  # noqa: E402
from erase_langchain import ERASEExampleSelector  # noqa: E402
from lc_helpers import EXAMPLES, IDS, NGramEmbeddings  # noqa: E402


@pytest.mark.parametrize("strategy", ["erase", "similarity"])
@pytest.mark.processes
def test_selectors_on_one_store_see_each_others_forgets(tmp_path, strategy):
    path = tmp_path / "shots.sqlite"
    emb = NGramEmbeddings()
    a = ERASEExampleSelector.from_examples(EXAMPLES, emb, k=3, ids=IDS, strategy=strategy, seed=3, persist_path=path)
    b = ERASEExampleSelector.open(path, emb)  # a second worker, opened before the forgets
    victim = a.select({"input": EXAMPLES[5]["input"]})[0].id
    assert victim in b.ids
    a.forget([victim])
    assert victim not in b.ids
    for ex in EXAMPLES:
        assert victim not in [s.id for s in b.select({"input": ex["input"]})]
    with pytest.raises(UnknownIdError):
        b.get(victim)
    b.add_examples([{"input": "a brand new example about football", "output": "sports"}], ids=["new-1"])
    assert "new-1" in a.ids
    # the command line forgets what b added, while both are open
    done = subprocess.run([sys.executable, "-m", "erase_core.cli", "forget", str(path), "new-1"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "new-1" not in a.ids and "new-1" not in b.ids
    assert a.digest() == b.digest() and a.verify() and b.verify()
    a.close()
    b.close()
