"""Few-shot prompting through PromptTemplate function_mappings, in a real query engine."""

from __future__ import annotations

from typing import Any, List

import pytest
from llama_index.core import VectorStoreIndex
from llama_index.core.base.llms.types import CompletionResponse, CompletionResponseGen, LLMMetadata
from llama_index.core.bridge.pydantic import Field
from llama_index.core.llms.callbacks import llm_completion_callback
from llama_index.core.llms.custom import CustomLLM
from llama_index.core.prompts.prompt_utils import get_empty_prompt_txt
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import Document, NodeWithScore, TextNode

from erase_core import ERASEError
from erase_llamaindex import ERASERetriever, few_shot_function, few_shot_prompt, format_example, format_examples

from .helpers import HashingEmbedding

EXAMPLES = [
    ("I loved every minute of this film", "positive"),
    ("The food was cold and the waiter was rude", "negative"),
    ("Absolutely fantastic service, will come again", "positive"),
    ("The battery died after one day, awful", "negative"),
    ("A delightful, charming little hotel", "positive"),
    ("Worst purchase I have ever made", "negative"),
    ("The concert was amazing and the crowd was great", "positive"),
    ("Boring plot and terrible acting", "negative"),
]
TEMPLATE = (
    "Classify the sentiment of each review as positive or negative.\n\n{few_shot_examples}\n\n"
    "Background: {context_str}\n\nReview: {query_str}\nSentiment:"
)
EXAMPLE_TEMPLATE = "Review: {text}\nSentiment: {label}"


def example_nodes(skip=()):
    return [TextNode(id_=f"ex-{i}", text=t, metadata={"label": l}) for i, (t, l) in enumerate(EXAMPLES) if f"ex-{i}" not in skip]


def shots(skip=(), strategy="erase"):
    return ERASERetriever.from_defaults(nodes=example_nodes(skip), embed_model=HashingEmbedding(), similarity_top_k=4, strategy=strategy)


def engine(retriever, llm):
    context = VectorStoreIndex(
        [Document(text="Reviews are written by customers about films, hotels, gadgets and restaurants.")],
        embed_model=HashingEmbedding(),
    )
    prompt = few_shot_prompt(TEMPLATE, retriever, example_template=EXAMPLE_TEMPLATE)
    return RetrieverQueryEngine.from_args(context.as_retriever(similarity_top_k=1), llm=llm, text_qa_template=prompt)


def expected_block(retriever) -> str:
    return "\n\n".join(
        EXAMPLE_TEMPLATE.format(text=n.node.text, label=n.node.metadata["label"]) for n in retriever.retrieve("x")
    )


class EchoLLM(CustomLLM):
    """Answers with the prompt it was given (and records it)."""

    prompts: List[str] = Field(default_factory=list)

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(context_window=4096, num_output=16, model_name="echo")

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        self.prompts.append(prompt)
        return CompletionResponse(text=prompt)

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        yield self.complete(prompt, formatted=formatted)


def test_format_examples():
    node = TextNode(id_="n1", text="great stuff", metadata={"label": "positive", "who": "x"}, excluded_llm_metadata_keys=["who"])
    assert format_example(NodeWithScore(node=node, score=0.5), "{text} -> {label} ({score}, {node_id})") == "great stuff -> positive (0.5, n1)"
    assert format_example(node) == "label: positive\n\ngreat stuff"  # the node's LLM view
    assert format_examples([node, node], "{label}", separator=" | ") == "positive | positive"
    with pytest.raises(ERASEError, match="needs 'missing'"):
        format_example(node, "{missing}")


def test_function_mapping_formats_the_selected_examples_and_follows_forget():
    r = shots()
    prompt = few_shot_prompt(TEMPLATE, r, example_template=EXAMPLE_TEMPLATE)
    text = prompt.format(query_str="It was lovely", context_str="ctx")
    block = expected_block(r)
    assert block in text and text.endswith("Review: It was lovely\nSentiment:")
    assert prompt.format(query_str="Something else entirely", context_str="ctx").count(block) == 1
    first = r.retrieve("x")[0].node
    r.forget(first.node_id)
    text = prompt.format(query_str="It was lovely", context_str="ctx")
    assert first.text not in text
    assert expected_block(r) in text and expected_block(r) == expected_block(shots(skip={first.node_id}))
    # LlamaIndex measures prompts by formatting them with every variable empty
    assert expected_block(r) in get_empty_prompt_txt(prompt)


def test_function_with_similarity_strategy_uses_the_query():
    r = shots(strategy="similarity")
    fn = few_shot_function(r, example_template="{text}", query_var="question", separator="\n")
    out = fn(question="The battery died after one day, awful", other="ignored")
    assert out.splitlines()[0] == "The battery died after one day, awful"
    assert fn(question="Boring plot and terrible acting").splitlines()[0] == "Boring plot and terrible acting"
    custom = few_shot_function(r, formatter=lambda nodes: "|".join(n.node.node_id for n in nodes))
    assert custom(query_str="Worst purchase I have ever made").split("|")[0] == "ex-5"


def test_bad_few_shot_arguments():
    r = shots()
    with pytest.raises(ERASEError, match="no {few_shot_examples}"):
        few_shot_prompt("Question: {query_str}", r)
    with pytest.raises(ERASEError):
        few_shot_function("not a retriever")
    with pytest.raises(ERASEError):
        few_shot_prompt(TEMPLATE, r, example_template="{unclosed")


def test_query_engine_pipeline_end_to_end_with_a_recording_llm():
    r = shots()
    llm = EchoLLM()
    response = str(engine(r, llm).query("What a wonderful day, I loved it"))
    assert len(llm.prompts) == 1
    assert expected_block(r) in llm.prompts[0] and "Review: What a wonderful day, I loved it" in llm.prompts[0]
    assert "Reviews are written by customers" in llm.prompts[0]  # the context retriever's node
    assert response.strip() == llm.prompts[0].strip()
    victim = r.retrieve("x")[1].node.node_id
    r.forget([victim])
    engine(r, llm).query("What a wonderful day, I loved it")
    fresh_llm = EchoLLM()
    engine(shots(skip={victim}), fresh_llm).query("What a wonderful day, I loved it")
    assert llm.prompts[1] == fresh_llm.prompts[0]  # same prompt as if the example had never been added
    assert EXAMPLES[int(victim[3:])][0] not in llm.prompts[1]
