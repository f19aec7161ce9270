"""erase_llamaindex: an exactly unlearnable retriever for LlamaIndex.

* :class:`ERASERetriever` -- ``BaseRetriever`` over an :class:`erase_core.ExampleIndex`
  (``strategy="erase"``: one fixed k-node set, quantized k-means; ``"similarity"``: exact top-k),
  with ``forget``/``aforget`` (exact, and erased from the persisted files), ``delete_ref_doc``
  (every node of a source document) and ``forget_where`` (by metadata), ``MetadataFilters`` on
  retrieve (``similarity``), ``insert_nodes``, ``persist``/``from_persist_dir``.
* :func:`few_shot_prompt` / :func:`few_shot_function` -- the retriever behind a
  ``PromptTemplate`` variable (``function_mappings``).
* :class:`HFEmbedding` -- the project's ``HFEmbedder`` (MiniLM) as a ``BaseEmbedding``.
* :class:`LocalLLM` -- a local causal LM (SmolLM2) as a ``CustomLLM``.

torch and transformers are imported only when a model is first used. See docs/llamaindex.md.
"""

from erase_core import ERASEError, ForgetReceipt

from .embeddings import HFEmbedding
from .few_shot import few_shot_function, few_shot_prompt, format_example, format_examples
from .llm import LocalLLM
from .retriever import PERSIST_SETTINGS_FILENAME, PERSIST_STORE_FILENAME, ERASERetriever

__all__ = [
    "ERASEError",
    "ERASERetriever",
    "ForgetReceipt",
    "HFEmbedding",
    "LocalLLM",
    "PERSIST_SETTINGS_FILENAME",
    "PERSIST_STORE_FILENAME",
    "few_shot_function",
    "few_shot_prompt",
    "format_example",
    "format_examples",
]
