"""ERASE core: exact-deletion quantized k-means and an exactly unlearnable example index.

Framework-free: nothing here imports LangChain or LlamaIndex.
"""

from ._validation import DuplicateIdError, ERASEError, UnknownIdError
from .example_index import ExampleIndex, ForgetReceipt
from .quantized_kmeans import DEFAULT_EPSILON, DEFAULT_PROJECTION_DIM, QuantizedKMeans, UpdateReport
from .selection import SelectedExample

__all__ = [
    "DEFAULT_EPSILON",
    "DEFAULT_PROJECTION_DIM",
    "DuplicateIdError",
    "ERASEError",
    "ExampleIndex",
    "ForgetReceipt",
    "QuantizedKMeans",
    "SelectedExample",
    "UnknownIdError",
    "UpdateReport",
]
