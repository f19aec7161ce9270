"""Few-shot prompting, LlamaIndex style: a retriever behind a ``PromptTemplate`` variable.

LlamaIndex fills a template variable from a function through ``function_mappings``: the
function receives the other variables (``query_str``, ``context_str``, ...) and returns the
text. :func:`few_shot_function` makes such a function from a retriever, and
:func:`few_shot_prompt` builds the ``PromptTemplate``::

    prompt = few_shot_prompt(
        "Examples:\\n{few_shot_examples}\\n\\nContext: {context_str}\\nQuestion: {query_str}\\nAnswer: ",
        retriever,
        example_template="Question: {text}\\nAnswer: {answer}",
    )
    engine = RetrieverQueryEngine.from_args(context_retriever, llm=llm, text_qa_template=prompt)

With ``strategy="erase"`` the examples are the same for every query (one fixed prompt prefix);
after ``retriever.forget(...)`` the next prompt is formatted from the new selection.
"""

from __future__ import annotations

import string
from typing import Any, Callable, Mapping, Sequence

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.prompts import PromptTemplate
from llama_index.core.schema import BaseNode, MetadataMode, NodeWithScore

from erase_core import ERASEError

__all__ = ["format_example", "format_examples", "few_shot_function", "few_shot_prompt"]

DEFAULT_EXAMPLES_VAR = "few_shot_examples"


def _fields(template: str) -> list[str]:
    try:
        return [f for _, f, _, _ in string.Formatter().parse(template) if f]
    except ValueError as exc:
        raise ERASEError(f"example_template is not a valid format string: {exc}") from None


def format_example(
    item: NodeWithScore | BaseNode,
    template: str | None = None,
    *,
    metadata_mode: MetadataMode = MetadataMode.LLM,
) -> str:
    """One example as text.

    ``template`` is a ``str.format`` template over the node's metadata keys plus ``text``,
    ``node_id`` and ``score`` (e.g. ``"Input: {text}\\nLabel: {label}"``). Without one, the
    node's LLM view: ``node.get_content(metadata_mode)`` (metadata lines, then the text).
    """
    node = item.node if isinstance(item, NodeWithScore) else item
    if template is None:
        return node.get_content(metadata_mode=metadata_mode)
    values: dict[str, Any] = dict(node.metadata or {})
    values.update(text=node.get_content(metadata_mode=MetadataMode.NONE), node_id=node.node_id)
    values["score"] = item.score if isinstance(item, NodeWithScore) else None
    missing = [f for f in _fields(template) if f.split(".")[0].split("[")[0] not in values]
    if missing:
        raise ERASEError(
            f"example_template needs {missing[0]!r}, which node {node.node_id!r} lacks "
            f"(it has text, node_id, score and metadata keys {sorted(node.metadata or {})})"
        )
    return template.format_map(values)


def format_examples(
    items: Sequence[NodeWithScore | BaseNode],
    template: str | None = None,
    *,
    separator: str = "\n\n",
    metadata_mode: MetadataMode = MetadataMode.LLM,
) -> str:
    """The examples, each formatted by :func:`format_example`, joined by ``separator``."""
    return separator.join(format_example(i, template, metadata_mode=metadata_mode) for i in items)


def few_shot_function(
    retriever: BaseRetriever,
    *,
    example_template: str | None = None,
    query_var: str = "query_str",
    separator: str = "\n\n",
    metadata_mode: MetadataMode = MetadataMode.LLM,
    formatter: Callable[[Sequence[NodeWithScore]], str] | None = None,
) -> Callable[..., str]:
    """A ``function_mappings`` entry: ``fn(**prompt_vars) -> str`` that retrieves with the
    prompt's ``query_var`` and formats the retrieved examples (``formatter`` overrides the
    formatting entirely). The function keeps nothing between calls.

    Note: LlamaIndex also formats prompts with every variable set to ``""`` to measure their
    length; the retriever is then called with an empty query (the ``erase`` strategy does not
    embed an empty query: its set does not depend on it).
    """
    if not isinstance(retriever, BaseRetriever):
        raise ERASEError(f"retriever must be a LlamaIndex BaseRetriever, got {type(retriever).__name__}")
    if example_template is not None:
        _fields(example_template)

    def few_shot_examples(**kwargs: Any) -> str:
        query = kwargs.get(query_var, "")
        nodes = retriever.retrieve("" if query is None else str(query))
        if formatter is not None:
            return formatter(nodes)
        return format_examples(nodes, example_template, separator=separator, metadata_mode=metadata_mode)

    return few_shot_examples


def few_shot_prompt(
    template: str,
    retriever: BaseRetriever,
    *,
    examples_var: str = DEFAULT_EXAMPLES_VAR,
    example_template: str | None = None,
    query_var: str = "query_str",
    separator: str = "\n\n",
    metadata_mode: MetadataMode = MetadataMode.LLM,
    formatter: Callable[[Sequence[NodeWithScore]], str] | None = None,
    function_mappings: Mapping[str, Callable[..., str]] | None = None,
    **prompt_kwargs: Any,
) -> PromptTemplate:
    """A ``PromptTemplate`` whose ``{examples_var}`` is filled by ``retriever`` at format time.

    ``template`` must contain ``{examples_var}`` (default ``{few_shot_examples}``) and usually
    ``{query_str}``; other ``function_mappings`` are kept. Extra keyword arguments go to
    ``PromptTemplate`` (e.g. ``prompt_type``).
    """
    fields = _fields(template)
    if examples_var not in fields:
        raise ERASEError(f"template has no {{{examples_var}}} variable to put the examples in")
    mappings = dict(function_mappings or {})
    mappings[examples_var] = few_shot_function(
        retriever, example_template=example_template, query_var=query_var, separator=separator,
        metadata_mode=metadata_mode, formatter=formatter,
    )
    return PromptTemplate(template, function_mappings=mappings, **prompt_kwargs)
