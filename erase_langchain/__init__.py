"""erase_langchain: LangChain integration of ERASE (exactly unlearnable few-shot selection).

* :class:`ERASEExampleSelector`: drop-in for ``SemanticSimilarityExampleSelector``.
* :class:`ERASERetriever`: a ``BaseRetriever`` over the same engine.
* :class:`ERASEVectorStore`: a ``VectorStore`` whose ``delete`` is an exact, persisted forget
  (upsert, MMR, filters; the stock example selectors work over it).
* :class:`ERASERecordManager`: LangChain's indexing record manager, kept in the store and
  forgotten with the rows it describes.
* :class:`ERASETranslator`: a ``structured_query`` visitor (self-query retrieval over the store).
* :class:`ForgettingCache`: an LLM cache wrapper that drops what the selectors forget.
* :class:`HFEmbeddings`: LangChain ``Embeddings`` over the bundled MiniLM (lazy torch).
* :class:`LocalLLM`: LangChain ``LLM`` over a local causal LM (SmolLM2 by default).

See docs/langchain.md.
"""

from erase_core import __version__

from .cache import ForgettingCache
from .embeddings import HFEmbeddings
from .example_selector import ERASEExampleSelector
from .llms import LocalLLM
from .record_manager import ERASERecordManager
from .retriever import ERASERetriever
from .structured_query import ERASETranslator
from .vectorstore import ERASEVectorStore

__all__ = ["ERASEExampleSelector", "ERASERecordManager", "ERASERetriever", "ERASETranslator", "ERASEVectorStore", "ForgettingCache", "HFEmbeddings", "LocalLLM", "__version__"]
