"""erase_llamaindex: exactly unlearnable retrieval for LlamaIndex.

* :class:`ERASEVectorStore` -- a ``BasePydanticVectorStore`` (drop-in for ``SimpleVectorStore``
  under ``VectorStoreIndex``/``StorageContext``): ``add`` (upsert), ``delete(ref_doc_id)``,
  ``delete_nodes``, ``clear`` exact and erased from the store file; ``query`` with
  ``MetadataFilters``, ``node_ids``/``doc_ids`` and MMR; ``persist``/``from_persist_dir``;
  ``ref_doc_info()`` (what ``index.ref_doc_info`` cannot give for stores that keep the text).
* :class:`ERASERetriever` -- ``BaseRetriever`` over an :class:`erase_core.ExampleIndex`
  (``strategy="similarity"``, the default: exact top-k; ``"mmr"``; ``"erase"``: one fixed
  k-node set, quantized k-means, for few-shot prompts), with ``forget``/``aforget`` (exact, and
  erased from the persisted files), ``delete_ref_doc`` (every node of a source document) and
  ``forget_where`` (by metadata), ``MetadataFilters`` on retrieve (``similarity``/``mmr``),
  ``insert_nodes``, ``persist``/``from_persist_dir``.
* :class:`ERASEDocumentStore` / :class:`ERASEKVStore` -- a docstore / key-value store kept in the
  ERASE store, sealed, whose entries are forgotten with the nodes they describe.
* :func:`few_shot_prompt` / :func:`few_shot_function` -- the retriever behind a
  ``PromptTemplate`` variable (``function_mappings``).
* :class:`HFEmbedding` -- the project's ``HFEmbedder`` (MiniLM) as a ``BaseEmbedding``.
* :class:`LocalLLM` -- a local causal LM (SmolLM2) as a ``CustomLLM``.

torch and transformers are imported only when a model is first used. See docs/llamaindex.md.
"""

from erase_core import ERASEError, ForgetReceipt, __version__

from .docstore import ERASEDocumentStore
from .embeddings import HFEmbedding
from .few_shot import few_shot_function, few_shot_prompt, format_example, format_examples
from .kvstore import ERASEKVStore
from .llm import LocalLLM
from .retriever import PERSIST_SETTINGS_FILENAME, PERSIST_STORE_FILENAME, ERASERetriever
from .vector_store import ERASEVectorStore

__all__ = [
    "ERASEDocumentStore",
    "ERASEError",
    "ERASEKVStore",
    "ERASERetriever",
    "ERASEVectorStore",
    "ForgetReceipt",
    "HFEmbedding",
    "LocalLLM",
    "PERSIST_SETTINGS_FILENAME",
    "PERSIST_STORE_FILENAME",
    "few_shot_function",
    "few_shot_prompt",
    "format_example",
    "format_examples",
    "__version__",
]
