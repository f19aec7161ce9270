"""``ERASEExampleSelector(n_nearest=j)``: ERASE's fixed prefix plus the j nearest other examples."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lc_helpers import NGramEmbeddings  # noqa: E402

from erase_langchain import ERASEExampleSelector  # noqa: E402

WORDS = ["apple", "river", "stone", "cloud", "tiger", "piano", "ocean", "maple", "comet", "glass", "north", "ember"]
EXAMPLES = [{"input": f"{WORDS[i % 12]} {WORDS[(3 * i + 1) % 12]} {i}", "output": str(i % 5)} for i in range(40)]
IDS = [f"x{i:02d}" for i in range(40)]
QUERIES = [{"input": "apple river"}, {"input": "tiger in the ocean"}, {"input": "glass comet 7"}]


def build(keep=range(40), **kw) -> ERASEExampleSelector:
    kw = {"k": 2, "n_nearest": 2, "seed": 1, "strategy": "erase", **kw}
    return ERASEExampleSelector.from_examples([EXAMPLES[i] for i in keep], NGramEmbeddings(dim=96),
                                              ids=[IDS[i] for i in keep], **kw)


def test_fixed_prefix_then_the_nearest_others_most_similar_last():
    hybrid, fixed = build(), build(n_nearest=0)
    emb = NGramEmbeddings(dim=96)
    prefix = [s.id for s in fixed.select({"input": "x"})]
    for q in QUERIES:
        got = [s.id for s in hybrid.select(q)]
        assert got[:2] == prefix and len(set(got)) == 4
        v = np.asarray(emb.embed_query(q["input"]))
        sims = {i: float(hybrid.index.vector(i) @ (v / np.linalg.norm(v))) for i in hybrid.ids if i not in prefix}
        nearest = sorted(sims, key=lambda i: (-sims[i], i))[:2]
        assert got[2:] == nearest[::-1]
    assert hybrid.fingerprint == fixed.fingerprint  # the cacheable part


def test_forget_equals_a_fresh_build_in_both_parts():
    full = build()
    chosen = {s.id for q in QUERIES for s in full.select(q)}
    gone = sorted(chosen)[:3]
    full.forget(gone)
    fresh = build([i for i in range(40) if IDS[i] not in gone])
    for q in QUERIES:
        assert full.select_examples(q) == fresh.select_examples(q)
        assert not {s.id for s in full.select(q)} & set(gone)
    assert full.digest() == fresh.digest() and full.verify()


def test_reopened_with_n_nearest(tmp_path):
    path = tmp_path / "s.db"
    built = build(persist_path=path)
    expected = [built.select_examples(q) for q in QUERIES]
    built.close()
    again = ERASEExampleSelector.open(path, NGramEmbeddings(dim=96), n_nearest=2)
    assert [again.select_examples(q) for q in QUERIES] == expected
    again.close()


def test_bad_n_nearest():
    with pytest.raises(ValueError, match="n_nearest"):
        build(n_nearest=-1)
    with pytest.raises(ValueError, match="n_nearest"):
        build(strategy="similarity")
    small = build(range(3), k=2, n_nearest=5)  # asks for more than exist: what exists, as similarity does
    assert len(small.select(QUERIES[0])) == 3
