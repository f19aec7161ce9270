"""The ``erase`` selector answers while a forget runs in another thread (the set before it)."""

from __future__ import annotations

from blocking import BlockedForget, call_in_thread
from erase_langchain import ERASEExampleSelector
from lc_helpers import NGramEmbeddings


def test_select_examples_does_not_wait_for_a_forget(tmp_path):
    examples = [{"id": f"x{i:02d}", "q": f"question {i} " + "word " * (i % 7), "a": str(i)} for i in range(40)]
    selector = ERASEExampleSelector.from_examples(examples, NGramEmbeddings(dim=64), k=3, id_key="id",
                                                  persist_path=str(tmp_path / "pool.sqlite"), strategy="erase")
    before = selector.select_examples({"q": "anything"})
    victim = selector.select({"q": "anything"})[0].id
    blocked = BlockedForget(selector.index, lambda: selector.forget([victim]))
    try:
        assert call_in_thread(lambda: selector.select_examples({"q": "anything"})) == before
    finally:
        blocked.finish()
    after = [s.id for s in selector.select({"q": "anything"})]
    assert victim not in after and len(after) == 3
