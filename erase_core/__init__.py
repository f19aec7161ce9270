"""ERASE core: exact-deletion quantized k-means and an exactly unlearnable example index.

Framework-free: nothing here imports LangChain or LlamaIndex.
"""

from ._validation import DuplicateIdError, ERASEError, InvalidIdError, UnknownArgumentError, UnknownIdError, check_id
from ._version import __version__
from .example_index import ExampleIndex, ForgetReceipt, IndexClosedError
from .payloads import payload_json
from .quantized_kmeans import DEFAULT_EPSILON, DEFAULT_PROJECTION_DIM, QuantizedKMeans, UpdateReport
from .records import ExampleRecords
from .requests import forget, select_available
from .selection import SelectedExample
from .storage import CorruptStoreError, ExampleStore, StoreError

__all__ = [
    "CorruptStoreError",
    "DEFAULT_EPSILON",
    "DEFAULT_PROJECTION_DIM",
    "DuplicateIdError",
    "ERASEError",
    "ExampleIndex",
    "ExampleRecords",
    "ExampleStore",
    "ForgetReceipt",
    "IndexClosedError",
    "InvalidIdError",
    "QuantizedKMeans",
    "SelectedExample",
    "StoreError",
    "UnknownArgumentError",
    "UnknownIdError",
    "UpdateReport",
    "__version__",
    "check_id",
    "forget",
    "payload_json",
    "select_available",
]
