"""ERASE core: exact-deletion quantized k-means and an exactly unlearnable example index.

Framework-free: nothing here imports LangChain or LlamaIndex.
"""

from ._validation import DuplicateIdError, ERASEError, UnknownIdError
from .quantized_kmeans import DEFAULT_EPSILON, QuantizedKMeans, UpdateReport

__all__ = [
    "DEFAULT_EPSILON",
    "DuplicateIdError",
    "ERASEError",
    "QuantizedKMeans",
    "UnknownIdError",
    "UpdateReport",
]
